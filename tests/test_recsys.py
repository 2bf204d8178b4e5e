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


def test_block_top_k_breaks_ties_at_the_kth_place_by_id():
    """Twelve candidates equally similar to the query: the top 3 are the 3 smallest ids,
    whatever order they arrive in (argpartition alone keeps an arbitrary 3)."""
    from vistarank.udfs.topk import block_top_k

    rng = np.random.default_rng(0)
    ids = np.array([f"s{i:02d}" for i in range(12)], dtype=object)
    same = np.ones((12, 4), np.float32) / 2.0  # unit vectors, all equal
    for _ in range(5):
        perm = rng.permutation(12)
        got = block_top_k(np.array(["q"], dtype=object), same[:1], ids[perm], same[perm], 3, exclude_self=False)
        assert list(got["neighbor_id"]) == ["s00", "s01", "s02"]
        # a strictly more similar candidate goes first although its id sorts last
        best = np.array([[0.6, 0.4, 0.4, 0.5744563]], np.float32)
        q = np.array([[0.7, 0.4, 0.4, 0.4472136]], np.float32)
        got = block_top_k(np.array(["q"], dtype=object), q / np.linalg.norm(q),
                          np.concatenate([ids[perm], np.array(["z"], dtype=object)]),
                          np.concatenate([same[perm], best / np.linalg.norm(best)]), 3, exclude_self=False)
        assert list(got["neighbor_id"]) == ["z", "s00", "s01"]
    # a query among the candidates does not find itself, and the rest tie by id
    got = block_top_k(ids[:2], same[:2], ids, same, 4)
    assert got.groupby("query_id")["neighbor_id"].apply(list).to_dict() == {
        "s00": ["s01", "s02", "s03", "s04"], "s01": ["s00", "s02", "s03", "s04"]}


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


@pytest.mark.parametrize("block_events", [10_000, 40], ids=["one-block", "user-blocks"])
def test_daily_covisit_similarities_equal_the_relational_snapshots(spark, block_events):
    """covisit_by_day (every day's co-visit similarities as sparse products in a task, one
    block of users or partial sums over several) gives, day by day, what the relational
    formula gives on that day's own snapshot of the history window."""
    from vistarank.recsys import kernel as K

    rng = np.random.default_rng(3)
    first = D - dt.timedelta(days=4)
    rows = [(f"u{rng.integers(30)}", f"s{rng.integers(12):02d}", D - dt.timedelta(days=int(rng.integers(1, 14))))
            for _ in range(400)]
    visits = spark.createDataFrame(rows, "user_id string, sale_id string, visit_date date")
    purchases = spark.createDataFrame([(u, s, d) for u, s, d in rows[:40]],
                                      "user_id string, sale_id string, purchase_date date")
    ev = E.events(visits, purchases, 5.0)
    days = [first + dt.timedelta(days=i) for i in range(5)]
    opened = spark.createDataFrame([(d, f"s{j:02d}") for d in days for j in range(12) if (j + d.day) % 3],
                                   "as_of date, sale_id string")
    hist, h = 5, 3.0
    for k in (50, 3):
        got = K.covisit_by_day(ev, opened, first, D, k, 2.0, h, hist, block_events=block_events).collect()
        assert got and {r["as_of"] for r in got} == set(days)
        for d in days:
            ev_d = ev.where((F.col("date") < F.lit(d)) & (F.col("date") >= F.lit(d - dt.timedelta(days=hist))))
            want = E.covisit_neighbors(ev_d, d, opened.where(F.col("as_of") == F.lit(d)), k, 2.0, h).collect()
            g = [r for r in got if r["as_of"] == d]
            if k == 50:  # every co-visited pair, with its similarity
                assert {(r["query_id"], r["neighbor_id"]): pytest.approx(r["similarity"], abs=1e-12) for r in want} \
                    == {(r["query_id"], r["neighbor_id"]): r["similarity"] for r in g}
            else:  # the k best of each sale (ties may pick either member: compare the similarities)
                per = lambda rs: {q: sorted(round(r["similarity"], 9) for r in rs if r["query_id"] == q)  # noqa: E731
                                  for q in {r["query_id"] for r in rs}}
                assert per(g) == per(want) and all(r["rank"] <= 3 for r in g)
            ranks = sorted((r["query_id"], r["rank"]) for r in g)
            assert len(ranks) == len(set(ranks))  # one neighbour per rank


