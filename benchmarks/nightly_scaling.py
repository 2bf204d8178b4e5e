"""Nightly scaling: every active customer's top 10 among the day's open sales, as the users grow
(issue #14).

A synthetic market is written to Delta for each size:
- Sales: about ``--open`` sales open on the run date among the sales of the 80 days before
  it (a new batch opens every day, each open 5 to 9 days: a few thousand recent sales),
  with destinations, countries, types, stars, prices, 8-word descriptions and a
  30-theme mix each.
- Customers: ``--users`` of them; each has a history length drawn from a log-normal
  (median 15 events, from 3 to 300) of visits spread over the 56 days before the run
  date, each of a sale open around that day; 4% of the visits are purchases too.

Measured (``recsys.candidates_sample`` aside, this is the ``recommend`` job's scoring):
the scoring state of the run date (events of the history window, the catalogue's
content profiles, the day block with co-visit neighbours), the user states, the kernel
with a fixed re-ranker, and the top 10 per active user written to Delta:
- seconds from start to the Delta commit;
- shuffle bytes written (every stage's shuffle write, from Spark's REST status API);
- peak RSS of the driver JVM (which runs the executors in local mode) and, apart, of the
  Python workers, sampled every 0.2 s.

Goals: the time at the largest size within 12 x the time at a size 10 x smaller
(linear); 1 M users within 15 minutes on this machine; shuffle bytes per user flat:
within 1.2 x from the smallest to the largest size, and within 1.2 x between ``--open``
and a third of it at the smallest size (the pairs are never shuffled).

    python benchmarks/nightly_scaling.py                    # 100k and 1M users, 300 open sales
    python benchmarks/nightly_scaling.py --users 10000 100000
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
import urllib.request

import _results  # benchmarks/_results.py (scripts run from this folder's path)
from _results import PeakRSS

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_DATE = dt.date(2026, 6, 1)
HISTORY_DAYS = 56
SALE_DAYS = 80
N_THEMES = 30


def write_market(spark, cfg, n_users: int, n_open: int, seed: int) -> dict:
    """The synthetic market's tables (see the docstring); returns their sizes."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    per_day = max(1, round(n_open / 7))  # sales open 7 days on average
    n_sales = (SALE_DAYS + 10) * per_day
    h = lambda *c: F.abs(F.xxhash64(*c, F.lit(seed)))  # noqa: E731
    first = RUN_DATE - dt.timedelta(days=SALE_DAYS)
    words = F.array(*[F.lit(w) for w in
                      (f"{a}{b}" for a in ("sea", "sun", "spa", "old", "sky", "pine", "lake", "rock", "sand", "snow",
                                            "palm", "tower", "river", "bay", "hill")
                       for b in ("side", "view", "town", "park", "port", "field", "wood", "crest", "gate", "light",
                                 "stone", "bridge", "land", "shore", "moor", "vale", "cove", "point", "ridge",
                                 "glen"))])
    sales = (spark.range(n_sales).select(
        F.format_string("s%07d", "id").alias("sale_id"),
        F.date_add(F.lit(first), (F.col("id") / per_day).cast("int")).alias("open_date"),
        (h("id", F.lit(1)) % 5 + 5).cast("int").alias("dur"), "id")
        .select("sale_id", F.format_string("h%07d", "id").alias("hotel_id"), F.lit("hotel").alias("hotel"),
                F.format_string("dest%02d", h("id", F.lit(2)) % 60).alias("destination"),
                F.format_string("country%02d", h("id", F.lit(3)) % 12).alias("country"),
                F.lit("region").alias("region"),
                F.element_at(F.array(*[F.lit(t) for t in ("seaside", "city", "mountain", "countryside")]),
                             (h("id", F.lit(4)) % 4 + 1).cast("int")).alias("destination_type"),
                (h("id", F.lit(5)) % 3 + 3).cast("int").alias("stars"),
                F.round(F.exp(F.lit(4.0) + (h("id", F.lit(6)) % 100) / 50.0), 0).alias("price"),
                "open_date", F.date_add("open_date", F.col("dur") - 1).alias("close_date"),
                F.concat_ws(" ", *[F.element_at(words, (h("id", F.lit(10 + i)) % 300 + 1).cast("int"))
                                   for i in range(8)]).alias("description"),
                F.lit(5).alias("n_images")))
    io.write(sales, cfg, T.SALES)
    themes = spark.range(n_sales).select(
        F.format_string("s%07d", "id").alias("sale_id"),
        F.array(*[F.pow((h("id", F.lit(100 + t)) % 1000) / 1000.0, F.lit(4.0)) for t in range(N_THEMES)]).alias("w"))
    total = F.aggregate("w", F.lit(0.0), lambda a, x: a + x)
    io.write(themes.select("sale_id", F.transform("w", lambda x: (x / total).cast("float")).alias("weights"),
                           F.lit(5).alias("n_images"), F.lit(0).alias("dominant_theme")), cfg, T.SALE_THEMES)

    # history lengths: log-normal, median 15, clipped to [3, 300]
    users = spark.range(n_users).select(
        F.format_string("u%08d", "id").alias("user_id"),
        F.least(F.lit(300), F.greatest(F.lit(3), F.round(F.exp(F.lit(2.7) + F.randn(seed) * 1.0)).cast("int")))
        .alias("n"))
    ev = users.select("user_id", F.explode(F.sequence(F.lit(1), "n")).alias("e"))
    # each event: a day of the history window, a sale that opened 0 to 6 days before it
    day = (F.lit(1) + (h("user_id", "e", F.lit(20)) % HISTORY_DAYS)).cast("int")
    opened = (SALE_DAYS - day - h("user_id", "e", F.lit(21)) % 7).cast("long")
    sale = opened * per_day + h("user_id", "e", F.lit(22)) % per_day
    visits = ev.select("user_id", F.format_string("s%07d", sale).alias("sale_id"),
                       F.date_sub(F.lit(RUN_DATE), day).alias("visit_date"),
                       (h("user_id", "e", F.lit(23)) % 1000 < 40).alias("buy"))
    visits = visits.withColumn("visit_ts", F.col("visit_date").cast("timestamp"))
    io.write(visits.drop("buy"), cfg, T.VISITS)
    purchases = (io.read(spark, cfg, T.VISITS).where(h("user_id", "sale_id", "visit_ts", F.lit(24)) % 1000 < 40)
                 .select("user_id", "sale_id", F.col("visit_ts").alias("purchase_ts"),
                         F.col("visit_date").alias("purchase_date"))
                 .dropDuplicates(["user_id", "sale_id", "purchase_date"])
                 .join(io.read(spark, cfg, T.SALES).select("sale_id", F.col("price").alias("amount")), "sale_id"))
    io.write(purchases, cfg, T.PURCHASES)
    return {"sales": n_sales, "visits": io.read(spark, cfg, T.VISITS).count(),
            "purchases": io.read(spark, cfg, T.PURCHASES).count()}


