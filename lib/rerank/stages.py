"""The re-ranker's own Spark ML stages, persisted with the model (MLlib's
DefaultParamsWritable/Readable), so that ``PipelineModel.load`` restores everything
needed to score:

- :class:`EngineFeatures`, the first stage: (user_id, as_of[, targets, labels]) keys in,
  every engine's score of the sales open on each key's day out (one row per pair; with
  ``targets``, only those). Its Params are the scoring settings the model was trained
  with (half-life, history window, popularity window, price sigma, CF neighbours and
  shrinkage, purchase weight, the ALS snapshots' hyper-parameters, exclusion of bought sales); the tables it scores from are
  data, given with :meth:`EngineFeatures.setSources` after loading.
- :class:`TopEngine`, the last stage: the purchase probability as a double and the engine
  that contributed most (argmax of coefficient x standardised score; null when no engine
  pushes the score up). Its Params are the features, the scaler's mean and deviation and
  the regression's coefficients, copied at fit time.

The full model is ``EngineFeatures -> VectorAssembler -> StandardScaler -> LogisticRegression
-> TopEngine`` (:func:`vistarank.rerank.model.assemble`). ``model.transform(keys)`` is the
general, relational path (every pair is a row). The nightly serving applies the very same
numbers fused in one task (:mod:`vistarank.recsys.kernel`, mode ``top``: only the top N
leaves the task); tests/test_rerank.py checks that both give the same top N.
"""
from __future__ import annotations

import logging

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

# EngineFeatures Param -> recsys config field
SETTINGS = {"halfLifeDays": "half_life_days", "historyDays": "history_days", "popularityDays": "popularity_days",
            "priceSigma": "price_sigma", "neighborsK": "neighbors_k", "shrinkage": "shrinkage",
            "purchaseWeight": "purchase_weight", "alsRank": "als_rank", "alsRegParam": "als_reg_param",
            "alsAlpha": "als_alpha", "alsMaxIter": "als_max_iter", "alsRefitDays": "als_refit_days",
            "alsHalfLifeDays": "als_half_life_days", "themeIdf": "theme_idf",
            "imageScore": "image_score", "tastePrior": "taste_prior", "tasteRelevance": "taste_relevance",
            "tasteUsers": "taste_users"}


