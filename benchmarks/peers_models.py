"""The peers of benchmarks/peers.py, run in their own environment (.venv-peers: numpy < 2,
Microsoft Recommenders 1.2.1 installed without its heavy dependencies, implicit; pinned in
benchmarks/peers-requirements.txt). Reads the hand-over folder that peers.py wrote:

- ``events``: (user_id, sale_id, date, w, bought): visits (w 1) and purchases (w = the
  purchase weight), every event before the last held-out day;
- ``lists_validation``, ``lists_eval``: (user_id, as_of, sale_id, label, amount, recency,
  <vistarank's arms>): every buyer-day x every open sale.

Each peer is refitted for every day on the events strictly before it and scores that day's
lists (a user or sale it has not seen scores 0: a sale opened that day has no history).
Hyper-parameters: the grid point with the best mean nDCG@10 on the validation days.
Metrics: our per-list formulas, cross-checked against recommenders' python_evaluation.
Writes metrics.json in the folder.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np
import pandas as pd
from scipy import sparse

K = 10


# ----------------------------------------------------------------------------- data
def weights(ev: pd.DataFrame, day, half_life: float | None) -> pd.DataFrame:
    """(user_id, sale_id, weight) of the events strictly before ``day``; decayed by the
    half-life in days when given."""
    e = ev[ev["date"] < day]
    w = e["w"].to_numpy(dtype=float)
    if half_life:
        age = (pd.Timestamp(day) - pd.to_datetime(e["date"])).dt.days.to_numpy()
        w = w * 0.5 ** (age / half_life)
    return pd.DataFrame({"user_id": e["user_id"].to_numpy(), "sale_id": e["sale_id"].to_numpy(), "weight": w}
                        ).groupby(["user_id", "sale_id"], as_index=False)["weight"].sum()


def matrix(wt: pd.DataFrame):
    users = pd.Index(sorted(wt["user_id"].unique()))
    items = pd.Index(sorted(wt["sale_id"].unique()))
    m = sparse.csr_matrix((wt["weight"].to_numpy(dtype=np.float32),
                           (users.get_indexer(wt["user_id"]), items.get_indexer(wt["sale_id"]))),
                          shape=(len(users), len(items)))
    return m, users, items


def lookup(scores: np.ndarray, users: pd.Index, items: pd.Index, lst: pd.DataFrame) -> np.ndarray:
    """The (user, sale) scores of the list rows; 0 where the user or the sale is unknown."""
    ui, ii = users.get_indexer(lst["user_id"]), items.get_indexer(lst["sale_id"])
    ok = (ui >= 0) & (ii >= 0)
    out = np.zeros(len(lst))
    out[ok] = scores[ui[ok], ii[ok]]
    return out


# ----------------------------------------------------------------------------- peers
def als_scores(wt, lst, p, seed):
    from implicit.als import AlternatingLeastSquares

    m, users, items = matrix(wt)
    model = AlternatingLeastSquares(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                                    iterations=15, random_state=seed, num_threads=2)
    model.fit(m, show_progress=False)
    return lookup(np.asarray(model.user_factors) @ np.asarray(model.item_factors).T, users, items, lst)


def bpr_scores(wt, lst, p, seed):
    from implicit.bpr import BayesianPersonalizedRanking

    m, users, items = matrix(wt)
    model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"],
                                        regularization=p["regularization"], iterations=100, random_state=seed,
                                        num_threads=2)
    model.fit(m, show_progress=False)
    return lookup(np.asarray(model.user_factors) @ np.asarray(model.item_factors).T, users, items, lst)


def sar_scores(wt, lst, p, seed):
    from recommenders.models.sar.sar_singlenode import SARSingleNode

    df = wt.rename(columns={"user_id": "userID", "sale_id": "itemID", "weight": "rating"})
    model = SARSingleNode(similarity_type=p["similarity"], timedecay_formula=False, normalize=False)
    model.fit(df)
    sim = model.item_similarity
    if p["self_similarity"] == "removed":
        sim = sim.copy()
        np.fill_diagonal(sim, 0.0)
        model.item_similarity = sim
    known = lst["user_id"][lst["user_id"].isin(model.user2index)].unique()
    scores = np.asarray(model.score(pd.DataFrame({"userID": known})))
    users = pd.Index(known)
    items = pd.Index([model.index2item[i] for i in range(scores.shape[1])])
    return lookup(scores, users, items, lst)


def popularity_scores(wt, lst, p, seed):
    pop = wt.groupby("sale_id")["weight"].sum()
    return lst["sale_id"].map(pop).fillna(0.0).to_numpy()


PEERS = {
    "implicit ALS": (als_scores, {"factors": [32, 64], "regularization": [0.01, 0.1], "alpha": [1.0, 10.0],
                                  "half_life": [None, 14.0]}, True),
    "implicit BPR": (bpr_scores, {"factors": [32, 64], "learning_rate": [0.01, 0.05], "regularization": [0.01],
                                  "half_life": [None, 14.0]}, True),
    "Recommenders SAR": (sar_scores, {"similarity": ["jaccard", "cosine", "lift"],
                                      "self_similarity": ["kept", "removed"], "half_life": [None, 14.0]}, False),
    "popularity (all history)": (popularity_scores, {"half_life": [None, 7.0]}, False),
}


def grid(space: dict, quick: bool) -> list[dict]:
    keys = list(space)
    points = [dict(zip(keys, v)) for v in itertools.product(*(space[k] for k in keys))]
    return points[:1] if quick else points


def run_peer(fn, p, ev, lists: pd.DataFrame, seed: int) -> np.ndarray:
    """Scores of every list row, each day from a model fitted on the events before it."""
    out = np.zeros(len(lists))
    for day, idx in lists.groupby("as_of").indices.items():
        wt = weights(ev, day, p.get("half_life"))
        out[idx] = fn(wt, lists.iloc[idx].reset_index(drop=True), p, seed)
    return out


# ----------------------------------------------------------------------------- metrics
def ranked(lists: pd.DataFrame, score: np.ndarray) -> pd.DataFrame:
    """The list rows with their 0-based rank in their buyer-day (score desc, sale id asc)."""
    df = lists[["user_id", "as_of", "sale_id", "label", "amount", "recency"]].copy()
    df["score"] = score
    df = df.sort_values(["user_id", "as_of", "score", "sale_id"], ascending=[True, True, False, True], kind="stable")
    df["rank"] = df.groupby(["user_id", "as_of"]).cumcount()
    return df


def metrics(df: pd.DataFrame, relevant: pd.Series | None = None) -> dict:
    """nDCG@K and revenue@K over the lists with a relevant row (``relevant``: a mask within
    the labelled rows: a slice; default every purchase)."""
    rel = (df["label"] > 0) if relevant is None else ((df["label"] > 0) & relevant)
    key = [df["user_id"], df["as_of"]]
    nrel = rel.groupby(key).sum()
    top = df["rank"] < K
    gain = np.where(rel & top, 1.0 / np.log2(df["rank"].to_numpy() + 2.0), 0.0)
    dcg = pd.Series(gain, index=df.index).groupby(key).sum()
    rev = pd.Series(np.where(rel & top, df["amount"], 0.0), index=df.index).groupby(key).sum()
    disc = np.cumsum(1.0 / np.log2(np.arange(K) + 2.0))
    idcg = disc[np.minimum(nrel.to_numpy(), K) - 1]
    keep = nrel.to_numpy() > 0
    ndcg = dcg.to_numpy()[keep] / idcg[keep]
    return {"ndcg_at_10": float(ndcg.mean()) if keep.any() else float("nan"),
            "revenue_at_10": float(rev.to_numpy()[keep].mean()) if keep.any() else float("nan"),
            "n_lists": int(keep.sum()), "ndcg_per_list": ndcg}


def cross_check(df: pd.DataFrame) -> dict:
    """recommenders' python_evaluation on the same lists (each buyer-day a user; the
    prediction is minus the rank, so its top k is ours)."""
    from recommenders.evaluation.python_evaluation import ndcg_at_k, precision_at_k

    uid = df["user_id"].astype(str) + "|" + df["as_of"].astype(str)
    pred = pd.DataFrame({"userID": uid, "itemID": df["sale_id"], "prediction": -df["rank"].astype(float)})
    true = pd.DataFrame({"userID": uid, "itemID": df["sale_id"], "rating": 1.0})[df["label"].to_numpy() > 0]
    return {"ndcg_at_10": float(ndcg_at_k(true, pred, k=K)), "precision_at_10": float(precision_at_k(true, pred, k=K))}


def summary(df: pd.DataFrame) -> dict:
    m = metrics(df)
    new = metrics(df, df["recency"] >= 1.0)  # purchases of sales opened that day
    sd = float(np.std(m.pop("ndcg_per_list"), ddof=1) / np.sqrt(m["n_lists"])) if m["n_lists"] > 1 else float("nan")
    new.pop("ndcg_per_list")
    return m | {"ndcg_se": sd, "new_sales": new}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    with open(os.path.join(args.work, "meta.json")) as fh:
        meta = json.load(fh)
    ev = pd.read_parquet(os.path.join(args.work, "events"))
    val = pd.read_parquet(os.path.join(args.work, "lists_validation")).reset_index(drop=True)
    held = pd.read_parquet(os.path.join(args.work, "lists_eval")).reset_index(drop=True)
    for df in (ev,):
        df["date"] = pd.to_datetime(df["date"]).dt.date
    for df in (val, held):
        df["as_of"] = pd.to_datetime(df["as_of"]).dt.date
    table, chosen, checks, tuning = {}, {}, {}, {}
    t0 = time.perf_counter()
    for arm in meta["arms"]:  # vistarank's arms, as scored by the kernel and the saved re-ranker
        df = ranked(held, held[arm].to_numpy())
        table[f"vistarank {arm}"] = summary(df)
        if arm in ("meta", "meta_no_image", "cf", "popularity", "als"):
            checks[f"vistarank {arm}"] = cross_check(df)
    for name, (fn, space, seeded) in PEERS.items():
        scores = []
        for point in grid(space, args.quick):
            s = metrics(ranked(val, run_peer(fn, point, ev, val, 0)))["ndcg_at_10"]
            scores.append((s, point))
            print(f"{name} {point}: validation nDCG@10 {s:.4f}", flush=True)
        tuning[name] = [{"validation_ndcg_at_10": s} | pt for s, pt in scores]
        best = max(scores, key=lambda x: x[0])[1]
        chosen[name] = best
        runs = []
        for seed in range(args.seeds if seeded else 1):
            df = ranked(held, run_peer(fn, best, ev, held, seed))
            runs.append(summary(df))
            if seed == 0:
                checks[name] = cross_check(df)
        avg = {k: float(np.mean([r[k] for r in runs])) for k in ("ndcg_at_10", "revenue_at_10", "ndcg_se")}
        avg["new_sales"] = {k: float(np.mean([r["new_sales"][k] for r in runs])) for k in ("ndcg_at_10",
                                                                                           "revenue_at_10")}
        avg |= {"n_lists": runs[0]["n_lists"], "seeds": len(runs),
                "ndcg_at_10_by_seed": [r["ndcg_at_10"] for r in runs]}
        table[name] = avg
        print(f"{name}: held-out nDCG@10 {avg['ndcg_at_10']:.4f}, revenue@10 {avg['revenue_at_10']:.1f}", flush=True)
    agree = {name: abs(c["ndcg_at_10"] - table[name]["ndcg_at_10"]) < 1e-9 if not table[name].get("seeds", 1) > 1
             else abs(c["ndcg_at_10"] - table[name]["ndcg_at_10_by_seed"][0]) < 1e-9 for name, c in checks.items()}
    spark_fig = meta.get("reranker_evaluation", {})
    agree_spark = {arm: abs(spark_fig[arm]["ndcg_at_10"] - table[f"vistarank {arm}"]["ndcg_at_10"]) < 1e-6
                   for arm in ("meta", "meta_no_image", "popularity", "cf") if arm in spark_fig}
    peers = [n for n in PEERS]
    best_nd = max(peers, key=lambda n: table[n]["ndcg_at_10"])
    best_rev = max(peers, key=lambda n: table[n]["revenue_at_10"])
    meta_row = table["vistarank meta"]
    goals = {
        "goal_ndcg_1_05x_best_peer": meta_row["ndcg_at_10"] >= 1.05 * table[best_nd]["ndcg_at_10"],
        "goal_revenue_1_05x_best_peer": meta_row["revenue_at_10"] >= 1.05 * table[best_rev]["revenue_at_10"],
        "goal_metrics_agree_with_recommenders": all(agree.values()),
        "goal_metrics_agree_with_train_reranker": bool(agree_spark) and all(agree_spark.values()),
    }
    doc = {"table": {n: {k: v for k, v in r.items() if k != "ndcg_at_10_by_seed"} | (
        {"ndcg_at_10_by_seed": r["ndcg_at_10_by_seed"]} if "ndcg_at_10_by_seed" in r else {}) for n, r in table.items()},
           "best_peer": {"ndcg_at_10": best_nd, "revenue_at_10": best_rev},
           "ratio_to_best_peer": {"ndcg_at_10": meta_row["ndcg_at_10"] / table[best_nd]["ndcg_at_10"],
                                  "revenue_at_10": meta_row["revenue_at_10"] / table[best_rev]["revenue_at_10"]},
           "chosen": chosen, "tuning": tuning, "cross_check": {"recommenders_python_evaluation": checks,
                                                               "agree": agree, "agree_train_reranker": agree_spark},
           "new_sales_share": float((held["label"] > 0)[held["recency"] >= 1.0].sum() / (held["label"] > 0).sum()),
           "windows": meta["windows"], "goals": goals, "peer_seconds": round(time.perf_counter() - t0, 1)}
    with open(os.path.join(args.work, "metrics.json"), "w") as fh:
        json.dump(doc, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