class Shuffle:
    """Shuffle bytes written by the stages completed since the last mark (Spark's REST API)."""

    def __init__(self, spark) -> None:
        sc = spark.sparkContext
        self.url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?status=complete"
        self.seen = {(s["stageId"], s["attemptId"]) for s in self._stages()}

    def _stages(self) -> list[dict]:
        with urllib.request.urlopen(self.url, timeout=30) as r:
            return json.load(r)

    def since_mark(self) -> int:
        time.sleep(1.5)  # the status store is updated asynchronously
        new = [s for s in self._stages() if (s["stageId"], s["attemptId"]) not in self.seen]
        self.seen |= {(s["stageId"], s["attemptId"]) for s in new}
        return int(sum(s.get("shuffleWriteBytes", 0) for s in new))


def night(spark, cfg) -> dict:
    """The recommend job's scoring of the run date to Delta (without its report)."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.recsys import candidates as C
    from vistarank.recsys import kernel as K
    from vistarank.recsys.engines import ENGINES

    rr = K.Reranker(tuple(ENGINES), (0.3, 0.2, 0.5, 0.4, 0.3, 0.5, 0.2, 0.1), (0.2, 0.15, 0.2, 0.2, 0.2, 0.3, 0.2, 0.3),
                    (0.9, 0.5, 0.6, 0.5, 0.3, 0.3, 0.5, 0.5), -3.0)
    inp = C.Inputs(io.read(spark, cfg, T.SALES), io.read(spark, cfg, T.VISITS), io.read(spark, cfg, T.PURCHASES),
                   io.read(spark, cfg, T.SALE_THEMES))
    t0 = time.perf_counter()
    srv = C.serving(spark, inp, cfg.recsys, RUN_DATE)
    try:
        top = K.score_states(spark, srv.states(srv.active_keys()), srv.blocks, cfg.recsys.price_sigma, "top", rr,
                             cfg.rerank.top_n, cfg.rerank.exclude_bought)
        recs = top.select(F.col("as_of").alias("run_date"), "user_id", "rank", "sale_id", "probability",
                          "top_engine", F.lit("bench").alias("model_version"))
        rows = io.write(recs, cfg, T.RECOMMENDATIONS, replace_where=f"run_date = '{RUN_DATE}'")
        seconds = time.perf_counter() - t0
        n_open = srv.blocks.n_open()
    finally:
        srv.release()
    return {"seconds": round(seconds, 1), "recommendations": rows, "open_sales": n_open}


def run_size(spark, root: str, n_users: int, n_open: int, shuffle: Shuffle) -> dict:
    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import load_config

    lake = os.path.join(root, f"u{n_users}_o{n_open}")
    cfg = load_config("local", [f"lakehouse.root={lake}", f"recsys.history_days={HISTORY_DAYS}"])
    t0 = time.perf_counter()
    sizes = write_market(spark, cfg, n_users, n_open, seed=n_users + n_open)
    build_s = time.perf_counter() - t0
    shuffle.since_mark()
    with PeakRSS() as rss:
        out = night(spark, cfg)
    out["shuffle_bytes"] = shuffle.since_mark()
    out.update(users=n_users, open_target=n_open, build_seconds=round(build_s, 1), **sizes,
               peak_jvm_mb=round(rss.peak_jvm / 2**20), peak_python_mb=round(rss.peak_python / 2**20),
               peak_total_mb=round(rss.peak / 2**20))
    out["active_users"] = io.read(spark, cfg, T.RECOMMENDATIONS).select("user_id").distinct().count()
    out["shuffle_bytes_per_user"] = round(out["shuffle_bytes"] / max(out["active_users"], 1), 1)
    out["users_per_second"] = round(out["active_users"] / max(out["seconds"], 1e-9))
    print(json.dumps(out), flush=True)
    shutil.rmtree(lake, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--open", type=int, default=300, help="sales open on the run date (about)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "nightly_scaling.json"))
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="nightly_")
    spark = _results.local_spark(root, "10g")
    shuffle = Shuffle(spark)
    sizes = sorted(args.users)
    results = [run_size(spark, root, sizes[0], max(1, args.open // 3), shuffle)]
    results += [run_size(spark, root, n, args.open, shuffle) for n in sizes]
    fewer, small, large = results[0], results[1], results[-1]
    ratio = large["users"] / small["users"]
    goals = {
        "goal_linear": large["seconds"] <= 1.2 * ratio * small["seconds"],
        "goal_1m_within_15_min": all(r["seconds"] <= 900 for r in results[1:] if r["users"] <= 1_000_000)
                                  and any(r["users"] >= 1_000_000 for r in results),
        "goal_shuffle_flat_in_users": large["shuffle_bytes_per_user"] <= 1.2 * small["shuffle_bytes_per_user"],
        "goal_shuffle_flat_in_sales": small["shuffle_bytes_per_user"] <= 1.2 * fewer["shuffle_bytes_per_user"],
    }
    _results.write("nightly_scaling", results, args.out, run_date=str(RUN_DATE), history_days=HISTORY_DAYS, **goals)
    print(json.dumps(goals))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
