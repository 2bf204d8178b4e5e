"""The heads' figures over several seeds (issue #15 item 4): mean and spread of every
``head_evaluation`` figure when ``train_head`` runs with ``training.seed`` 0, 1 and 2 (the
label draw, the noise, the cleaning folds, the initialisation), on a copy of a finished demo
lakehouse:

    .venv/bin/python benchmarks/heads_seeds.py --lakehouse ./lakehouse --work /tmp/heads-seeds

More seeds later: `--seeds 6 7 8 --add-to benchmarks/results/heads_seeds.json` keeps the earlier
seeds' figures (a seed reruns to the same ones) and adds these; `--set training.clean_class_cap=1.5`
runs every seed with that override (an --add-to file must have the same ones).

- The lakehouse is copied to ``--work`` first (its ``raw`` image files left out: train_head
  reads the ``images`` table), so the original keeps its registered heads and tables.
- Each seed runs the train_head stage as the pipeline does, under its own heads version
  (``seed-<n>``), with the lakehouse's configuration otherwise.
- Figures: every overall ``head_evaluation`` figure (mean, sample standard deviation, min,
  max), and three derived per seed: transfer minus from-scratch top-1 on the same held-out
  images, what the label noise costs (``true_labels - noisy``) and what cleaning gains
  (``cleaned - noisy``). The share recovered is the mean gain over the mean cost (a ratio
  of means: one seed's cost can be near 0), with its standard error over the seeds
  (``_results.ratio_se``, the delta method).

Goals on the mean (issue #15): ``goal_transfer_10_points`` (transfer beats from scratch by
10 points of top-1), ``goal_cleaning_recovers_half``. Writes
benchmarks/results/heads_seeds.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))


def one_seed(spark, cfg) -> dict:
    from vistarank.jobs import train_head

    t0 = time.perf_counter()
    train_head.run(spark, cfg)
    v = _results.head_figures(spark, cfg)
    top1 = {arm: v.get(f"areas.{arm}.top1") for arm in ("noisy", "true_labels", "cleaned")}
    transfer = _results.transfer_minus_scratch(v)
    if transfer is not None:
        v["derived.transfer_minus_scratch"] = transfer
    if None not in (top1["noisy"], top1["true_labels"], top1["cleaned"]):
        cost = top1["true_labels"] - top1["noisy"]
        v["derived.noise_cost"] = cost
        v["derived.cleaning_gain"] = top1["cleaned"] - top1["noisy"]
    v["seconds"] = time.perf_counter() - t0
    return v


def earlier(path: str, lakehouse: str, seeds: list[int], overrides: list[str]) -> dict[int, dict]:
    """Per seed, the figures of an earlier run (``--add-to``), checked to be of the same
    lakehouse and configuration overrides and to share no seed with ``seeds``."""
    with open(path) as f:
        prev = json.load(f)
    if prev.get("benchmark") != "heads_seeds" or os.path.abspath(prev.get("lakehouse", "")) != lakehouse:
        raise SystemExit(f"error: {path} is not a heads_seeds result on {lakehouse}")
    if prev.get("overrides", []) != list(overrides):
        raise SystemExit(f"error: {path} was run with --set {prev.get('overrides', [])}, not {list(overrides)}")
    both = sorted(set(prev["seeds"]) & set(seeds))
    if both:
        raise SystemExit(f"error: {path} already has seeds {both}")
    figures = prev["results"][0]
    return {s: {k: f["values"][i] for k, f in figures.items()} for i, s in enumerate(prev["seeds"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--work", default="/tmp/vistarank-heads-seeds", help="where the lakehouse is copied")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=os.path.join(HERE, "results", "heads_seeds.json"))
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="configuration overrides for every seed, e.g. training.clean_class_cap=1.5")
    p.add_argument("--add-to", metavar="JSON",
                   help="an earlier heads_seeds JSON on the same lakehouse: its seeds' figures are kept and --seeds "
                        "added to them (a seed reruns to the same figures, so the old ones need no rerun)")
    args = p.parse_args()
    from vistarank.config import load_config
    from vistarank.session import get_spark

    src = os.path.abspath(args.lakehouse)
    if not os.path.isdir(os.path.join(src, "image_labels")):
        raise SystemExit(f"error: {src} is not a finished lakehouse (no image_labels); run make demo first")
    per_seed = earlier(args.add_to, src, args.seeds, args.overrides) if args.add_to else {}
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work, ignore=lambda d, names: ["raw"] if os.path.abspath(d) == src else [])
    print(f"copied {src} to {work}")
    base = [f"lakehouse.root={work}", "spark.show_progress=false", *args.overrides]
    spark = get_spark(load_config("local", base))
    for s in args.seeds:
        cfg = load_config("local", base + [f"training.seed={s}", f"training.version=seed-{s}"])
        per_seed[s] = one_seed(spark, cfg)
        print(f"seed {s}: {per_seed[s]}")
    spark.stop()
    seeds = list(per_seed)
    keys = sorted(set.intersection(*(set(v) for v in per_seed.values())))
    figures = {}
    for k in keys:
        x = np.array([per_seed[s][k] for s in seeds])
        figures[k] = {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
                      "min": float(x.min()), "max": float(x.max()), "values": [float(a) for a in x]}
    cost = figures.get("derived.noise_cost", {}).get("mean")
    gain = figures.get("derived.cleaning_gain", {}).get("mean")
    recovered = gain / cost if cost and cost > 0 else None
    recovered_se = None
    if "derived.noise_cost" in figures and "derived.cleaning_gain" in figures:
        recovered_se = _results.ratio_se(figures["derived.cleaning_gain"]["values"],
                                         figures["derived.noise_cost"]["values"])
    transfer = figures.get("derived.transfer_minus_scratch", {}).get("mean")
    print({"transfer - scratch (mean)": transfer, "noise cost (mean)": cost, "cleaning gain (mean)": gain,
           "recovered": recovered})
    _results.write("heads_seeds", [figures], args.out, lakehouse=src, seeds=seeds, overrides=args.overrides,
                   cleaning_recovered_share_of_noise_cost=recovered,
                   cleaning_recovered_share_se=recovered_se,
                   goal_transfer_10_points=bool(transfer is not None and transfer >= 0.10),
                   goal_cleaning_recovers_half=bool(recovered is not None and recovered >= 0.5))


if __name__ == "__main__":
    main()
