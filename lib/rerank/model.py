"""The meta-model: a Spark ML Pipeline (VectorAssembler, StandardScaler, LogisticRegression
with elastic net) over the engines' scores, predicting purchase.

Regularisation (regParam x elasticNetParam) is chosen on a time split: fit on the
training days, AUC on the later validation days; the best pair is refitted on both.
The model is saved with MLlib persistence under ``<models_dir>/<name>/<version>/``.
"""
from __future__ import annotations

import logging
from multiprocessing.pool import ThreadPool
from dataclasses import dataclass, field

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    model: PipelineModel
    features: list[str]
    reg_param: float
    elastic_net: float
    grid: list[dict] = field(default_factory=list)

    def coefficients(self) -> dict[str, float]:
        """Each engine's coefficient on its standardised score (comparable across engines)."""
        lr = self.model.stages[-1]
        return {f: float(c) for f, c in zip(self.features, lr.coefficients.toArray())} | {
            "intercept": float(lr.intercept)}

    def scaler(self) -> tuple[list[float], list[float]]:
        sc = self.model.stages[1]
        return list(sc.mean.toArray()), list(sc.std.toArray())


def pipeline(features: list[str], reg_param: float, elastic_net: float, max_iter: int) -> Pipeline:
    return Pipeline(stages=[
        VectorAssembler(inputCols=features, outputCol="x", handleInvalid="error"),
        StandardScaler(inputCol="x", outputCol="xs", withMean=True, withStd=True),
        LogisticRegression(featuresCol="xs", labelCol="label", regParam=reg_param, elasticNetParam=elastic_net,
                           maxIter=max_iter, standardization=False, probabilityCol="prob_vec",
                           rawPredictionCol="raw", predictionCol="pred"),
    ])


def probability(model: PipelineModel, df: DataFrame, out: str = "probability") -> DataFrame:
    """``df`` with the purchase probability as a double column."""
    return (model.transform(df).withColumn(out, vector_to_array("prob_vec")[1])
            .drop("x", "xs", "raw", "pred", "prob_vec"))


def fit(train: DataFrame, validation: DataFrame, features: list[str], reg_params: list[float],
        elastic_nets: list[float], max_iter: int, parallelism: int = 2) -> Fitted:
    """Grid over (regParam, elasticNetParam) by validation AUC; refit the best on all rows.

    The features are assembled and standardised once (fit on the training days); the
    grid's logistic regressions are fitted by MLlib's ``fitMultiple``, ``parallelism`` at
    a time (as TrainValidationSplit does), on a time split: validation days after the
    training days. The held-out evaluation days are not seen here."""
    if train.limit(1).count() == 0 or validation.limit(1).count() == 0:
        raise ValueError("the re-ranker needs purchases on both the training and the validation days; "
                         "check the purchases table or lower rerank.warmup_days / rerank.validation_days")
    prep = Pipeline(stages=pipeline(features, 0.0, 0.0, max_iter).getStages()[:2]).fit(train)
    tr = prep.transform(train).select("xs", "label").cache()
    va = prep.transform(validation).select("xs", "label").cache()
    lr = pipeline(features, 0.0, 0.0, max_iter).getStages()[-1]
    maps = [{lr.regParam: reg, lr.elasticNetParam: en}
            for reg in reg_params for en in (elastic_nets if reg > 0 else [0.0])]  # no regularisation: no mix
    auc = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="raw", metricName="areaUnderROC")
    fits = lr.fitMultiple(tr, maps)  # a thread-safe iterator over (index, model)
    scores: dict[int, float] = {}

    def one(_):
        i, m = next(fits)
        return i, auc.evaluate(m.transform(va))

    with ThreadPool(max(1, min(parallelism, len(maps)))) as pool:
        for i, score in pool.imap_unordered(one, range(len(maps))):
            scores[i] = score
    tr.unpersist()
    va.unpersist()
    grid = [{"reg_param": maps[i][lr.regParam], "elastic_net": maps[i][lr.elasticNetParam],
             "validation_auc": scores[i]} for i in range(len(maps))]
    for g in grid:
        log.info("re-ranker regParam=%g elasticNet=%g: validation AUC %.4f", g["reg_param"], g["elastic_net"],
                 g["validation_auc"])
    best = max(range(len(maps)), key=lambda i: (scores[i], -i))  # ties: the first in grid order
    reg, en = grid[best]["reg_param"], grid[best]["elastic_net"]
    model = pipeline(features, reg, en, max_iter).fit(train.unionByName(validation))
    return Fitted(model, list(features), reg, en, grid)


def top_engine(fitted: Fitted) -> F.Column:
    """The engine that contributed most to a row's score: argmax of coefficient x
    standardised value (null when no engine pushes the score up)."""
    coef = fitted.coefficients()
    mean, std = fitted.scaler()
    expr = None
    contrib = {f: F.lit(coef[f]) * (F.col(f) - F.lit(m)) / F.lit(s if s > 0 else 1.0)
               for f, m, s in zip(fitted.features, mean, std)}
    top = F.greatest(*contrib.values()) if len(contrib) > 1 else list(contrib.values())[0]
    for f, c in contrib.items():
        expr = F.when(c == top, F.lit(f)) if expr is None else expr.when(c == top, F.lit(f))
    return F.when(top > 0, expr)
