"""The re-ranker: negatives, no leakage, the model, recommendations."""
import datetime as dt

import pytest
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import RerankConfig
from vistarank.recsys import engines as E
from vistarank.recsys import kernel as K
from vistarank.rerank import training as TR

D = dt.date(2026, 9, 20)


def _sales(spark):
    day = lambda n: D + dt.timedelta(days=n)  # noqa: E731
    return spark.createDataFrame([
        ("a", "Nice", "France", "seaside", 4, 100.0, day(-5), day(2), "beach"),
        ("b", "Nice", "France", "seaside", 3, 90.0, day(-3), day(0), "pool"),
        ("c", "Rome", "Italy", "city", 4, 120.0, day(-2), day(4), "tower"),
        ("d", "Rome", "Italy", "city", 5, 300.0, day(-9), day(-1), "old"),     # closed on D
        ("e", "Paris", "France", "city", 3, 80.0, day(1), day(6), "bridge"),    # opens after D
        ("f", "Lisbon", "Portugal", "city", 4, 95.0, day(0), day(5), "river"),
        ("g", "Evian", "France", "spa", 4, 150.0, day(-1), day(3), "spa"),
    ], "sale_id string, destination string, country string, destination_type string, stars int, price double, "
       "open_date date, close_date date, description string")


def test_negatives_are_open_and_not_bought(spark):
    sales = _sales(spark)
    bought = spark.createDataFrame([("u1", "a", D), ("u1", "b", D), ("u2", "c", D)],
                                   "user_id string, sale_id string, as_of date")
    open_days = K.open_by_day(sales, K.days_frame(spark, [D]), D, D).select("as_of", "sale_id")
    neg = TR.negatives(bought, open_days, 2, seed=3).collect()
    open_on_d = {"a", "b", "c", "f", "g"}
    u1 = [r["sale_id"] for r in neg if r["user_id"] == "u1"]
    u2 = [r["sale_id"] for r in neg if r["user_id"] == "u2"]
    assert sorted(u1) == ["c", "f", "g"]  # 2 purchases x 2 negatives, but only 3 open unbought sales
    assert len(u2) == 2 and set(u2) <= open_on_d - {"c"}
    assert all(r["label"] == 0.0 and r["as_of"] == D for r in neg)
    again = TR.negatives(bought.repartition(3), open_days, 2, seed=3).collect()
    assert sorted(map(tuple, again)) == sorted(map(tuple, neg))  # seeded: the same draw


def test_purchases_of_sales_not_open_that_day_are_left_out_with_a_count(spark, caplog):
    sales = _sales(spark)
    open_days = K.open_by_day(sales, K.days_frame(spark, [D, D + dt.timedelta(days=1)]), D,
                              D + dt.timedelta(days=1)).select("as_of", "sale_id")
    purchases = spark.createDataFrame([
        ("u1", "a", D), ("u1", "a", D),          # twice the same: one example
        ("u2", "d", D),                          # d closed the day before
        ("u3", "e", D),                          # e opens the day after
        ("u3", "e", D + dt.timedelta(days=1)),   # ... and is open then
        ("u4", "b", D + dt.timedelta(days=1)),   # b closed on D
        ("u5", "c", D + dt.timedelta(days=5)),   # outside the window
    ], "user_id string, sale_id string, purchase_date date")
    with caplog.at_level("WARNING", logger="vistarank.rerank.training"):
        got = TR.bought_when_open(purchases, open_days, D, D + dt.timedelta(days=1), warn=True).collect()
    assert sorted((r["user_id"], r["sale_id"], r["as_of"]) for r in got) == [
        ("u1", "a", D), ("u3", "e", D + dt.timedelta(days=1))]
    assert "3 purchase(s)" in caplog.text and "not open that day" in caplog.text


