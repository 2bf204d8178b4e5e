"""What to do with the labels label cleaning flags (issue #15 item 4): drop them (the
stage's rule), relabel them to the predicted class, or keep them at a fraction of their
weight, on the same label draws and the same out-of-fold predictions. On a finished demo
lakehouse:

    cd benchmarks && ../.venv/bin/python cleaning_variants.py --lakehouse ../lakehouse --seeds 0 1 2

- Draws, heads (Keras ``fit`` in this process, initialisation 0), out-of-fold predictions
  and held-out images are ``cleaning_folds.py``'s (``draws``, ``fit_head``, ``out_of_fold``;
  5 folds), and so the figures of its arms agree with it.
- ``gate``: the stage's flags at the config's settings (``workflow.cleaning_flags``; by
  default every contradiction the 10 nearest labels back, within the predicted class's
  0.9 spread quantile: ``training.clean_neighbours``, ``clean_spread``); ``backed``:
  without the spread gate; ``contradicted``: every contradiction. ``drop_gate`` and
  ``relabel_gate`` are ``workflow.clean_labels``' own drop and relabel.
- Arms: ``drop_gate`` (the stage), ``relabel_gate``, ``w25_gate`` and ``w10_gate`` (the
  flagged labels kept at 25% and 10% of their class weight), ``w25_backed``,
  ``w10_contradicted``; references: ``noisy``, ``true_labels``, ``oracle`` (exactly the
  flipped labels dropped).
- Per arm: mean top-1, share of the noise's cost recovered (ratio of means, with its
  standard error over the draws) and the draws on which it beats ``drop_gate``.

Writes benchmarks/results/cleaning_variants.json.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import _results  # benchmarks/_results.py (scripts run from this folder's path)
import cleaning_folds as CF

HERE = os.path.dirname(os.path.abspath(__file__))


def variants(W, H, tc, lab, oof) -> tuple[dict, dict]:
    """Each arm's label budget (image_id, x, y, weight, ...) from the same ``oof``, and the
    flags' counts. The stage's flags and its drop and relabel come from
    ``workflow.cleaning_flags`` and ``clean_labels`` at the config's settings."""
    x, y = W.features(lab), lab["y"].to_numpy()
    votes = H.neighbour_votes(x, y, tc.clean_neighbours, len(W.CLASSES)) if tc.clean_neighbours > 0 else None
    near = (H.near_predicted(oof, y, H.class_distances(x, y, len(W.CLASSES)), tc.clean_spread)
            if tc.clean_spread > 0 else None)
    contradicted, backed, gate = W.cleaning_flags(y, oof, tc.clean_confidence, tc.clean_class_cap, votes, near)
    dropped, rep = W.clean_labels(lab, oof, tc.clean_confidence, tc.clean_class_cap, votes, "drop", near)
    relabelled, rel = W.clean_labels(lab, oof, tc.clean_confidence, tc.clean_class_cap, votes, "relabel", near)
    base = W.balanced_weights(y)

    def weighted(flag, w):
        out = lab.copy()
        out["weight"] = np.where(flag, base * w, base).astype(np.float32)
        return out

    arms = {"drop_gate": dropped, "relabel_gate": relabelled,
            "w25_gate": weighted(gate, 0.25), "w10_gate": weighted(gate, 0.10),
            "w25_backed": weighted(backed, 0.25), "w10_contradicted": weighted(contradicted, 0.10)}
    counts = {"contradicted": int(contradicted.sum()), "backed": int(backed.sum()), "gate": rep["flagged"],
              "gate_right_labels": rep["flagged"] - rep["flagged_and_noisy"], "gate_flips": rep["flagged_and_noisy"],
              "relabelled_right": rel["relabelled_right"]}
    return arms, counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="label draws (training.seed)")
    p.add_argument("--holdout", type=int, default=2000)
    p.add_argument("--out", default=os.path.join(HERE, "results", "cleaning_variants.json"))
    args = p.parse_args()
    from vistarank.config import load_config
    from vistarank.session import get_spark
    from vistarank.training import head_task as H
    from vistarank.training import workflow as W

    cfg = load_config("local", [f"lakehouse.root={os.path.abspath(args.lakehouse)}", "spark.show_progress=false"])
    tc = cfg.training
    spark = get_spark(cfg)
    data = CF.draws(spark, cfg, args.seeds, args.holdout)  # label budgets (hundreds of rows), held-out samples
    spark.stop()
    t0, rows = time.perf_counter(), []
    for seed, (lab, held) in data.items():
        row = {"seed": seed, "noisy_labels": int(lab["noisy"].sum()),
               "noisy": CF.top1(CF.fit_head(tc, lab, 0), held),
               "true_labels": CF.top1(CF.fit_head(tc, W.true_labels(lab), 0), held),
               "oracle": CF.top1(CF.fit_head(tc, CF.oracle_drop(W, lab), 0), held)}
        arms, counts = variants(W, H, tc, lab, CF.out_of_fold(tc, lab, 5, 0))
        row.update({k: CF.top1(CF.fit_head(tc, d, 0), held) for k, d in arms.items()}, **counts)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        rows.append(row)
    noisy = np.array([r["noisy"] for r in rows])
    cost = np.array([r["true_labels"] for r in rows]) - noisy
    summary = {}
    for arm in ["oracle"] + list(arms):
        v = np.array([r[arm] for r in rows])
        summary[arm] = {"mean_top1": round(float(v.mean()), 4),
                        "recovered_share": round(float((v - noisy).mean() / cost.mean()), 3),
                        "recovered_share_se": _results.ratio_se(v - noisy, cost),
                        "beats_drop_gate": int(sum(r[arm] > r["drop_gate"] for r in rows))}
        print(arm, summary[arm])
    _results.write("cleaning_variants", rows, args.out, lakehouse=os.path.abspath(args.lakehouse),
                   model_version=cfg.model.model_version, label_noise=tc.label_noise,
                   labels_per_class=tc.labels_per_class, lr_schedule=tc.lr_schedule,
                   mean_top1_noisy=round(float(noisy.mean()), 4),
                   mean_top1_true_labels=round(float((noisy + cost).mean()), 4), summary=summary,
                   seconds=round(time.perf_counter() - t0, 1),
                   goal_cleaning_recovers_half=bool(summary["drop_gate"]["recovered_share"] >= 0.5))


if __name__ == "__main__":
    main()
