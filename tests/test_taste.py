"""The choice image engine (vistarank.recsys.taste): themes that carry taste, the quality
weight, and the kernel's scores against a numpy reference on a planted market."""
import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from vistarank.config import RecsysConfig
from vistarank.recsys import engines as E
from vistarank.recsys import kernel as K
from vistarank.recsys import taste as TS

D = dt.date(2026, 9, 20)
HISTORY = 10


N_USERS = 120


def _planted(spark, quality_pull: float = 1.0, seed: int = 0):
    """12 sales open the 10 days before D and D: six 'beach' sales (themes [interior, beach,
    0]) and six 'mountain' ones ([interior, 0, mountain]), the interior share from 0.2 to
    0.8 (every hotel shows rooms), spread alike over both kinds; even sales look better (quality +1, odd -1). 120
    users: u000-u059 like the beach, the others the mountains; each visits 2 sales a day, of
    their kind with probability 0.85, and within it the better-looking ones more
    (exp(quality_pull x quality))."""
    rng = np.random.default_rng(seed)
    sales, themes = [], []
    inner_shares = [0.2, 0.8, 0.5, 0.5, 0.8, 0.2]  # the same for both kinds, for the better- and worse-looking
    for i in range(12):
        inner = inner_shares[i % 6]
        themes.append((f"s{i:02d}", [inner, 1 - inner, 0.0] if i < 6 else [inner, 0.0, 1 - inner],
                       1.0 if i % 2 == 0 else -1.0))
        sales.append((f"s{i:02d}", 100.0, D - dt.timedelta(days=HISTORY), D + dt.timedelta(days=5)))
    q = np.array([t[2] for t in themes])
    visits = []
    for u in range(N_USERS):
        mine = np.arange(6) if u < N_USERS // 2 else np.arange(6, 12)
        other = np.setdiff1d(np.arange(12), mine)
        for back in range(1, HISTORY + 1):
            for _ in range(2):
                pool = mine if rng.random() < 0.85 else other
                p = np.exp(quality_pull * q[pool])
                visits.append((f"u{u:03d}", f"s{int(rng.choice(pool, p=p / p.sum())):02d}",
                               D - dt.timedelta(days=back)))
    sales_df = spark.createDataFrame(sales, "sale_id string, price double, open_date date, close_date date")
    sales_df = (sales_df.withColumn("destination", F.lit("x")).withColumn("country", F.lit("x"))
                .withColumn("destination_type", F.lit("x")).withColumn("stars", F.lit(4))
                .withColumn("description", F.lit("hotel")))
    visits_df = spark.createDataFrame(visits, "user_id string, sale_id string, visit_date date")
    themes_df = spark.createDataFrame(themes, "sale_id string, weights array<float>, quality double")
    purchases = spark.createDataFrame([], "user_id string, sale_id string, purchase_date date")
    return sales_df, visits_df, purchases, themes_df, visits