def test_no_feature_uses_data_from_after_the_day(spark):
    sales = _sales(spark)
    base = [("u1", "a", D - dt.timedelta(days=3)), ("u1", "c", D - dt.timedelta(days=1)),
            ("u2", "a", D - dt.timedelta(days=2)), ("u2", "c", D - dt.timedelta(days=2)),
            ("u2", "g", D - dt.timedelta(days=1))]
    later = [("u1", "g", D), ("u1", "f", D), ("u2", "f", D + dt.timedelta(days=1)),
             ("u3", "a", D), ("u3", "g", D)]  # on or after the day: unknowable that morning

    def feats(rows):
        """The training path: day block and user states of (u1, u2) on D, every open sale as a target."""
        visits = spark.createDataFrame(rows, "user_id string, sale_id string, visit_date date")
        purchases = spark.createDataFrame([("u2", "g", D)], "user_id string, sale_id string, purchase_date date")
        themes = spark.createDataFrame([(s, [1.0, 0.0] if s in "ab" else [0.0, 1.0]) for s in "abcdefg"],
                                       "sale_id string, weights array<float>")
        ev = E.events(visits, purchases, 5.0)
        prof = E.sale_profiles(sales)
        blocks = K.day_blocks(spark, [D], sales, visits, ev, prof, themes, k=50, shrinkage=0.0, half_life_days=14.0,
                              history_days=56, popularity_days=7)
        keys = spark.createDataFrame([(u, D, list("abcfg"), [0.0] * 5) for u in ("u1", "u2")],
                                     "user_id string, as_of date, targets array<string>, labels array<double>")
        states = K.user_states(keys, E.events(visits, purchases, 5.0), half_life_days=14.0, history_days=56)
        out = K.score_states(spark, states, blocks, 0.5, "targets")
        return {(r["user_id"], r["sale_id"]): tuple(r[e] for e in E.ENGINES) for r in out.collect()}

    before, after = feats(base), feats(base + later)
    assert set(before) == set(after)
    for k, v in before.items():  # equal up to the order of floating-point sums
        assert after[k] == pytest.approx(v, abs=1e-12), k
    assert before[("u1", "g")][0] > 0  # u1 visited c, and c and g share visitor u2: CF is at work


def test_windows_need_history():
    rr = RerankConfig(warmup_days=14, validation_days=7, eval_days=7, train_days=0)
    w = TR.windows(dt.date(2026, 9, 1), dt.date(2026, 10, 30), rr)
    assert (w.train_start, w.validation_start, w.eval_start, w.end) == (
        dt.date(2026, 9, 15), dt.date(2026, 10, 16), dt.date(2026, 10, 23), dt.date(2026, 10, 29))
    # at most train_days of training before validation
    w = TR.windows(dt.date(2026, 9, 1), dt.date(2026, 10, 30), rr.model_copy(update={"train_days": 28}))
    assert w.train_start == dt.date(2026, 9, 18) and w.validation_start == dt.date(2026, 10, 16)
    with pytest.raises(ValueError, match="not enough history"):
        TR.windows(dt.date(2026, 9, 1), dt.date(2026, 9, 20), rr)


@pytest.mark.pipeline
def test_reranker_and_recommendations_on_the_tiny_world(spark, recommended):
    from vistarank.jobs import recommend

    cfg = recommended
    d = cfg.effective_run_date()
    ex = io.read(spark, cfg, T.TRAINING_SET)
    # negatives: open that day and not bought by the user that day; about 5 per purchase
    sales = io.read(spark, cfg, T.SALES)
    purchases = io.read(spark, cfg, T.PURCHASES)
    neg = ex.where("label = 0")
    closed = neg.join(sales, "sale_id").where((F.col("open_date") > F.col("as_of")) | (F.col("close_date") < F.col("as_of")))
    assert closed.count() == 0
    bought = neg.join(purchases.withColumnRenamed("purchase_date", "as_of"), ["user_id", "sale_id", "as_of"])
    assert bought.count() == 0
    n_pos, n_neg = ex.where("label = 1").count(), neg.count()
    assert 0 < n_neg <= 5 * n_pos
    assert {r["split"] for r in ex.select("split").distinct().collect()} == {"train", "validation", "eval"}
    ev = {(r["arm"], r["metric"]): r["value"] for r in io.read(spark, cfg, T.RERANK_EVAL).collect()}
    for arm in ("meta", "meta_no_image", "popularity", "cf", "content", "image"):
        assert 0.0 <= ev[(arm, "ndcg_at_10")] <= 1.0 and 0.0 <= ev[(arm, "auc")] <= 1.0
    assert ev[("meta", "log_loss")] > 0
    coef = {r["metric"]: r["value"] for r in io.read(spark, cfg, T.MODEL_METRICS)
            .where(F.col("stage") == "train_reranker").collect()}
    assert {f"coef_{e}" for e in E.ENGINES} <= set(coef)
    # the regression met tol before rerank.max_iter, in the final fit and every grid fit
    import json
    import os

    from vistarank.files import read_text
    from vistarank.jobs.train_reranker import model_folder

    saved = json.loads(read_text(os.path.join(model_folder(cfg), "model.json")))
    assert saved["converged"] is True and 0 < saved["iterations"] < cfg.rerank.max_iter
    assert saved["grid"] and all(g["converged"] for g in saved["grid"])
    assert coef["iterations"] == saved["iterations"]

    recs = io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d))
    per_user = recs.groupBy("user_id").agg(F.count("*").alias("n"), F.countDistinct("sale_id").alias("k"),
                                           F.max("rank").alias("r"))
    assert per_user.where("n > 10 OR k != n OR r != n").count() == 0
    closed = recs.join(sales, "sale_id").where((F.col("open_date") > F.lit(d)) | (F.col("close_date") < F.lit(d)))
    assert closed.count() == 0
    active = E.active_users(io.read(spark, cfg, T.VISITS), d, cfg.recsys.active_days)
    assert per_user.count() == active.count()  # every active user (the open sales outnumber the bought ones)
    # never a sale the user bought before (rerank.exclude_bought)
    before = purchases.where(F.col("purchase_date") < F.lit(d)).select("user_id", "sale_id")
    assert recs.join(before, ["user_id", "sale_id"]).count() == 0
    assert before.join(active, "user_id").count() > 0  # the check has something to check
    # ranks follow the probability
    rows = recs.where(F.col("user_id") == per_user.first()["user_id"]).orderBy("rank").collect()
    assert [r["probability"] for r in rows] == sorted((r["probability"] for r in rows), reverse=True)
    # a rerun of the date is idempotent (other tests may have rebuilt the inputs since the fixture ran)
    recommend.run(spark, cfg)
    first = {(r["user_id"], r["rank"]): (r["sale_id"], r["probability"]) for r in
             io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d)).collect()}
    recommend.run(spark, cfg)
    again = io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d))
    assert {(r["user_id"], r["rank"]): (r["sale_id"], r["probability"]) for r in again.collect()} == first
    for f in (f"report_{d}.html", f"review_{d}.png", "rerank/evaluation.png"):
        assert os.path.getsize(os.path.join(cfg.reports_dir(), f)) > 1000


