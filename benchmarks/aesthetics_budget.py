"""The pipeline's aesthetics head at several label budgets, with and without the
self-supervised flaw detector (issue #15 item 3: the label-budget curve), on a finished
demo lakehouse:

    .venv/bin/python benchmarks/aesthetics_budget.py --lakehouse ./lakehouse

- Each arm runs train_head's own aesthetics step (``workflow.aesthetics``: the flaw
  detector on ``--flaw-images`` photos in the arms with it, the out-of-fold score cap on
  ``--cap-folds`` folds (``training.aesthetics_cap_folds``), the head through
  the barrier launcher) on the lakehouse's embeddings and quality statistics, and reports
  on the same held-out images train_head evaluates. It writes model files under ``--work``
  and no table.
- Figures per arm: Spearman's correlation with the hidden score of the score as written
  (capped) and of the uncapped mean, the share of held-out photos tied at the cap, EMD.
  The cap does not change the head it caps, so the uncapped mean is what the pipeline
  writes without a cap (its default since session 25).
- For comparison (``demo_quality.py``'s ``aesthetics_ceiling``): a perfect detector of each
  photo's degradations alone reaches 0.836 with its ties, and about 0.70 with them broken
  at random; a head that also sees a clean photo's light goes past both.

Goal (issue #15): ``goal_spearman_0_8`` at the pipeline's budget (``training.aesthetic_labels``,
400). Writes benchmarks/results/aesthetics_budget.json.
"""
from __future__ import annotations

import argparse
import os
import time

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--work", default="/tmp/vistarank-aesthetics-budget", help="where the arms' model files go")
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flaw-images", type=int, default=3000,
                   help="training.flaws.images in the arms with the flaw detector (the pipeline's default is 0: off)")
    p.add_argument("--cap-folds", type=int, default=5,
                   help="training.aesthetics_cap_folds in every arm, for the capped figure (the pipeline's default is "
                        "0: off)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "aesthetics_budget.json"))
    args = p.parse_args()
    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import load_config
    from vistarank.session import get_spark
    from vistarank.training import head_task as H
    from vistarank.training import workflow as W
    from vistarank.vision import models

    src = os.path.abspath(args.lakehouse)
    if not os.path.isdir(os.path.join(src, "image_labels")):
        raise SystemExit(f"error: {src} is not a finished lakehouse (no image_labels); run make demo first")
    base = [f"lakehouse.root={src}", "spark.show_progress=false", f"training.seed={args.seed}",
            f"training.aesthetics_cap_folds={args.cap_folds}"]
    cfg = load_config("local", base)
    spark = get_spark(cfg)
    emb = W.embeddings(spark, cfg, models.resolve(cfg).model_version)
    truth = H.image_truth(io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True), io.read(spark, cfg, T.IMAGE_SOURCES))
    data = W.area_data(emb, truth).persist()
    held = W.area_labels(data, cfg.training).held  # the images train_head evaluates on
    rows = []
    for budget in args.budgets:
        for flaws in (False, True):
            arm = load_config("local", base + [f"training.aesthetic_labels={budget}",
                                               f"training.flaws.images={args.flaw_images if flaws else 0}"])
            t0 = time.perf_counter()
            folder = os.path.join(os.path.abspath(args.work), f"b{budget}-f{int(flaws)}")
            a = W.aesthetics(spark, arm, data, held, folder)
            r = a.report
            row = {"labels": budget, "flaw_detector": flaws, "spearman": round(r["spearman"], 4),
                   "spearman_uncapped_mean": round(r["spearman_mean"], 4), "tied_at_cap": round(r["tied_at_cap"], 3),
                   "cap_share": r["cap_share"], "emd": round(r["emd"], 4), "held_out": r["n"],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(row, flush=True)
    data.unpersist()
    spark.stop()
    on = cfg.training.flaws.images > 0  # the pipeline's own arm
    at = [r for r in rows if r["labels"] == cfg.training.aesthetic_labels and r["flaw_detector"] == on]
    pipeline = load_config("local").training.aesthetics_cap_folds  # the pipeline's own setting
    key = "spearman" if pipeline == args.cap_folds else "spearman_uncapped_mean" if pipeline == 0 else None
    _results.write("aesthetics_budget", rows, args.out, lakehouse=src, seed=args.seed,
                   pipeline_budget=cfg.training.aesthetic_labels, flaw_images=args.flaw_images,
                   cap_folds=args.cap_folds, pipeline_cap_folds=pipeline,
                   goal_spearman_0_8=bool(at and key and at[0][key] >= 0.8))


if __name__ == "__main__":
    main()