def test_theme_relevance_drops_the_theme_every_hotel_shows(spark):
    """The interior share varies from sale to sale but nobody chooses by it: its intra-user
    correlation is about 0, the two taste themes' are high; the restricted mix keeps the
    taste themes, rescaled to sum 1."""
    sales, visits, _, themes, _ = _planted(spark)
    mixes = themes.select("sale_id", F.col("weights").cast("array<double>").alias("weights"))
    icc = TS.theme_relevance(visits, mixes, D, HISTORY, max_users=0)
    assert abs(icc[0]) < 0.03 and icc[1] > 0.2 and icc[2] > 0.2, icc
    assert TS.relevant_themes(icc, 3, 0.1).tolist() == [False, True, True]
    assert TS.relevant_themes(icc, 3, 0.0).all()  # 0 keeps every theme
    assert TS.relevant_themes(np.zeros(3), 3, 0.1).all()  # nothing measured: every theme
    got = {r["sale_id"]: r["w"] for r in
           mixes.select("sale_id", TS.restrict(F.col("weights"), np.array([False, True, True])).alias("w")).collect()}
    assert got["s00"] == pytest.approx([0.0, 1.0, 0.0]) and got["s07"] == pytest.approx([0.0, 0.0, 1.0])
    # no visits in the window, or a single user: nothing to measure, every theme kept
    assert TS.theme_relevance(visits, mixes, D - dt.timedelta(days=30), HISTORY, max_users=0).size == 0
    one = visits.where(F.col("user_id") == "u000")
    assert TS.theme_relevance(one, mixes, D, HISTORY, max_users=0).size == 0
    # a sample of the users measures the same thing
    icc_half = TS.theme_relevance(visits, mixes, D, HISTORY, max_users=N_USERS // 2)
    assert abs(icc_half[0]) < 0.03 and min(icc_half[1:]) > 0.2


def test_quality_weight_follows_the_visits(spark):
    """Better-looking sales drawing more visits give a positive weight; visits blind to the
    pictures' quality give about 0."""
    for pull, lo, hi in ((1.0, 0.5, 1.6), (0.0, -0.3, 0.3)):
        sales, visits, _, themes, _ = _planted(spark, quality_pull=pull)
        days = [D - dt.timedelta(days=n) for n in range(1, HISTORY + 1)]
        open_days = K.open_by_day(sales, K.days_frame(spark, days), min(days), max(days))
        beta = TS.quality_weight(open_days, visits, themes.select("sale_id", "quality"))
        assert lo < beta < hi, (pull, beta)


def test_choice_engine_scores_equal_the_numpy_reference(spark):
    """The kernel's image column (day blocks, user states with visit days, mapInPandas) is
    the logistic of b_u . x_s + beta q_s with b_u one Newton step of the conditional logit,
    computed here by hand from the visits; and it ranks each user's kind of sale first."""
    sales, visits, purchases, themes, raw = _planted(spark)
    rc = RecsysConfig()
    ev = E.events(visits, purchases, rc.purchase_weight)
    prof = E.sale_profiles(sales)
    blocks = K.day_blocks(spark, [D], sales, visits, ev, prof, themes, k=rc.neighbors_k, shrinkage=rc.shrinkage,
                          half_life_days=14.0, history_days=HISTORY, popularity_days=7, theme_idf=False,
                          image_score="choice", taste_prior=1.0, taste_relevance=0.1, taste_users=0)
    model = blocks.taste
    assert model.relevant.tolist() == [False, True, True] and model.beta > 0.3
    assert len(model.days) == HISTORY  # every day a history can hold
    keys = visits.select("user_id").distinct().withColumn("as_of", F.lit(D))
    states = K.user_states(keys, ev, half_life_days=14.0, history_days=HISTORY, visit_days=True)
    got = {(r["user_id"], r["sale_id"]): r["image"]
           for r in K.score_states(spark, states, blocks, rc.price_sigma, "all").collect()}
    assert len(got) == N_USERS * 12

    # the reference: restricted mixes, each day's offer (1 + visits) and one Newton step
    ids = [f"s{i:02d}" for i in range(12)]
    x = np.array([[0.0, 1.0, 0.0] if i < 6 else [0.0, 0.0, 1.0] for i in range(12)])
    q = np.array([1.0 if i % 2 == 0 else -1.0 for i in range(12)])
    per_day = {}
    for u, s, d in raw:
        per_day.setdefault(d, np.zeros(12))[ids.index(s)] += 1
    offer = {}
    for d, c in per_day.items():
        p = (1 + c) / (1 + c).sum()
        mu = p @ x
        offer[d] = (mu, (x * p[:, None]).T @ x - np.outer(mu, mu))
    for u in sorted({r[0] for r in raw}):
        g, h = np.zeros(3), np.eye(3)
        for uu, s, d in raw:
            if uu == u:
                g += x[ids.index(s)] - offer[d][0]
                h += offer[d][1]
        b = np.linalg.solve(h, g)
        want = 1 / (1 + np.exp(-(x @ b + model.beta * q)))
        assert [got[(u, s)] for s in ids] == pytest.approx(want.tolist(), abs=1e-6), u
        mine = range(6) if int(u[1:]) < N_USERS // 2 else range(6, 12)
        best = max(ids, key=lambda s: got[(u, s)])
        assert ids.index(best) in mine, u


def test_choice_engine_without_themes_or_history(spark):
    """No sale_themes: no model, the image engine scores 0. A user without history: the
    quality term alone (0.5 for a sale of average looks, above it for better ones)."""
    sales, visits, purchases, themes, _ = _planted(spark)
    rc = RecsysConfig()
    ev = E.events(visits, purchases, rc.purchase_weight)
    prof = E.sale_profiles(sales)
    kw = dict(k=rc.neighbors_k, shrinkage=rc.shrinkage, half_life_days=14.0, history_days=HISTORY,
              popularity_days=7, image_score="choice")
    keys = visits.select("user_id").distinct().limit(3).withColumn("as_of", F.lit(D)).unionByName(
        spark.createDataFrame([("newcomer", D)], "user_id string, as_of date"))
    states = K.user_states(keys, ev, half_life_days=14.0, history_days=HISTORY, visit_days=True)
    bare = K.day_blocks(spark, [D], sales, visits, ev, prof, None, **kw)
    assert bare.taste is None
    assert {r["image"] for r in K.score_states(spark, states, bare, rc.price_sigma, "all").collect()} == {0.0}
    blocks = K.day_blocks(spark, [D], sales, visits, ev, prof, themes, **kw)
    rows = K.score_states(spark, states.where(F.col("user_id") == "newcomer"), blocks, rc.price_sigma, "all").collect()
    beta = blocks.taste.beta
    for r in rows:
        qs = 1.0 if int(r["sale_id"][1:]) % 2 == 0 else -1.0
        assert r["image"] == pytest.approx(1 / (1 + np.exp(-beta * qs)))