class EngineFeatures(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """Every engine's score of (user, open sale) pairs as of each key's day, by the scoring
    kernel (:mod:`vistarank.recsys.kernel`); see the module's docstring."""

    halfLifeDays = Param(Params._dummy(), "halfLifeDays", "half-life of an event's weight, in days",
                         TypeConverters.toFloat)
    historyDays = Param(Params._dummy(), "historyDays", "days of events before the day that count",
                        TypeConverters.toInt)
    popularityDays = Param(Params._dummy(), "popularityDays", "days of visits behind popularity",
                           TypeConverters.toInt)
    priceSigma = Param(Params._dummy(), "priceSigma", "width of the price fit, in log price", TypeConverters.toFloat)
    neighborsK = Param(Params._dummy(), "neighborsK", "co-visit neighbours kept per open sale", TypeConverters.toInt)
    shrinkage = Param(Params._dummy(), "shrinkage", "shrinkage of the co-visit cosine", TypeConverters.toFloat)
    purchaseWeight = Param(Params._dummy(), "purchaseWeight", "weight of a purchase against a visit",
                           TypeConverters.toFloat)
    alsRank = Param(Params._dummy(), "alsRank", "ALS rank (0: no latent-factor engine)", TypeConverters.toInt)
    alsRegParam = Param(Params._dummy(), "alsRegParam", "ALS regParam", TypeConverters.toFloat)
    alsAlpha = Param(Params._dummy(), "alsAlpha", "ALS implicit confidence: 1 + alpha x rating", TypeConverters.toFloat)
    alsMaxIter = Param(Params._dummy(), "alsMaxIter", "ALS iterations", TypeConverters.toInt)
    alsRefitDays = Param(Params._dummy(), "alsRefitDays", "days between ALS snapshots over several days",
                         TypeConverters.toInt)
    alsHalfLifeDays = Param(Params._dummy(), "alsHalfLifeDays", "half-life of an ALS rating's events (0: none)",
                            TypeConverters.toFloat)
    themeIdf = Param(Params._dummy(), "themeIdf", "the image engine weighs themes by their inverse document "
                     "frequency over the sales", TypeConverters.toBoolean)
    imageScore = Param(Params._dummy(), "imageScore", "the image engine's score: choice (a conditional logit of "
                       "the user's visits plus photo quality), fit (the user's theme shares times the sale's mix) "
                       "or cosine", TypeConverters.toString)
    tastePrior = Param(Params._dummy(), "tastePrior", "choice: precision of the prior on a user's theme affinities",
                       TypeConverters.toFloat)
    tasteRelevance = Param(Params._dummy(), "tasteRelevance", "choice: a theme counts when its intra-user "
                           "correlation reaches this share of the highest theme's", TypeConverters.toFloat)
    tasteUsers = Param(Params._dummy(), "tasteUsers", "choice: users sampled to measure the themes' intra-user "
                       "correlation (0: all)", TypeConverters.toInt)
    excludeBought = Param(Params._dummy(), "excludeBought",
                          "leave out the sales a user bought in the history window", TypeConverters.toBoolean)

    @keyword_only
    def __init__(self, *, halfLifeDays: float | None = None, historyDays: int | None = None,
                 popularityDays: int | None = None, priceSigma: float | None = None, neighborsK: int | None = None,
                 shrinkage: float | None = None, purchaseWeight: float | None = None, alsRank: int | None = None,
                 alsRegParam: float | None = None, alsAlpha: float | None = None, alsMaxIter: int | None = None,
                 alsRefitDays: int | None = None, alsHalfLifeDays: float | None = None, themeIdf: bool | None = None,
                 imageScore: str | None = None, tastePrior: float | None = None, tasteRelevance: float | None = None,
                 tasteUsers: int | None = None, excludeBought: bool | None = None) -> None:
        from vistarank.config import RecsysConfig

        super().__init__()
        defaults = RecsysConfig()  # the config's defaults, not a copy of them
        self._setDefault(**{p: getattr(defaults, f) for p, f in SETTINGS.items()}, excludeBought=True)
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        self._sources = None

    @classmethod
    def of(cls, rc, exclude_bought: bool) -> "EngineFeatures":
        """The stage with a recsys config's scoring settings."""
        return cls(**{p: getattr(rc, f) for p, f in SETTINGS.items()}, excludeBought=exclude_bought)

    def values(self) -> dict:
        """The scoring settings as recsys config fields."""
        return {f: self.getOrDefault(p) for p, f in SETTINGS.items()}

    def differences(self, rc) -> dict[str, tuple]:
        """{recsys field: (the model's value, ``rc``'s)} where they differ."""
        return {f: (v, getattr(rc, f)) for f, v in self.values().items() if getattr(rc, f) != v}

    def settings(self, rc):
        """``rc`` (a RecsysConfig) with this model's scoring settings; a setting the config
        sets otherwise is logged (the model's wins: it was trained with it)."""
        for f, (mine, theirs) in self.differences(rc).items():
            log.warning("the re-ranker was trained with recsys.%s = %s; the config says %s: scoring uses the "
                        "model's (retrain to change it)", f, mine, theirs)
        return rc.model_copy(update=self.values())

    def setSources(self, sales: DataFrame, visits: DataFrame, purchases: DataFrame,
                   sale_themes: DataFrame | None = None) -> "EngineFeatures":
        """The tables to score from (the schemas of docs/tables.md). Not persisted: data.
        ``sale_themes`` may carry a ``quality`` column (each sale's standardised photo
        quality: :func:`vistarank.recsys.taste.with_quality` adds it from sale_gallery),
        the choice image engine's quality term; without it the term is 0."""
        self._sources = (sales, visits, purchases, sale_themes)
        return self

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from vistarank.config import RecsysConfig
        from vistarank.rerank import training as TR

        if getattr(self, "_sources", None) is None:
            raise ValueError("EngineFeatures has no tables to score from: call "
                             "model.stages[0].setSources(sales, visits, purchases, sale_themes) after loading")
        missing = {"user_id", "as_of"} - set(dataset.columns)
        if missing:
            raise ValueError(f"EngineFeatures scores (user_id, as_of[, targets, labels]) keys; missing {sorted(missing)}")
        sales, visits, purchases, sale_themes = self._sources
        days = sorted(r[0] for r in dataset.select("as_of").distinct().collect())  # the days asked: a few
        spark = dataset.sparkSession
        mode = "targets" if "targets" in dataset.columns else "all"
        if not days:
            from vistarank.recsys.kernel import FEATURES_SCHEMA

            return spark.createDataFrame([], FEATURES_SCHEMA)
        rc = RecsysConfig(**self.values())
        keys = dataset if "labels" in dataset.columns or mode == "all" else dataset.withColumn(
            "labels", F.transform("targets", lambda _: F.lit(0.0)))
        ctx = TR.context_for_days(spark, visits, purchases, sales, sale_themes, days, rc, persist=False)
        return ctx.scores(keys, mode, self.getOrDefault(self.excludeBought))


class TopEngine(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """The probability of purchase (a double) and the engine that contributed most."""

    features = Param(Params._dummy(), "features", "the engines, in the assembler's order", TypeConverters.toListString)
    means = Param(Params._dummy(), "means", "the scaler's means", TypeConverters.toListFloat)
    stds = Param(Params._dummy(), "stds", "the scaler's standard deviations", TypeConverters.toListFloat)
    coefficients = Param(Params._dummy(), "coefficients", "the regression's coefficients", TypeConverters.toListFloat)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "output: probability of purchase",
                           TypeConverters.toString)
    topEngineCol = Param(Params._dummy(), "topEngineCol", "output: the top contributing engine",
                         TypeConverters.toString)

    @keyword_only
    def __init__(self, *, features: list[str] | None = None, means: list[float] | None = None,
                 stds: list[float] | None = None, coefficients: list[float] | None = None,
                 probabilityCol: str = "probability", topEngineCol: str = "top_engine") -> None:
        super().__init__()
        self._setDefault(probabilityCol="probability", topEngineCol="top_engine")
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def contributions(self) -> dict[str, F.Column]:
        f, m, s, c = (self.getOrDefault(p) for p in (self.features, self.means, self.stds, self.coefficients))
        return {name: F.lit(ci) * (F.col(name) - F.lit(mi)) / F.lit(si if si > 0 else 1.0)
                for name, mi, si, ci in zip(f, m, s, c)}

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import vector_to_array

        contrib = self.contributions()
        top = F.greatest(*contrib.values()) if len(contrib) > 1 else list(contrib.values())[0]
        expr = None
        for name, c in contrib.items():  # the first in feature order on ties, as the kernel
            expr = F.when(c == top, F.lit(name)) if expr is None else expr.when(c == top, F.lit(name))
        return (dataset.withColumn(self.getOrDefault(self.probabilityCol), vector_to_array("prob_vec")[1])
                .withColumn(self.getOrDefault(self.topEngineCol), F.when(top > 0, expr))
                .drop("x", "xs", "raw", "pred", "prob_vec"))