def test_covisit_pairs_whose_products_underflow_are_kept_with_their_count():
    """A pair of sales whose only shared visitor's weights underflow in the product (a
    very short half-life) keeps its place as in the relational formula: similarity 0,
    counted as a co-visit, not dropped (scipy drops exact zeros from its products)."""
    import pandas as pd

    from vistarank.udfs import covisit as CV

    # day 10; si: A (age 1) and B (age 5); sj: B (age 5) and C (age 1); half-life 0.005 days
    pdf = pd.DataFrame({"user_id": ["A", "B", "B", "C"], "sale_id": ["si", "si", "sj", "sj"],
                        "t": [9, 5, 5, 9], "w": [1.0] * 4})
    opened = {10: np.array(["si", "sj"], dtype=object)}
    final = CV.block_similarities(pdf, opened, k=5, shrinkage=0.0, half_life_days=0.005, history_days=30,
                                  final=True)
    assert sorted(zip(final["query_id"], final["neighbor_id"], final["similarity"])) == [
        ("si", "sj", 0.0), ("sj", "si", 0.0)]
    part = CV.block_similarities(pdf, opened, k=5, shrinkage=0.0, half_life_days=0.005, history_days=30,
                                 final=False)
    pairs = part[part["query_id"].notna()]
    assert sorted(zip(pairs["query_id"], pairs["neighbor_id"], pairs["n"])) == [
        ("si", "si", 2), ("si", "sj", 1), ("sj", "si", 1), ("sj", "sj", 2)]
    assert (pairs[pairs["query_id"] != pairs["neighbor_id"]]["dot"] == 0).all()


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
    # no decay: sims as in the formula test; every active user's scores kept
    rc = C.RecsysConfig(shrinkage=0.0, half_life_days=1e9, candidates_sample=1.0)
    built = C.build(spark, C.Inputs(sales, visits, purchases, themes), rc, D)
    rows = {(r["user_id"], r["sale_id"]): r for r in built.candidates.collect()}
    built.release()
    assert {s for _, s in rows} == {"s1", "s2", "s3", "s4"}  # s5 closed yesterday
    assert {u for u, _ in rows} == {"u1", "u2", "u3"}  # u9's only visit is on the run date
    new = rows[("u1", "s4")]
    # cold start: content and images; u1 visited beach sales, s4 is one and s3 a city one
    assert new["cf"] == 0.0 and new["content"] > 0.5 and new["image"] > rows[("u1", "s3")]["image"] + 0.1
    assert new["new_sale"] == 1.0 and rows[("u1", "s1")]["new_sale"] == 0.0
    for r in rows.values():
        for e in C.ENGINES:
            assert 0.0 <= r[e] <= 1.0 + 1e-9, (e, r)
    # cf is x / (1 + x) of the raw sum: u1 visited s1 and s2, each with sim 0.5 to s3
    assert rows[("u1", "s3")]["cf"] == pytest.approx(1.0 / 2.0)
    assert rows[("u1", "s4")]["recency"] == 1.0 and rows[("u1", "s1")]["recency"] == pytest.approx(1 / 7)
    assert built.stats["cf_coverage_new"] == 0.0 and built.stats["new_sales"] == 1


@pytest.mark.pipeline
def test_build_candidates_stage_on_the_tiny_world(spark, themed):
    from vistarank.jobs import build_candidates

    cfg = themed
    d = cfg.effective_run_date()
    # a partition older than the retention: deleted by the run
    old = d - dt.timedelta(days=cfg.recsys.candidates_retention_days + 1)
    io.write(spark.createDataFrame([(old, "u", "s", *[0.0] * (len(T.CANDIDATES.schema) - 3))],
                                   T.CANDIDATES.schema), cfg,
             T.CANDIDATES, mode="append")
    res = build_candidates.run(spark, cfg)
    cands = io.read(spark, cfg, T.CANDIDATES).where(F.col("run_date") == F.lit(d))
    n = cands.count()
    assert n == res.outputs["candidates"] and n > 0
    assert cands.agg(F.max("als")).first()[0] > 0  # the latent-factor engine speaks on the tiny world
    assert io.read(spark, cfg, T.CANDIDATES).where(F.col("run_date") < F.lit(d)).count() == 0
    # a seeded sample of the active users (conftest: half of them), each with every open sale
    sampled = cands.select("user_id").distinct().count()
    active = E.active_users(io.read(spark, cfg, T.VISITS), d, cfg.recsys.active_days).count()
    n_open = E.open_sales(io.read(spark, cfg, T.SALES), d).count()
    assert 0 < sampled < active and n == sampled * n_open
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


