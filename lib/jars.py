"""Delta Lake's jars: fetched once from Maven Central, then used from a local folder.

``vistarank-setup-jars`` (run by ``make setup``) starts a throw-away local session
with ``spark.jars.packages`` pointing at Delta (as ``configure_spark_with_delta_pip``
computes it), lets Ivy resolve into ``spark.ivy_dir``, and copies the resolved jars
to ``spark.jars_dir``. Later sessions pass that folder's jars with ``spark.jars``, so
runs and tests need no network. Clusters get the same jars with ``--jars``
(spark-submit.sh does it) or ``--packages``; Databricks runtimes ship Delta.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import shutil
import sys

log = logging.getLogger(__name__)


def delta_package() -> str:
    """Maven coordinates of the Delta jar matching the installed delta-spark package."""
    from delta.pip_utils import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    # A fresh builder (its own options), so nothing leaks into the shared one.
    return configure_spark_with_delta_pip(SparkSession.Builder())._options["spark.jars.packages"]


def local_jars(jars_dir: str) -> list[str]:
    """The jar files in ``jars_dir`` (empty if it was never filled)."""
    return sorted(glob.glob(os.path.join(jars_dir, "*.jar")))


def fetch(jars_dir: str, ivy_dir: str) -> list[str]:
    """Resolve Delta's jars with Ivy (network) into ``ivy_dir`` and copy them to ``jars_dir``."""
    from pyspark.sql import SparkSession

    pkg = delta_package()
    log.info("resolving %s from Maven Central into %s", pkg, ivy_dir)
    spark = (SparkSession.builder.master("local[1]").appName("vistarank-setup-jars")
             .config("spark.jars.packages", pkg)
             .config("spark.jars.ivy", os.path.abspath(ivy_dir))
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.stop()
    os.makedirs(jars_dir, exist_ok=True)
    resolved = glob.glob(os.path.join(ivy_dir, "jars", "*.jar"))
    if not any("delta-spark" in os.path.basename(j) for j in resolved):
        raise RuntimeError(f"Ivy did not resolve {pkg}; is Maven Central reachable?")
    for jar in resolved:
        shutil.copy2(jar, jars_dir)
    with open(os.path.join(jars_dir, "PACKAGE"), "w") as fh:
        fh.write(pkg + "\n")
    return local_jars(jars_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jars-dir", default=".cache/jars")
    p.add_argument("--ivy-dir", default=".cache/ivy")
    p.add_argument("--print", action="store_true", help="print the jars as a comma list and exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    jars = local_jars(args.jars_dir)
    pkg_file = os.path.join(args.jars_dir, "PACKAGE")
    current = open(pkg_file).read().strip() if os.path.exists(pkg_file) else None
    if args.print:
        print(",".join(jars))
        return 0 if jars else 1
    if jars and current == delta_package():
        log.info("Delta jars already in %s (%d files)", args.jars_dir, len(jars))
        return 0
    jars = fetch(args.jars_dir, args.ivy_dir)
    log.info("fetched %d jars into %s", len(jars), args.jars_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
