"""The maintained benchmark suite: what each benchmark measures, how the runner calls it
(full and quick), what it needs, which result files it writes, and how its figures are
summarised in docs/benchmarks.md. ``run.py`` runs them; ``report.py`` renders the docs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# what a benchmark needs beyond `make setup`
DEMO = "demo"  # a finished demo lakehouse (`make demo`), passed as --lakehouse
PEERS = "peers"  # the peers' environment (`make peers-env`)
GPU = "gpu"  # a GPU machine: never run by the runner here


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    what: str
    results: tuple[str, ...]
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    out_flag: str = "--out"


def _f(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _score_throughput(doc: dict) -> list[str]:
    if "runs" in doc:  # the GPU file: one document per run
        rows = []
        for run in doc["runs"]:
            for model, m in run["result"]["models"].items():
                arms = m["arms"]
                c = arms.get("c", {})
                rows.append([model, run["result"]["machine"].get("gpu") or "-",
                             _f(arms.get("a", {}).get("images_per_s"), 0), _f(arms.get("b", {}).get("images_per_s"), 0),
                             f"{_f(c.get('images_per_s'), 0)} / {_f(c.get('warm_images_per_s'), 0)}",
                             _f(arms.get("d", {}).get("images_per_s"), 0)])
        return _table(["model", "GPU", "a img/s", "b img/s", "c img/s cold / warm", "d img/s"], rows)
    rows = []
    for model, m in doc["models"].items():
        a = m["arms"]
        rows.append([model, _f(a["a"]["images_per_s"], 0), _f(a["b"]["images_per_s"], 0),
                     f"{_f(a['c']['images_per_s'], 0)} ({_f(a['c'].get('warm_images_per_s'), 0)})",
                     _f(a.get("d", {}).get("images_per_s"), 0), _f(m.get("c_over_d"), 2)])
    return _table(["model", "a: bare model img/s", "b: decode + model img/s", "c: label_images img/s (warm)",
                   "d: predict_batch_udf img/s", "c / d"], rows)


def _train_throughput(doc: dict) -> list[str]:
    return _table(["backend", "workers", "seconds", "samples/s", "identical weights"],
                  [[r["backend"], r["workers"], _f(r["seconds"], 1), _f(r["samples_per_s"], 0),
                    {True: "yes", False: "no"}.get(r.get("identical_weights"), "-")] for r in doc["results"]])


def _catalogue(doc: dict) -> list[str]:
    rows = []
    for r in doc["results"]:
        nv = r.get("new_version") or {}
        rows.append([f"{r['images']:,}", _f(r["ingest_manifest"]["seconds"], 1), _f(r["increment"]["seconds"], 1),
                     _f(r["night_seconds"], 1), _f(r["ingest_manifest"]["bytes_read"] / 1e6, 1),
                     _f(r["increment"]["bytes_read"] / 1e6, 1), _f(nv.get("read_ratio"), 2),
                     _f((r.get("near_duplicates") or {}).get("candidates_per_image"), 3)])
    return _table(["images", "ingest s", "label s", "night s", "ingest read MB", "label read MB",
                   "new version: read / table", "near-dup candidates per image"], rows)


def _nightly(doc: dict) -> list[str]:
    return _table(["customers", "active", "open sales", "visits", "seconds", "active users/s", "shuffle per user",
                   "peak JVM MB"],
                  [[f"{r['users']:,}", f"{r['active_users']:,}", r["open_sales"], f"{r['visits']:,}",
                    _f(r["seconds"], 1), _f(r["users_per_second"], 0), f"{r['shuffle_bytes_per_user'] / 1e3:.1f} KB",
                    f"{r['peak_jvm_mb']:,}"] for r in doc["results"]])


def _nmf(doc: dict) -> list[str]:
    return _table(["rows", "scikit-learn fit s", "our fit s (passes)", "error ours / scikit-learn", "transform rows/s"],
                  [[f"{r['rows']:,}", _f(r["sklearn"]["seconds"], 2),
                    f"{_f(r['ours']['seconds'], 2)} ({r['ours']['passes']})", _f(r["error_ratio"], 7),
                    _f(r["ours"]["transform_rows_per_s"], 0)] for r in doc["results"]])


def _similarity(doc: dict) -> list[str]:
    def arm(r, a):
        x = r.get(a)
        if not x:
            return "not run"
        if x.get("skipped"):
            return f"skipped: {x['skipped']}"
        if x.get("timed_out"):
            return f"> {x.get('limit_s') or 'limit'} s (stopped)"
        s = f"{_f(x['seconds'], 1)} s"
        return s + (f", recall@50 {x['recall_at_50']:.5f}" if x.get("recall_at_50") is not None else "")

    return _table(["sales", "exact (ours)", "crossJoin + window", "LSH (MLlib)", "run"],
                  [[f"{r['sales']:,}", arm(r, "exact"), arm(r, "crossjoin"), arm(r, "lsh"), r.get("run", "")]
                   for r in doc["results"]])


def _heads_seeds(doc: dict) -> list[str]:
    r = doc["results"][0]
    keys = [("areas.noisy.top1", "areas top-1, noisy labels"), ("areas.cleaned.top1", "areas top-1, cleaned labels"),
            ("areas.true_labels.top1", "areas top-1, every label right"),
            ("derived.transfer_minus_scratch", "transfer minus from scratch, top-1"),
            ("cleaning.cleaned.precision", "cleaning flags: precision"),
            ("cleaning.cleaned.recall", "cleaning flags: recall"),
            ("aesthetics.emd_head.spearman", "aesthetics Spearman"),
            ("gallery.aesthetics.first_in_hidden_top3", "galleries: first photo in the hidden best 3")]
    rows = [[label, _f(r[k]["mean"]), _f(r[k]["std"]), _f(r[k]["min"]), _f(r[k]["max"])] for k, label in keys if k in r]
    rows.append(["share of the noise's cost that cleaning recovers", _f(doc.get("cleaning_recovered_share_of_noise_cost")),
                 f"se {_f(doc.get('cleaning_recovered_share_se'))}", "", ""])
    return [f"Seeds: {', '.join(str(s) for s in doc['seeds'])}.", ""] + _table(
        ["figure", "mean", "std", "min", "max"], rows)


def _reranker(doc: dict) -> list[str]:
    r = doc["results"][0]
    s = r["summary"]
    return _table(["train_reranker s (baseline s)", "meta nDCG@10", "meta without images nDCG@10",
                   "popularity nDCG@10"],
                  [[f"{_f(r['seconds'], 1)} ({_f(r.get('baseline_seconds'), 1)})", _f(s["meta"]["ndcg_at_10"]),
                    _f(s["meta_no_image"]["ndcg_at_10"]), _f(s["popularity"]["ndcg_at_10"])]])


SLICES = [("all", "all"), ("sale_age=0", "sale opened that day"), ("sale_age=1-2", "opened 1 to 2 days before"),
          ("sale_age=3+", "opened 3 or more days before")]
ARMS = ["meta", "meta_no_image", "popularity", "cf", "als", "image", "recency"]


def _demo_quality(doc: dict) -> list[str]:
    r = doc["results"][0]
    nd = r["rerank"]["ndcg_at_10"]
    h = r["heads"]
    lines = ["nDCG@10 on the held-out days, by the bought sale's age:", ""]
    lines += _table(["slice"] + ARMS, [[label] + [_f(nd.get(f"{a}|{k}")) for a in ARMS] for k, label in SLICES])
    lines += ["", "Themes, heads and galleries:", ""]
    lines += _table(["figure", "value"], [
        ["themes: median tags at 10% of the top weight", _f(r["themes"]["median_tags_at_10pct"], 0)],
        ["themes: purity against the hidden scene theme", _f(r["themes"]["purity_hidden_theme"])],
        ["areas top-1: noisy / cleaned labels", f"{_f(h['areas_top1']['noisy'])} / {_f(h['areas_top1']['cleaned'])}"],
        ["areas top-1: transfer / fine-tuned / from scratch",
         f"{_f(h['areas_top1']['transfer_head'])} / {_f(h['areas_top1']['fine_tuned'])} / "
         f"{_f(h['areas_top1']['from_scratch'])}"],
        ["aesthetics Spearman (EMD)", f"{_f(h['aesthetics_spearman'])} ({_f(h['aesthetics_emd'])})"],
        ["galleries: first photo in the hidden best 3", _f(h["gallery"]["first_in_hidden_top3"])],
        ["hidden-taste ceiling nDCG@10", _f(r["hidden_truth_ceiling"]["taste"]["all"])]])
    return lines


def _peers(doc: dict) -> list[str]:
    r = doc["results"][0]
    t = r["table"]
    names = ["vistarank meta", "vistarank meta_no_image", "Recommenders SAR", "implicit ALS", "vistarank als",
             "vistarank image", "popularity (all history)", "vistarank popularity", "implicit BPR"]
    rows = [[n, f"{_f(t[n]['ndcg_at_10'])} (± {_f(t[n].get('ndcg_se'))})", _f(t[n]["revenue_at_10"], 1),
             _f((t[n].get("new_sales") or {}).get("ndcg_at_10"))] for n in names if n in t]
    ratio = r["ratio_to_best_peer"]
    return _table(["method", "nDCG@10 (± 1 se)", "revenue@10", "nDCG@10, sale opened that day"], rows) + [
        "", f"Meta against the best peer: {ratio['ndcg_at_10']:.2f} x in nDCG@10 ({r['best_peer']['ndcg_at_10']}), "
            f"{ratio['revenue_at_10']:.2f} x in revenue@10 ({r['best_peer']['revenue_at_10']})."]


def _pipeline_times(doc: dict) -> list[str]:
    return _table(["stage", "seconds"], [[s["stage"], _f(s["seconds"], 1)] for s in doc["stages"]]
                  + [["total", _f(doc["total_seconds"], 1)]])


SUITE: tuple[Benchmark, ...] = (
    Benchmark("score_throughput", "score_throughput.py",
              "Images/s of scoring, 224 px, 4,000 rendered JPEGs, random weights, in four arms: (a) the bare model on "
              "decoded tensors, (b) decode and model in one process, (c) `label_images` end to end, Delta to Delta, "
              "(d) `predict_batch_udf` with a plain decode UDF. Goal: c at least 1.3 x d.",
              ("score_throughput.json", "score_throughput_gpu.json"),
              quick=("--n", "400", "--models", "scene", "--arms", "a,b,c"), out_flag="--output"),
    Benchmark("train_throughput", "train_throughput.py",
              "Samples/s of the data-parallel head training on Spark barrier tasks: 20,000 synthetic 128-d rows, "
              "5 epochs, batch 64 per worker, 1 and 2 workers, both collective backends (the launch included).",
              ("train_throughput.json",), quick=("--rows", "2000", "--epochs", "2", "--backends", "tf")),
    Benchmark("catalogue_scaling", "catalogue_scaling.py",
              "A night of ingest and labelling (1,000 new files) as the catalogue grows to 10 k, 100 k and 1 M images: "
              "seconds and bytes read from storage; what a new model version reads; near-duplicate candidates.",
              ("catalogue_scaling.json", "catalogue_scaling_1m_new_version.json"),
              quick=("--sizes", "10000", "--new-version-max", "10000", "--tree-max", "0")),
    Benchmark("nightly_scaling", "nightly_scaling.py",
              "The `recommend` scoring of every active customer against the day's open sales, on synthetic markets of "
              "100 k and 1 M customers: seconds, shuffle bytes per user, peak memory.",
              ("nightly_scaling.json",), quick=("--users", "10000", "--open", "100")),
    Benchmark("nmf_scaling", "nmf_scaling.py",
              "The distributed NMF fit against scikit-learn's on the same matrix (rows x 365 tags, 30 planted themes): "
              "error ratio (goal at most 1.01), time, NNLS transform rows/s.",
              ("nmf_scaling.json",), quick=("--rows", "10000")),
    Benchmark("similarity_scaling", "similarity_scaling.py",
              "Top-50 neighbours per sale by cosine of 30-theme mixes: our exact blocked join against Spark's crossJoin "
              "with a window and MLlib's LSH. Goal: exact, and at least 10 x faster than crossJoin at 50 k sales.",
              ("similarity_scaling.json",), full=("--crossjoin-timeout", "300"),
              quick=("--sales", "2000", "--arms", "exact", "crossjoin", "--crossjoin-timeout", "120")),
    Benchmark("pipeline_times", "pipeline_times.py",
              "Seconds per stage of the last `make demo` run (from the lakehouse's `stage_runs`).",
              ("pipeline_times.json",), needs=(DEMO,), out_flag="--output"),
    Benchmark("demo_quality", "demo_quality.py",
              "The demo world's figures: themes (tags per theme, purity), the re-ranker by slice, the heads "
              "(areas, aesthetics, galleries) against the hidden truth.",
              ("demo_quality.json",), needs=(DEMO,)),
    Benchmark("heads_seeds", "heads_seeds.py",
              "`train_head` on a copy of a demo lakehouse with `training.seed` 0 to 9 (label draw, noise, cleaning "
              "folds, initialisation): mean and spread of every head figure.",
              ("heads_seeds.json",), full=("--seeds", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
              quick=("--seeds", "0"), needs=(DEMO,)),
    Benchmark("reranker_demo", "reranker_demo.py",
              "`train_reranker`'s time on the demo lakehouse against a baseline revision, in one run, and the held-out "
              "quality it reaches.", ("reranker_demo.json",), quick=("--skip-baseline",), needs=(DEMO,)),
    Benchmark("peers", "peers.py",
              "vistarank against the recommenders a user would run instead (Recommenders SAR, implicit ALS and BPR, "
              "popularity), each refitted per held-out day and tuned on the validation days; metrics cross-checked "
              "with Recommenders' `python_evaluation`.",
              ("peers.json",), quick=("--quick",), needs=(DEMO, PEERS)),
)

SUMMARIES: dict[str, Callable[[dict], list[str]]] = {
    "score_throughput": _score_throughput, "train_throughput": _train_throughput, "catalogue_scaling": _catalogue,
    "nightly_scaling": _nightly, "nmf_scaling": _nmf, "similarity_scaling": _similarity,
    "pipeline_times": _pipeline_times, "demo_quality": _demo_quality, "heads_seeds": _heads_seeds,
    "reranker_demo": _reranker, "peers": _peers}


def by_name(name: str) -> Benchmark:
    for b in SUITE:
        if b.name == name:
            return b
    raise KeyError(f"no benchmark {name!r}; the suite has {', '.join(b.name for b in SUITE)}")