@pytest.mark.parametrize("half_life, image_score", [(1e9, "fit"), (3.0, "fit"), (3.0, "cosine")],
                         ids=["no-decay", "decay", "decay-cosine"])
def test_kernel_scores_equal_the_relational_engines(spark, half_life, image_score):
    """The numpy kernel (day block broadcast, user states, mapInPandas) gives every
    engine's score that the relational formulas give, pair by pair (with either image score)."""
    from vistarank.recsys import kernel as K

    sales, visits, purchases, themes = _market(spark)
    purchases = spark.createDataFrame([("u2", "s2", D - dt.timedelta(days=1))],
                                      "user_id string, sale_id string, purchase_date date")
    rc = C.RecsysConfig(shrinkage=2.0, half_life_days=half_life)
    # the relational formulas (engines.features) over every active user x open sale pair
    ev_before = E.events(visits, purchases, rc.purchase_weight).where(F.col("date") < F.lit(D))
    open_ = E.open_sales(sales, D).select("sale_id")
    cov = E.covisit_neighbors(ev_before, D, open_, rc.neighbors_k, rc.shrinkage, half_life)
    pairs = (E.active_users(visits, D, rc.active_days).crossJoin(open_)
             .withColumn("as_of", F.lit(D)).withColumn("snapshot", F.lit(D)))
    rel = E.features(pairs, sales, ev_before, visits, E.sale_profiles(sales.where(F.col("open_date") <= F.lit(D))),
                     themes, cov.withColumn("snapshot", F.lit(D)), half_life_days=half_life,
                     popularity_days=rc.popularity_days, price_sigma=rc.price_sigma, image_score=image_score)
    want = {(r["user_id"], r["sale_id"]): [r[e] for e in E.RELATIONAL] for r in rel.collect()}
    ev = E.events(visits, purchases, rc.purchase_weight)
    prof = E.sale_profiles(sales.where(F.col("open_date") <= F.lit(D)))
    blocks = K.day_blocks(spark, [D], sales, visits, ev, prof, themes, k=rc.neighbors_k, shrinkage=rc.shrinkage,
                          half_life_days=half_life, history_days=3650, popularity_days=rc.popularity_days,
                          image_score=image_score)
    assert sorted(blocks.open["sale_id"]) == ["s1", "s2", "s3", "s4"]
    keys = E.active_users(visits, D, rc.active_days).withColumn("as_of", F.lit(D))
    states = K.user_states(keys, E.events(visits, purchases, rc.purchase_weight), half_life_days=half_life,
                           history_days=3650)
    got = {(r["user_id"], r["sale_id"]): [r[e] for e in E.RELATIONAL]
           for r in K.score_states(spark, states, blocks, rc.price_sigma, "all").collect()}
    assert set(got) == set(want) and len(got) == 12
    for key, v in want.items():
        assert got[key] == pytest.approx(v, abs=1e-6), key
    assert got[("u1", "s3")][0] > 0 and got[("u1", "s4")][0] == 0.0  # CF at work; s4 opened today
    if half_life > 1e6:  # u1 visited s1 [0.9, 0.1] and s2 [0.8, 0.2] (equal IDF: the mixes as given)
        img = E.RELATIONAL.index("image")
        u1 = np.array([1.7, 0.3])
        want_s4, want_s3 = ((u1 / u1.sum()) @ [1.0, 0.0], (u1 / u1.sum()) @ [0.1, 0.9]) if image_score == "fit" else (
            u1[0] / np.linalg.norm(u1), (u1 @ [0.1, 0.9]) / np.linalg.norm(u1) / np.linalg.norm([0.1, 0.9]))
        assert got[("u1", "s4")][img] == pytest.approx(want_s4) and got[("u1", "s3")][img] == pytest.approx(want_s3)