def test_sliced_metrics_agree_with_spark_ranking_evaluator(spark):
    """The per-list formulas behind the slices give Spark's RankingEvaluator's values on all
    lists; a sale-age slice counts only purchases of sales that old."""
    import random

    from vistarank.rerank import evaluate as EV

    rng = random.Random(4)
    rows, purchases = [], []
    for u in range(30):
        n_hist = rng.choice([0, 2, 9])
        bought = set(rng.sample(range(15), rng.choice([1, 1, 2, 3])))
        for s in range(15):
            label = 1.0 if s in bought else 0.0
            rows.append((f"u{u}", D, f"s{s:02d}", label, rng.random(), 1.0 / (1 + s % 5), n_hist))
            if label:
                purchases.append((f"u{u}", f"s{s:02d}", D, 10.0 + s))
    df = spark.createDataFrame(rows, "user_id string, as_of date, sale_id string, label double, score double, "
                                     "recency double, n_history int")
    pur = spark.createDataFrame(purchases, "user_id string, sale_id string, purchase_date date, amount double")
    for k in (3, 10):
        want = EV.ranking(df, "score", pur, k)
        got = EV.sliced(df, "score", pur, k)
        for name in EV.metric_names(k):
            assert got["all"][name] == pytest.approx(want[name], abs=1e-9), (k, name)
        assert got["all"]["n_lists"] == want["n_lists"] == 30
        assert sum(got[s]["n_lists"] for s in EV.HISTORY_SLICES) == 30
    # every arm in one pass: each gets what it gets alone (here the score and its reverse)
    two = df.withColumn("anti", -df["score"])
    both = EV.sliced_arms(two, {"meta": "score", "anti": "anti"}, pur, 10)
    anti = EV.ranking(two, "anti", pur, 10)
    for name in EV.metric_names(10):
        for sl in got:
            assert both["meta"][sl][name] == pytest.approx(got[sl][name], abs=1e-12, nan_ok=True), (sl, name)
        assert both["anti"]["all"][name] == pytest.approx(anti[name], abs=1e-9), name
    assert both["anti"]["all"]["ndcg_at_10"] != pytest.approx(both["meta"]["all"]["ndcg_at_10"])
    # sale age 0: sales s00, s05, s10 (recency 1); the lists with such a purchase
    new_lists = {r[0] for r in rows if r[3] > 0 and r[2] in ("s00", "s05", "s10")}
    assert got["sale_age=0"]["n_lists"] == len(new_lists) > 0
    # nothing bought: NaN metrics, no crash
    empty = EV.ranking(df.where("label = 0"), "score", pur, 10)
    assert empty["n_lists"] == 0 and empty["ndcg_at_10"] != empty["ndcg_at_10"]


