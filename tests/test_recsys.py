"""Recommenders: exact similarity joins, the engines on hand-made examples, candidates."""
import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.recsys import candidates as C
from vistarank.recsys import engines as E
from vistarank.recsys import similarity as S

D = dt.date(2026, 9, 20)


def brute_force(ids, x, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    out = {}
    for i, qid in enumerate(ids):
        order = sorted(range(len(ids)), key=lambda j: (-sims[i, j], ids[j]))[:k]
        out[qid] = [(ids[j], sims[i, j]) for j in order]
    return out


def neighbours(df):
    out = {}
    for r in df.orderBy("query_id", "rank").collect():
        out.setdefault(r["query_id"], []).append((r["neighbor_id"], r["similarity"]))
    return out


@pytest.mark.parametrize("blocks", [(4096, 200_000), (37, 50)], ids=["one-block", "many-blocks"])
def test_dense_top_k_is_exact(spark, blocks):
    rng = np.random.default_rng(0)
    x = rng.random((300, 12)) * (rng.random((300, 12)) < 0.4) + 1e-3
    x[5] = x[4] * 3  # nearly the same direction: each other's nearest neighbour
    x[5, 0] += 0.05
    ids = [f"s{i:03d}" for i in range(300)]
    df = spark.createDataFrame([(i, [float(v) for v in row]) for i, row in zip(ids, x)], "id string, vec array<float>")
    got = neighbours(S.dense_top_k(df, df, 10, dim=12, n_queries=300, n_candidates=300,
                                   query_block_rows=blocks[0], candidate_block_rows=blocks[1]))
    want = brute_force(ids, x.astype(np.float32).astype(np.float64), 10)
    assert set(got) == set(ids)
    for q in ids:
        assert [n for n, _ in got[q]] == [n for n, _ in want[q]], q
        np.testing.assert_allclose([s for _, s in got[q]], [s for _, s in want[q]], atol=1e-5)
    assert got["s004"][0][0] == "s005"


def test_sparse_top_k_is_exact_and_shrinks(spark):
    rng = np.random.default_rng(1)
    x = rng.random((40, 25)) * (rng.random((40, 25)) < 0.2)
    x[x.sum(axis=1) == 0, 0] = 1.0
    ids = [f"s{i:02d}" for i in range(40)]
    rows = [(ids[i], f"f{j}", float(x[i, j])) for i in range(40) for j in range(25) if x[i, j] > 0]
    prof = spark.createDataFrame(rows, "id string, feature string, value double")
    got = neighbours(S.sparse_top_k(prof, prof, 5))
    want = brute_force(ids, x, 40)
    for q, lst in got.items():
        positive = [(n, s) for n, s in want[q] if s > 0][:5]
        assert [n for n, _ in lst] == [n for n, _ in positive]
        np.testing.assert_allclose([s for _, s in lst], [s for _, s in positive], atol=1e-9)
    # shrinkage: a pair with 1 shared feature loses more than a pair with 3
    small = spark.createDataFrame([("a", "u1", 1.0), ("b", "u1", 1.0), ("c", "u1", 1.0), ("c", "u2", 1.0),
                                   ("c", "u3", 1.0), ("d", "u1", 1.0), ("d", "u2", 1.0), ("d", "u3", 1.0)],
                                  "id string, feature string, value double")
    sh = {(r["query_id"], r["neighbor_id"]): r["similarity"]
          for r in S.sparse_top_k(small, small, 5, shrinkage=1.0).collect()}
    assert sh[("a", "b")] == pytest.approx(1.0 * 1 / 2)
    assert sh[("c", "d")] == pytest.approx(1.0 * 3 / 4)


def test_lsh_finds_most_exact_neighbours(spark):
    rng = np.random.default_rng(2)
    centers = rng.random((10, 8))
    x = centers[rng.integers(0, 10, 400)] + rng.random((400, 8)) * 0.05
    ids = [f"s{i:03d}" for i in range(400)]
    df = spark.createDataFrame([(i, [float(v) for v in row]) for i, row in zip(ids, x)], "id string, vec array<float>")
    exact = neighbours(S.dense_top_k(df, df, 10, dim=8, n_queries=400, n_candidates=400))
    approx = neighbours(S.lsh_top_k(df, df, 10, dim=8, num_hash_tables=8))
    recall = np.mean([len({n for n, _ in approx.get(q, [])} & {n for n, _ in exact[q]}) / 10 for q in ids])
    assert recall > 0.8


def _market(spark):
    sales = spark.createDataFrame([
        ("s1", "Nice", "France", "seaside", 4, 100.0, D - dt.timedelta(days=6), D + dt.timedelta(days=1), "beach sand"),
        ("s2", "Nice", "France", "seaside", 4, 110.0, D - dt.timedelta(days=5), D + dt.timedelta(days=2), "beach pool"),
        ("s3", "Paris", "France", "city", 3, 90.0, D - dt.timedelta(days=5), D + dt.timedelta(days=3), "city tower"),
        ("s4", "Nice", "France", "seaside", 4, 105.0, D, D + dt.timedelta(days=6), "beach sand view"),  # opens today
        ("s5", "Rome", "Italy", "city", 5, 300.0, D - dt.timedelta(days=9), D - dt.timedelta(days=1), "old city"),
    ], "sale_id string, destination string, country string, destination_type string, stars int, price double, "
       "open_date date, close_date date, description string")
    day = lambda n: D - dt.timedelta(days=n)  # noqa: E731
    visits = spark.createDataFrame([
        ("u1", "s1", day(2)), ("u1", "s2", day(1)), ("u2", "s1", day(3)), ("u2", "s2", day(3)),
        ("u2", "s3", day(2)), ("u3", "s3", day(1)), ("u3", "s5", day(4)),
        ("u9", "s1", D),  # on the run date itself: not yet known
    ], "user_id string, sale_id string, visit_date date")
    purchases = spark.createDataFrame([], "user_id string, sale_id string, purchase_date date")
    themes = spark.createDataFrame([("s1", [0.9, 0.1]), ("s2", [0.8, 0.2]), ("s3", [0.1, 0.9]),
                                    ("s4", [1.0, 0.0]), ("s5", [0.0, 1.0])], "sale_id string, weights array<float>")
    return sales, visits, purchases, themes


def test_cf_score_equals_the_formula(spark):
    sales, visits, purchases, _ = _market(spark)
    ev = E.events(visits, purchases, 5.0)
    # no decay (huge half life): a user's weight on a sale = their visits
    nb = E.covisit_neighbors(ev, D, E.open_sales(sales, D), 50, shrinkage=0.0, half_life_days=1e9)
    sims = {(r["query_id"], r["neighbor_id"]): r["similarity"] for r in nb.collect()}
    # user vectors (u1, u2, u3) before D: s1 = (1,1,0), s2 = (1,1,0), s3 = (0,1,1); u9's visit is on D
    assert sims[("s2", "s1")] == pytest.approx(1.0)
    assert sims[("s3", "s1")] == pytest.approx(1 / (np.sqrt(2) * np.sqrt(2)))
    keys = E.active_users(visits, D, 14).withColumn("as_of", F.lit(D))
    hist = E.history_as_of(ev, keys, 1e9).withColumn("snapshot", F.lit(D))
    cf = {(r["user_id"], r["sale_id"]): r["cf"]
          for r in E.cf_scores(hist, nb.withColumn("snapshot", F.lit(D))).collect()}
    # u1 visited s1 and s2: cf(u1, s3) = sim(s1, s3) + sim(s2, s3) = 0.5 + 0.5
    assert cf[("u1", "s3")] == pytest.approx(1.0)
    # u3 visited s3 and s5 (s5 shares no visitor with s1): cf(u3, s1) = sim(s3, s1) = 0.5
    assert cf[("u3", "s1")] == pytest.approx(0.5)
    assert not any(s == "s4" for _, s in cf)  # opened today: nobody visited it before


def test_candidates_open_sales_only_and_cold_start(spark):
    sales, visits, purchases, themes = _market(spark)
    rc = C.RecsysConfig(shrinkage=0.0, half_life_days=1e9)  # no decay: sims as in the formula test
    built = C.build(C.Inputs(sales, visits, purchases, themes), rc, D)
    rows = {(r["user_id"], r["sale_id"]): r for r in built.candidates.collect()}
    built.release()
    assert {s for _, s in rows} == {"s1", "s2", "s3", "s4"}  # s5 closed yesterday
    assert {u for u, _ in rows} == {"u1", "u2", "u3"}  # u9's only visit is on the run date
    new = rows[("u1", "s4")]
    assert new["cf"] == 0.0 and new["content"] > 0.5 and new["image"] > 0.9  # cold start: content and images
    for r in rows.values():
        for e in C.ENGINES:
            assert 0.0 <= r[e] <= 1.0 + 1e-9, (e, r)
    # cf is x / (1 + x) of the raw sum: u1 visited s1 and s2, each with sim 0.5 to s3
    assert rows[("u1", "s3")]["cf"] == pytest.approx(1.0 / 2.0)
    assert rows[("u1", "s4")]["recency"] == 1.0 and rows[("u1", "s1")]["recency"] == pytest.approx(1 / 7)
    assert built.stats["cf_coverage_new"] == 0.0 and built.stats["new_sales"] == 1


def test_build_candidates_stage_on_the_tiny_world(spark, themed):
    from vistarank.jobs import build_candidates

    cfg = themed
    d = cfg.effective_run_date()
    res = build_candidates.run(spark, cfg)
    cands = io.read(spark, cfg, T.CANDIDATES).where(F.col("run_date") == F.lit(d))
    n = cands.count()
    assert n == res.outputs["candidates"] and n > 0
    assert cands.select("user_id", "sale_id").distinct().count() == n
    sales = io.read(spark, cfg, T.SALES)
    closed = cands.join(sales, "sale_id").where((F.col("open_date") > F.lit(d)) | (F.col("close_date") < F.lit(d)))
    assert closed.count() == 0
    nb = io.read(spark, cfg, T.SALE_NEIGHBORS).where(F.col("run_date") == F.lit(d))
    assert {r["kind"] for r in nb.select("kind").distinct().collect()} == {"covisit", "content", "themes"}
    assert nb.groupBy("kind", "sale_id").count().agg(F.max("count")).first()[0] <= cfg.recsys.neighbors_k
    # a rerun of the date replaces it exactly; the pipeline then finds it up to date
    build_candidates.run(spark, cfg)
    assert io.read(spark, cfg, T.CANDIDATES).where(F.col("run_date") == F.lit(d)).count() == n
    assert not build_candidates.needed(spark, cfg)