def test_als_engine_folds_in_the_users_mllib_solves(spark):
    """The kernel's ALS score of a user is MLlib's own: the user's factor folded in from
    their ratings of the day against the snapshot's item factors equals the factor ALS
    fitted (its last half-step is that very solve), so the score is squash(max(0, x_u . y_j)).
    A sale without factors (no visit before the snapshot: s4 opens that day) scores 0, and
    a visit on the day itself is not a rating."""
    from vistarank.recsys import kernel as K
    from vistarank.recsys import latent as LT

    rng = np.random.default_rng(5)
    rows = [(f"u{rng.integers(25)}", f"s{rng.integers(1, 4)}", D - dt.timedelta(days=int(rng.integers(1, 6))))
            for _ in range(150)] + [("u0", "s4", D)]
    visits = spark.createDataFrame(rows, "user_id string, sale_id string, visit_date date")
    sales, _, purchases, themes = _market(spark)
    rc = C.RecsysConfig(history_days=30, half_life_days=7.0)
    ev = E.events(visits, purchases, rc.purchase_weight)
    settings = LT.AlsSettings(rank=3, reg_param=0.05, alpha=4.0, max_iter=15, half_life_days=7.0)
    model, users, items = LT.fit_model(ev, D, settings, history_days=30)
    fac = LT.fit(ev, D, settings, history_days=30)
    assert list(fac.ids) == ["s1", "s2", "s3"]  # s4: visited on D only
    uid = {row["u"]: row["user_id"] for row in users.collect()}
    uf = {uid[row["id"]]: np.asarray(row["features"]) for row in model.userFactors.collect()}
    itf = {row["sale_id"]: np.asarray(row["features"])
           for row in model.itemFactors.join(items.withColumnRenamed("i", "id"), "id").collect()}
    for j, sid in enumerate(fac.ids):  # a refit gives the same item factors (same data, numbering, seed)
        assert np.allclose(fac.matrix[j], itf[sid], atol=1e-6)
    blocks = K.day_blocks(spark, [D], sales, visits, ev, E.sale_profiles(sales), themes, k=rc.neighbors_k,
                          shrinkage=rc.shrinkage, half_life_days=7.0, history_days=30,
                          popularity_days=rc.popularity_days)
    assert blocks.als is None
    blocks.als = {D: fac}
    keys = spark.createDataFrame([(u, D) for u in uf], "user_id string, as_of date")
    states = K.user_states(keys, ev, half_life_days=3.0, history_days=30, als_half_life_days=7.0)
    got = {(x["user_id"], x["sale_id"]): x["als"] for x in K.score_states(spark, states, blocks, 0.5, "all").collect()}
    assert len(uf) >= 20
    for u, x in uf.items():
        for s in ("s1", "s2", "s3"):
            assert got[(u, s)] == pytest.approx(LT.score(x[None, :], itf[s][None, :])[0, 0], abs=1e-5), (u, s)
        assert got[(u, "s4")] == 0.0  # no factors: opened today
    assert max(got.values()) > 0.1  # the engine speaks


@pytest.mark.parametrize("block_events", [10_000, 30], ids=["one-block", "user-blocks"])
def test_als_refresh_is_one_more_iteration_of_the_snapshot(spark, block_events):
    """The daily refresh (users folded in, then every rated sale's factor solved from them)
    is one more ALS iteration: on the snapshot's own ratings, near convergence, it gives
    back MLlib's item factors; on a later day a sale first visited after the snapshot gets
    factors; one block of users and several (partial sums added by day) agree."""
    from vistarank.recsys import latent as LT

    rng = np.random.default_rng(11)
    rows = [(f"u{rng.integers(40)}", f"s{rng.integers(1, 6)}", D - dt.timedelta(days=int(rng.integers(1, 8))))
            for _ in range(300)] + [(f"u{i}", "s9", D + dt.timedelta(days=1)) for i in range(6)]
    visits = spark.createDataFrame(rows, "user_id string, sale_id string, visit_date date")
    purchases = spark.createDataFrame([], "user_id string, sale_id string, purchase_date date")
    ev = E.events(visits, purchases, 5.0)
    settings = LT.AlsSettings(rank=3, reg_param=0.05, alpha=2.0, max_iter=40)
    fac = LT.fit(ev, D, settings, history_days=30)
    later = D + dt.timedelta(days=2)
    got = LT.refresh(ev, {D: fac, later: fac}, settings, history_days=30, block_events=block_events)
    same = got[D]
    assert list(same.ids) == list(fac.ids)
    assert np.allclose(same.matrix, fac.matrix, atol=1e-2)  # near a fixed point of the iteration (40 of them)
    assert "s9" in set(got[later].ids) and "s9" not in set(fac.ids)
    assert np.abs(got[later].matrix[list(got[later].ids).index("s9")]).sum() > 0
    other = LT.refresh(ev, {D: fac, later: fac}, settings, history_days=30,
                       block_events=10_000 if block_events != 10_000 else 30)
    for d in (D, later):
        assert list(other[d].ids) == list(got[d].ids)
        assert np.allclose(other[d].matrix, got[d].matrix, atol=1e-9)


