"""generate_world: write the seeded synthetic travel market (demo data) to the lakehouse."""
from __future__ import annotations

import sys

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult
from vistarank.world import generate as G


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("generate_world")
    G.forget(cfg)  # a killed run must not look complete
    dropped = [t.name for t in T.FROM_WORLD_FILES if io.drop(spark, cfg, t)]
    if dropped:  # they describe the previous world's files, which are about to be replaced
        res.notes.append(f"dropped tables of the previous world: {', '.join(dropped)}")
    world = G.generate_world(spark, cfg)
    # Rendering happens while truth_images is written (one pass, in the workers).
    res.add(T.TRUTH_IMAGES, io.write(world.truth_images, cfg, T.TRUTH_IMAGES))
    res.add(T.SALES, io.write(world.sales, cfg, T.SALES))
    res.add(T.USERS, io.write(world.users, cfg, T.USERS))
    res.add(T.TRUTH_USERS, io.write(world.truth_users, cfg, T.TRUTH_USERS))
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    quality = G.sale_photo_quality(truth).toPandas().set_index("sale_id")["quality"]  # one row per sale
    behaviour = G.simulate_behaviour(spark, cfg, world.sales_pdf, world.users_gen, quality)
    behaviour = behaviour.persist(StorageLevel.MEMORY_AND_DISK)
    visits, purchases = G.split_behaviour(behaviour)
    res.add(T.VISITS, io.write(visits.repartition("visit_date"), cfg, T.VISITS))
    res.add(T.PURCHASES, io.write(purchases.coalesce(1), cfg, T.PURCHASES))
    behaviour.unpersist()
    G.mark_current(cfg)
    res.notes.append(f"image files: {G.local_image_root(cfg)}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("generate_world", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
