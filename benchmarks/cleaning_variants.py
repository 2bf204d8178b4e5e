"""What to do with the labels label cleaning flags (issue #15 item 4): what the stage does
(``training.clean_action``: other_or_drop, the heads' ``other`` for the flags they call
``other``, the rest dropped), drop them all, relabel them to the predicted class, or keep
them at a fraction of their weight, on the same label draws and the same out-of-fold
predictions. On a finished demo lakehouse:

    cd benchmarks && ../.venv/bin/python cleaning_variants.py --lakehouse ../lakehouse --seeds 0 1 2

- Draws, heads (Keras ``fit`` in this process, initialisation 0), out-of-fold predictions
  and held-out images are ``cleaning_folds.py``'s (``draws``, ``fit_head``, ``out_of_fold``;
  5 folds), and so the figures of its arms agree with it.
- ``gate``: the stage's flags at the config's settings (``workflow.cleaning_evidence`` and
  ``cleaning_flags``; by default every contradiction the 10 nearest labels back, within the
  predicted class's 0.9 spread quantile, and every contradicted property-area label outside
  its own class's 0.9 quantile: ``training.clean_neighbours``, ``clean_spread``,
  ``clean_outliers``); ``backed``: without the spread gate or the outliers;
  ``contradicted``: every contradiction.
- Arms: ``stage`` (``workflow.clean_labels`` at the config's action), ``other_or_drop``,
  ``drop_gate`` and ``relabel_gate`` (its three actions on the gate's flags),
  ``drop_no_outliers`` (session 27's stage: dropped, without ``training.clean_outliers``),
  ``w25_gate`` and ``w10_gate`` (the flagged labels kept at 25% and 10% of their class
  weight), ``w25_backed``, ``w10_contradicted``; references: ``noisy``, ``true_labels``,
  ``oracle`` (exactly the flipped labels dropped). An arm with the same labels and weights
  as one already fitted takes its figure.
- Per arm: mean top-1, share of the noise's cost recovered (ratio of means, with its
  standard error over the draws) and the draws on which it beats the stage or falls below it.

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


def variants(W, tc, lab, oof) -> tuple[dict, dict]:
    """Each arm's label budget (image_id, x, y, weight, ...) from the same ``oof``, and the
    flags' counts. The stage's flags and what it does with them come from
    ``workflow.cleaning_evidence``, ``cleaning_flags`` and ``clean_labels`` at the config's
    settings."""
    y = lab["y"].to_numpy()
    votes, near, outlier = W.cleaning_evidence(tc, W.features(lab), y, oof)
    contradicted, backed, gate = W.cleaning_flags(y, oof, tc.clean_confidence, tc.clean_class_cap, votes, near,
                                                  outlier)

    def cleaned(action, out=outlier):
        return W.clean_labels(lab, oof, tc.clean_confidence, tc.clean_class_cap, votes, action, near, out)

    stage, rep = cleaned(tc.clean_action)
    relabelled, rel = cleaned("relabel")
    made_other, oth = cleaned("other_or_drop")
    base = W.balanced_weights(y)

    def weighted(flag, w):
        out = lab.copy()
        out["weight"] = np.where(flag, base * w, base).astype(np.float32)
        return out

    arms = {"stage": stage, "other_or_drop": made_other, "drop_gate": cleaned("drop")[0],
            "drop_no_outliers": cleaned("drop", None)[0], "relabel_gate": relabelled,
            "w25_gate": weighted(gate, 0.25), "w10_gate": weighted(gate, 0.10),
            "w25_backed": weighted(backed, 0.25), "w10_contradicted": weighted(contradicted, 0.10)}
    counts = {"contradicted": int(contradicted.sum()), "backed": int(backed.sum()), "gate": rep["flagged"],
              "gate_outliers": rep.get("outliers", 0),
              "gate_right_labels": rep["flagged"] - rep["flagged_and_noisy"], "gate_flips": rep["flagged_and_noisy"],
              "made_other": oth["relabelled"],
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
        arms, counts = variants(W, tc, lab, CF.out_of_fold(tc, lab, 5, 0))
        done = {}  # an arm with the same labels and weights as another (the stage is one of the others) is not refitted
        for k, d in arms.items():
            key = (tuple(d["image_id"]), d["y"].to_numpy().tobytes(), d["weight"].to_numpy().tobytes())
            row[k] = done[key] if key in done else done.setdefault(key, CF.top1(CF.fit_head(tc, d, 0), held))
        row.update(counts)
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
                        "beats_stage": int(sum(r[arm] > r["stage"] for r in rows)),
                        "below_stage": int(sum(r[arm] < r["stage"] for r in rows))}
        print(arm, summary[arm])
    _results.write("cleaning_variants", rows, args.out, lakehouse=os.path.abspath(args.lakehouse),
                   model_version=cfg.model.model_version, label_noise=tc.label_noise,
                   labels_per_class=tc.labels_per_class, lr_schedule=tc.lr_schedule,
                   mean_top1_noisy=round(float(noisy.mean()), 4),
                   mean_top1_true_labels=round(float((noisy + cost).mean()), 4), summary=summary,
                   seconds=round(time.perf_counter() - t0, 1),
                   clean_action=tc.clean_action, clean_outliers=tc.clean_outliers,
                   goal_cleaning_recovers_half=bool(summary["stage"]["recovered_share"] >= 0.5))


if __name__ == "__main__":
    main()