def test_empty_days_and_new_users_score_without_a_crash(spark):
    """No open sale, no active user: nothing to score, an empty result. A user without
    history: only the sale-side engines (popularity, recency) speak."""
    from vistarank.recsys import kernel as K

    sales, visits, purchases, themes = _market(spark)
    inp = C.Inputs(sales, visits, purchases, themes)
    n = len(E.ENGINES)
    rr = K.Reranker(tuple(E.ENGINES), (0.0,) * n, (1.0,) * n, (1.0,) * n, 0.0)
    later = D + dt.timedelta(days=60)  # every sale closed, nobody active
    srv = C.serving(spark, inp, C.RecsysConfig(), later)
    assert srv.blocks.n_open() == 0 and srv.active_keys().count() == 0
    assert K.score_states(spark, srv.states(srv.active_keys()), srv.blocks, 0.5, "top", rr).count() == 0
    keys = spark.createDataFrame([("u1", later)], "user_id string, as_of date")  # asked anyway
    assert K.score_states(spark, srv.states(keys), srv.blocks, 0.5, "top", rr).count() == 0
    srv.release()

    srv = C.serving(spark, inp, C.RecsysConfig(image_score="fit"), D)
    keys = spark.createDataFrame([("newcomer", D)], "user_id string, as_of date")
    rows = K.score_states(spark, srv.states(keys), srv.blocks, 0.5, "all").collect()
    assert sorted(r["sale_id"] for r in rows) == ["s1", "s2", "s3", "s4"]
    assert all(r["cf"] == r["content"] == r["image"] == r["price_fit"] == r["als"] == 0.0 and r["n_history"] == 0
               for r in rows)  # the choice image engine's newcomer: tests/test_taste.py
    assert {r["sale_id"]: r["recency"] for r in rows}["s4"] == 1.0
    top = K.score_states(spark, srv.states(keys), srv.blocks, 0.5, "top", rr, top_n=10).collect()
    assert [r["rank"] for r in sorted(top, key=lambda r: r["rank"])] == [1, 2, 3, 4]
    srv.release()


def test_distinctive_mix_weighs_themes_by_their_inverse_document_frequency(spark):
    """A theme every sale shows (a hotel bedroom) weighs nothing; rarer themes weigh
    log((1 + N) / (1 + n)) times their share; a sale with only ubiquitous themes gets zeros."""
    themes = spark.createDataFrame([("a", [0.5, 0.5, 0.0]), ("b", [0.5, 0.0, 0.5]), ("c", [0.6, 0.3, 0.1]),
                                    ("d", [1.0, 0.0, 0.0])], "sale_id string, weights array<float>")
    got = {r["sale_id"]: r["weights"] for r in E.distinctive_mix(themes).collect()}
    idf1, idf2 = np.log(5 / 3), np.log(5 / 3)  # theme 1 in a and c, theme 2 in b and c (0.1 >= PRESENT)
    assert got["a"] == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)
    assert got["b"] == pytest.approx([0.0, 0.0, 1.0], abs=1e-6)
    c = np.array([0.0, 0.3 * idf1, 0.1 * idf2])
    assert got["c"] == pytest.approx((c / c.sum()).tolist(), abs=1e-6)
    assert got["d"] == pytest.approx([0.0, 0.0, 0.0])


def test_an_unknown_image_score_is_a_clear_error():
    """recsys.image_score is choice, fit or cosine: the config, the kernel's blocks and the
    relational reference each refuse anything else before any work (and the relational
    reference says that choice is the kernel's only)."""
    import pydantic

    from vistarank.recsys import kernel as K

    with pytest.raises(pydantic.ValidationError, match="image_score"):
        C.RecsysConfig(image_score="dot")
    with pytest.raises(ValueError, match="image_score must be one of"):
        K.day_blocks(None, [D], None, None, None, None, None, k=5, shrinkage=1.0, half_life_days=14.0,
                     history_days=56, popularity_days=7, image_score="dot")
    with pytest.raises(ValueError, match="image_score must be one of"):
        E.features(None, None, None, None, None, None, None, half_life_days=14.0, popularity_days=7,
                   price_sigma=0.5, image_score="dot")
    with pytest.raises(ValueError, match="no relational form"):
        E.features(None, None, None, None, None, None, None, half_life_days=14.0, popularity_days=7,
                   price_sigma=0.5, image_score="choice")
