"""Near-duplicate band plans: exact for the distance, bounded per image, refused when not."""
import random

import pytest

from vistarank.config import ConfigError, load_config
from vistarank.udfs.near_dup import (MAX_KEYS_PER_IMAGE, MIN_BAND_BITS, band_values, largest_servable_distance,
                                     lookup_keys, plan_bands)


def _keys(h: int, plan, radius):
    hx = f"{h:064x}"
    return {(b, k) for b, (v, w) in enumerate(zip(band_values(hx, plan.widths), plan.widths))
            for k in lookup_keys(v, w, radius)}


@pytest.mark.parametrize("distance", [0, 1, 4, 10, 13, 17])
def test_every_pair_within_the_distance_shares_a_key(distance):
    plan = plan_bands(distance)
    assert sum(plan.widths) == 256 and min(plan.widths) >= MIN_BAND_BITS
    rng = random.Random(distance)
    for _ in range(60):
        a = rng.getrandbits(256)
        # the worst case: flips spread as evenly as possible over the bands
        starts = [sum(plan.widths[:i]) for i in range(plan.bands)]
        flips = [256 - 1 - (starts[i % plan.bands] + (i // plan.bands)) for i in range(distance)]
        for b in (a ^ sum(1 << f for f in flips), a ^ sum(1 << f for f in rng.sample(range(256), distance))):
            assert bin(a ^ b).count("1") == distance
            assert _keys(a, plan, plan.radius) & _keys(b, plan, 0), (distance, plan)


def test_a_pair_just_outside_can_be_missed_so_the_distance_check_matters():
    plan = plan_bands(10)
    a = random.Random(1).getrandbits(256)
    starts = [sum(plan.widths[:i]) for i in range(plan.bands)]
    # radius + 1 flips in every band: no band within the radius
    flips = [255 - (s + j) for s in starts for j in range(plan.radius + 1)]
    b = a ^ sum(1 << f for f in flips)
    assert not (_keys(a, plan, plan.radius) & _keys(b, plan, 0))


def test_candidates_per_image_stay_bounded_as_the_catalogue_grows():
    plan = plan_bands(10)
    assert plan.keys_per_image <= 300
    # random candidates per new image: negligible even at the mission's 300 M images
    assert plan.random_candidates(300_000_000) < 0.05
    assert plan.random_candidates(1_000_000) < 1e-3


def test_a_distance_that_cannot_be_served_is_refused_clearly():
    top = largest_servable_distance()
    assert plan_bands(top).keys_per_image <= MAX_KEYS_PER_IMAGE
    with pytest.raises(ValueError, match=f"largest distance served is {top}"):
        plan_bands(64)
    with pytest.raises(ConfigError, match="phash_max_distance"):
        load_config(overrides=["ingest.phash_max_distance=64"])


@pytest.mark.parametrize("distance", [0, 10, 17])
def test_band_columns_in_spark_equal_band_values(spark, distance):
    """The stored side's keys are computed by Spark expressions: they must be the Python keys."""
    from pyspark.sql import functions as F

    from vistarank.udfs.near_dup import band_columns

    plan = plan_bands(distance)
    rng = random.Random(7)
    hashes = [f"{rng.getrandbits(256):064x}" for _ in range(40)] + ["f" * 64, "0" * 64, "8" + "0" * 63]
    df = spark.createDataFrame([(h,) for h in hashes], "phash string")
    got = {r.phash: [(b.band, b.key) for b in r.bk]
           for r in df.select("phash", band_columns(F.col("phash"), plan.widths).alias("bk")).collect()}
    for h in hashes:
        assert got[h] == list(enumerate(band_values(h, plan.widths))), (h, plan)
