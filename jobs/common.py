"""What every job entry point shares: arguments, config, logging, session, summary."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional

from vistarank.config import Config, ConfigError, join, load_config
from vistarank.runs import StageResult, run_stage

StageFn = Callable[..., StageResult]


def parser(stage: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"vistarank-{stage.replace('_', '-')}", description=doc)
    p.add_argument("--env", default="local", help="config overlay: local (default), cluster, databricks")
    p.add_argument("--run-date", default=None, help="run date: YYYY-MM-DD or today (UTC); default: the overlay's (local: the demo world's last day, cluster and databricks: today)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set world.size=tiny (repeatable)")
    p.add_argument("--conf-dir", default=None, help="folder with base.yaml and overlays (default: packaged)")
    return p


def sale_themes_with_quality(spark, cfg: Config):
    """``sale_themes`` (None when fit_themes has not run) with each sale's standardised photo
    quality from ``sale_gallery`` when train_head wrote one (the choice image engine's
    quality term, :mod:`vistarank.recsys.taste`)."""
    from vistarank import io
    from vistarank import tables as T
    from vistarank.recsys import taste as TS

    if not io.exists(spark, cfg, T.SALE_THEMES):
        return None
    gallery = io.read(spark, cfg, T.SALE_GALLERY) if io.exists(spark, cfg, T.SALE_GALLERY) else None
    return TS.with_quality(io.read(spark, cfg, T.SALE_THEMES), gallery)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("py4j", "matplotlib", "PIL", "h5py", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.run_date:
        overrides.append(f"run_date={args.run_date}")
    return load_config(args.env, overrides, args.conf_dir)


def print_summary(cfg: Config, results: list[StageResult]) -> None:
    """What the run wrote: tables with row counts and paths."""
    print(f"\nvistarank wrote ({cfg.env}, run date {cfg.effective_run_date()}):")
    for r in results:
        print(f"  {r.stage} ({r.seconds:.1f}s)")
        for table, rows in r.outputs.items():
            print(f"    {table:<18} {rows:>10,} rows  {join(cfg.lakehouse.root, table)}")
        for note in r.notes:
            print(f"    {note}")


def start(p: argparse.ArgumentParser, argv: Optional[list[str]]) -> tuple[argparse.Namespace, Config]:
    """Parse arguments, configure logging, load the config; a bad config exits with status 2
    and its message, before Spark starts."""
    args = p.parse_args(argv)
    setup_logging()
    try:
        return args, config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main_for(stage: str, fn: StageFn, doc: str, argv: Optional[list[str]] = None) -> int:
    """Entry point of a single-stage job."""
    _, cfg = start(parser(stage, doc), argv)
    from vistarank.session import get_spark  # after config: a bad config fails before Spark starts

    spark = get_spark(cfg)
    result = run_stage(stage, fn, spark, cfg)
    print_summary(cfg, [result])
    return 0