@pytest.mark.pipeline
def test_the_saved_reranker_is_one_pipeline_model_that_scores_as_the_nightly_kernel(spark, recommended, tmp_path):
    """``PipelineModel.load`` restores the scoring settings (EngineFeatures' Params) and the
    top engine (TopEngine); its relational ``transform`` gives the probabilities and top
    engines that the fused nightly kernel wrote, and the same top 10."""
    from pyspark.ml import PipelineModel

    from vistarank.jobs.train_reranker import model_folder
    from vistarank.rerank import model as M
    from vistarank.rerank.stages import EngineFeatures, TopEngine

    cfg = recommended
    d = cfg.effective_run_date()
    path = f"{model_folder(cfg)}/model"
    plain = PipelineModel.load(path)  # plain MLlib: no vistarank helper needed to load it
    eng, top = plain.stages[0], plain.stages[-1]
    assert isinstance(eng, EngineFeatures) and isinstance(top, TopEngine)
    rc = cfg.recsys
    assert (eng.getOrDefault("halfLifeDays"), eng.getOrDefault("historyDays"), eng.getOrDefault("priceSigma"),
            eng.getOrDefault("popularityDays"), eng.getOrDefault("excludeBought")) == (
        rc.half_life_days, rc.history_days, rc.price_sigma, rc.popularity_days, cfg.rerank.exclude_bought)
    assert eng.differences(rc) == {} and eng.differences(rc.model_copy(update={"history_days": 7})) == {
        "history_days": (rc.history_days, 7)}

    keys = (E.active_users(io.read(spark, cfg, T.VISITS), d, rc.active_days).orderBy("user_id").limit(12)
            .withColumn("as_of", F.lit(d)))
    with pytest.raises(ValueError, match="setSources"):
        plain.transform(keys)
    eng.setSources(io.read(spark, cfg, T.SALES), io.read(spark, cfg, T.VISITS), io.read(spark, cfg, T.PURCHASES),
                   io.read(spark, cfg, T.SALE_THEMES))
    scored = {(r["user_id"], r["sale_id"]): (r["probability"], r["top_engine"])
              for r in plain.transform(keys).collect()}
    users = {u for u, _ in scored}
    assert len(users) == 12
    recs = [r for r in io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d)).collect()
            if r["user_id"] in users]
    assert len(recs) == 12 * cfg.rerank.top_n
    for r in recs:
        p, engine = scored[(r["user_id"], r["sale_id"])]
        assert p == pytest.approx(r["probability"], abs=1e-9) and engine == r["top_engine"]
    for u in users:  # the kernel's top 10 is the transform's top 10
        chosen = {r["sale_id"] for r in recs if r["user_id"] == u}
        rest = [p for (v, s), (p, _) in scored.items() if v == u and s not in chosen]
        assert min(p for (v, s), (p, _) in scored.items() if v == u and s in chosen) >= max(rest) - 1e-9

    # a model saved before the engine stage existed is refused with what to do
    old = str(tmp_path / "old")
    PipelineModel(plain.stages[1:4]).write().save(old)
    with pytest.raises(ValueError, match="train_reranker again"):
        M.load(old)


def test_an_unconverged_regression_is_reported(spark, caplog):
    """A fit that stops at maxIter is not the optimum, and says so (log, ``converged``, each
    grid entry). That the default converges is checked on the tiny world above."""
    import logging

    import numpy as np

    from vistarank.config import RecsysConfig
    from vistarank.rerank import model as M
    from vistarank.rerank.stages import EngineFeatures

    rng = np.random.default_rng(0)
    x = rng.random((300, len(E.ENGINES)))
    x[:, 3] = x[:, 3] ** 4  # a skewed score, as popularity
    x[:, 7] = (x[:, 3] < 0.01).astype(float)  # an indicator correlated with it, as new_sale
    z = 3.0 * x[:, 3] + 1.5 * x[:, 7] + 0.5 * x[:, 2] - 1.5 + rng.normal(0, 0.5, 300)
    rows = [[float(v) for v in r] + [float(zi > 0)] for r, zi in zip(x, z)]
    train, valid = (spark.createDataFrame(r, [*E.ENGINES, "label"]) for r in (rows[:200], rows[200:]))
    eng = EngineFeatures.of(RecsysConfig(), True)
    with caplog.at_level(logging.WARNING, logger="vistarank.rerank.model"):
        short = M.fit(train, valid, eng, E.ENGINES, [0.001], [1.0], max_iter=2, parallelism=1, tol=1e-4)
    assert short.converged is False and short.iterations == 2
    assert [g["converged"] for g in short.grid] == [False]
    assert "stopped at maxIter=2" in caplog.text
