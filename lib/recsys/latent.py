"""The latent-factor engine: MLlib ALS with implicit feedback, as a feature of the re-ranker.

- **Ratings** of a snapshot day s (:func:`ratings`): each (user, sale) pair's decayed
  weight over the ``history_days`` before s, the weights of every other engine (a visit
  counts 1, a purchase ``purchase_weight``, halved every ``half_life_days`` before s).
  MLlib's implicit ALS turns a rating r into the confidence 1 + alpha r of the preference 1.
- **A snapshot** (:func:`fit`): ``pyspark.ml.recommendation.ALS`` fitted on those ratings;
  only the item factors come back to the driver (one vector per sale of the window: a few
  thousand), with their Gram matrix Y'Y. Users are numbered with ``zipWithIndex``: no
  hash collisions, nothing per user on the driver.
- **User factors are folded in** (:func:`fold_in`) where they are used, in the scoring
  kernel, from the user's state as of each scored day (their decayed weights over the
  ``history_days`` before it, the ratings of that day): the least-squares step ALS itself
  ends with, x_u = (Y'Y + Y_u'(C_u - I)Y_u + regParam n_u I)^-1 Y_u' C_u p_u (MLlib's
  formula, regularisation scaled by the user's n_u ratings). So a user's factor is as
  fresh as every other engine's view of them, and nothing per user is stored or shuffled.
- **The score** of an open sale j: max(0, x_u . y_j) through x / (1 + x), in [0, 1). A
  sale without factors (no visit before the snapshot, e.g. opened today) scores 0: the
  image and content engines carry it.

Snapshots: serving fits one on the run date (events strictly before it). Training fits one
every ``als_refit_days`` days of its windows; each day uses the latest snapshot on or
before it (its user factors are still folded in on the day). The hyper-parameters
(rank, regParam, alpha) are chosen on the validation days (:func:`vistarank.rerank.training.tune_als`).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlsSettings:
    """ALS hyper-parameters (rank 0: the engine is off and scores 0)."""
    rank: int = 32
    reg_param: float = 0.1
    alpha: float = 1.0
    max_iter: int = 10
    half_life_days: float = 0.0
    seed: int = 0

    @classmethod
    def of(cls, rc) -> "AlsSettings":
        return cls(rc.als_rank, rc.als_reg_param, rc.als_alpha, rc.als_max_iter, rc.als_half_life_days)


@dataclass
class Factors:
    """One ALS snapshot: the item factors of the sales it knows (``ids`` sorted), their Gram
    matrix and the settings a user's factor is folded in with."""
    snapshot: dt.date
    ids: np.ndarray
    matrix: np.ndarray
    gram: np.ndarray
    reg_param: float
    alpha: float

    @classmethod
    def empty(cls, snapshot: dt.date, rank: int = 0, reg_param: float = 0.1, alpha: float = 1.0) -> "Factors":
        return cls(snapshot, np.array([], dtype=object), np.zeros((0, rank)), np.zeros((rank, rank)), reg_param,
                   alpha)

    @property
    def rank(self) -> int:
        return int(self.matrix.shape[1])


def decay(age, half_life_days: float):
    """0.5 ** (age / half-life) (numpy or Spark columns); a half-life of 0: no decay."""
    if half_life_days <= 0:
        return 1.0 if not isinstance(age, F.Column) else F.lit(1.0)
    if isinstance(age, F.Column):
        return F.pow(F.lit(0.5), age / F.lit(half_life_days))
    return np.power(0.5, age / half_life_days)


def ratings(ev: DataFrame, snapshot: dt.date, half_life_days: float, history_days: int) -> DataFrame:
    """(user_id, sale_id, rating): the weights of the ``history_days`` before ``snapshot``,
    decayed by the ALS half-life (0: none) (``ev``: :func:`vistarank.recsys.engines.events`)."""
    d = F.lit(snapshot)
    decay_ = decay(F.datediff(d, F.col("date")), half_life_days)
    return (ev.where((F.col("date") < d) & (F.col("date") >= F.date_sub(d, history_days)))
            .groupBy("user_id", "sale_id").agg(F.sum(F.col("w") * decay_).alias("rating"))
            .where(F.col("rating") > 0))


def _numbered(df: DataFrame, col: str, out: str) -> DataFrame:
    """(col, out): the distinct values of ``col`` numbered 0.. in their order (zipWithIndex
    after a sort: no collisions, and the same numbers whenever it is recomputed)."""
    spark = df.sparkSession
    rdd = df.select(col).distinct().orderBy(col).rdd.map(lambda r: r[0]).zipWithIndex()
    return spark.createDataFrame(rdd, f"{col} string, {out} long").withColumn(out, F.col(out).cast("int"))


def fit_model(ev: DataFrame, snapshot: dt.date, settings: AlsSettings, *, history_days: int, blocks: int = 0):
    """(MLlib's ALSModel on the ratings of ``snapshot``, the numbering of its users (user_id,
    u) and of its items (sale_id, i)); (None, None, None) without a rating. ``blocks``:
    MLlib's user and item blocks (0: the default parallelism, at least 2)."""
    from pyspark.ml.recommendation import ALS

    r = ratings(ev, snapshot, settings.half_life_days, history_days)
    users, items = _numbered(r, "user_id", "u"), _numbered(r, "sale_id", "i")
    data = r.join(users, "user_id").join(items, "sale_id").select("u", "i", F.col("rating").cast("float")).cache()
    if data.limit(1).count() == 0:
        data.unpersist()
        return None, None, None
    n_blocks = blocks or max(2, ev.sparkSession.sparkContext.defaultParallelism)
    als = ALS(rank=settings.rank, maxIter=settings.max_iter, regParam=settings.reg_param, alpha=settings.alpha,
              implicitPrefs=True, userCol="u", itemCol="i", ratingCol="rating", seed=settings.seed,
              numUserBlocks=n_blocks, numItemBlocks=n_blocks)
    model = als.fit(data)
    data.unpersist()
    return model, users, items


def _factors(snapshot: dt.date, ids, mat: np.ndarray, settings: AlsSettings) -> Factors:
    return Factors(snapshot, np.asarray(ids, dtype=object), mat, mat.T @ mat, settings.reg_param, settings.alpha)


def fit(ev: DataFrame, snapshot: dt.date, settings: AlsSettings, *, history_days: int, blocks: int = 0) -> Factors:
    """An ALS snapshot on the events strictly before ``snapshot`` (see the module's docstring)."""
    if settings.rank <= 0:
        return Factors.empty(snapshot)
    model, _, items = fit_model(ev, snapshot, settings, history_days=history_days, blocks=blocks)
    if model is None:
        log.info("ALS snapshot %s: no events before it; every score is 0", snapshot)
        return Factors.empty(snapshot, settings.rank, settings.reg_param, settings.alpha)
    rows = (model.itemFactors.join(items.withColumnRenamed("i", "id"), "id").select("sale_id", "features")
            .toPandas())  # one vector per sale of the window: a few thousand
    rows = rows.sort_values("sale_id", kind="stable")
    mat = np.array([np.asarray(v, dtype=float) for v in rows["features"]]).reshape(len(rows), settings.rank)
    log.info("ALS snapshot %s: rank %d, regParam %g, alpha %g; %d sales with factors", snapshot, settings.rank,
             settings.reg_param, settings.alpha, len(rows))
    return _factors(snapshot, rows["sale_id"], mat, settings)


def snapshot_days(days: list[dt.date], refit_days: int) -> dict[dt.date, dt.date]:
    """{day: its snapshot}: one snapshot every ``refit_days`` days from the first (1: every day)."""
    first = min(days)
    step = max(1, refit_days)
    return {d: first + dt.timedelta(days=((d - first).days // step) * step) for d in days}


def fit_days(ev: DataFrame, days: list[dt.date], settings: AlsSettings, *, refit_days: int, history_days: int,
             known: dict[dt.date, Factors] | None = None) -> dict[dt.date, Factors]:
    """{day: its factors} for every day in ``days``: an MLlib snapshot every ``refit_days``
    days (``known``: snapshots fitted already, by day), and on each other day the snapshot
    refreshed with that day's ratings (:func:`refresh`)."""
    by_day = snapshot_days(days, refit_days)
    known = dict(known or {})
    snaps = {s: known.get(s) or fit(ev, s, settings, history_days=history_days) for s in sorted(set(by_day.values()))}
    out = {d: snaps[s] for d, s in by_day.items() if d == s}
    rest = {d: snaps[s] for d, s in by_day.items() if d != s}
    if rest:
        out |= refresh(ev, rest, settings, history_days=history_days)
    return out


RIDGE = 1e-9  # added to every solve's diagonal: regParam 0 (allowed) would leave a rank-deficient system singular

# ----------------------------------------------------------------------------- the daily refresh
REFRESH_FINAL = "t int, sale_id string, factor array<double>"
REFRESH_PARTIAL = "t int, sale_id string, a array<double>, b array<double>, n long"


def _item_step(x: np.ndarray, r, alpha: float):
    """The item half-step's sums from user factors ``x`` (users x rank) and ratings ``r``
    (users x sales, csr): per sale, A = sum c1 x x', b = sum (1 + c1) x, n = ratings > 0."""
    rc = r.tocsc()
    n_s, k = rc.shape[1], x.shape[1]
    a = np.zeros((n_s, k, k))
    for j in range(n_s):
        lo, hi = rc.indptr[j], rc.indptr[j + 1]
        if lo < hi:
            xu = x[rc.indices[lo:hi]]
            a[j] = (xu.T * (alpha * np.abs(rc.data[lo:hi]))) @ xu
    pos = rc.copy()
    pos.data = np.where(pos.data > 0, 1.0 + alpha * np.abs(pos.data), 0.0)
    b = np.asarray(pos.T @ x)
    n = np.diff(rc.indptr) if rc.nnz else np.zeros(n_s, dtype=int)
    return a, b, n.astype(np.int64)


def _solve_items(gram: np.ndarray, a: np.ndarray, b: np.ndarray, n: np.ndarray, reg: float) -> np.ndarray:
    k = gram.shape[0]
    lhs = gram[None, :, :] + a + (reg * n + RIDGE)[:, None, None] * np.eye(k)[None, :, :]
    return np.linalg.solve(lhs, b[:, :, None])[:, :, 0]


def block_refresh(pdf: pd.DataFrame, snaps: dict[int, Factors], *, half_life_days: float, history_days: int,
                  final: bool) -> pd.DataFrame:
    """One user block's events (user_id, sale_id, t, w): for each day t of ``snaps`` (its
    snapshot), the block's users folded in from their ratings of day t, then the item
    half-step from them: the sales' new factors (``final``: one block holds every user) or
    the block's sums (A, b, n per sale; the users' Gram matrix on a row without sale)."""
    from scipy import sparse

    cols = ["t", "sale_id"] + (["factor"] if final else ["a", "b", "n"])
    if pdf.empty:
        return pd.DataFrame({c: [] for c in cols})
    sales, s_idx = np.unique(pdf["sale_id"].to_numpy(dtype=object), return_inverse=True)
    _, u_idx = np.unique(pdf["user_id"].to_numpy(dtype=object), return_inverse=True)
    t, w = pdf["t"].to_numpy(dtype=np.int64), pdf["w"].to_numpy(dtype=float)
    n_s, n_u = len(sales), int(u_idx.max()) + 1
    out = []
    for day in sorted(snaps):
        fac = snaps[day]
        m = (t < day) & (t >= day - history_days)
        if not m.any() or fac.rank == 0:
            continue
        r = sparse.csr_matrix((w[m] * decay((day - t[m]).astype(float), half_life_days), (u_idx[m], s_idx[m])),
                              shape=(n_u, n_s))
        at = np.searchsorted(fac.ids, sales)
        at = np.minimum(at, max(len(fac.ids) - 1, 0))
        known = np.flatnonzero((len(fac.ids) > 0) & (fac.ids[at] == sales)) if len(fac.ids) else np.array([], int)
        sel = sparse.csr_matrix((np.ones(len(known)), (known, at[known])), shape=(n_s, len(fac.ids)))
        x = fold_in(fac, r @ sel)
        a, b, n = _item_step(x, r, fac.alpha)
        has = np.flatnonzero(n > 0)
        if final:
            y = _solve_items(x.T @ x, a[has], b[has], n[has], fac.reg_param)
            out.append(pd.DataFrame({"t": day, "sale_id": sales[has], "factor": list(y)}))
        else:
            out.append(pd.DataFrame({"t": day, "sale_id": sales[has], "a": [v.ravel() for v in a[has]],
                                     "b": list(b[has]), "n": n[has]}))
            g = x.T @ x
            out.append(pd.DataFrame({"t": [day], "sale_id": [None], "a": [g.ravel()], "b": [np.zeros(fac.rank)],
                                     "n": [np.int64(0)]}))
    if not out:
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(out, ignore_index=True).astype({"t": "int32"})


def refresh(ev: DataFrame, days: dict[dt.date, Factors], settings: AlsSettings, *, history_days: int,
            block_events: int = 1_000_000) -> dict[dt.date, Factors]:
    """{day: factors} for each day of ``days`` ({day: its snapshot, from an earlier day}):
    one ALS iteration from the snapshot on the ratings of that day (every user's factor
    folded in, then every rated sale's factor solved from them, MLlib's formulas), so a
    sale that opened after the snapshot has factors from its visits before the day.

    The events are grouped by user block as the co-visits are (about ``block_events`` per
    task): one block computes the factors in its task; several send their sums (A: rank x
    rank per sale and day) to a task per day. Nothing is exploded per day in Spark."""
    from vistarank.recsys.kernel import user_blocks

    first, last = min(days), max(days)
    snaps = {(d - first).days: f for d, f in days.items()}
    grouped, n_blocks = user_blocks(ev, first, last, history_days, block_events)
    final = n_blocks == 1
    hl = settings.half_life_days

    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        return block_refresh(pdf, snaps, half_life_days=hl, history_days=history_days, final=final)

    if final:
        rows = grouped.applyInPandas(fn, REFRESH_FINAL)
    else:
        def solve(pdf: pd.DataFrame) -> pd.DataFrame:
            day = int(pdf["t"].iloc[0])
            k = snaps[day].rank
            gram = np.sum(np.stack(pdf.loc[pdf["sale_id"].isna(), "a"].to_list()), axis=0).reshape(k, k)
            items = pdf[pdf["sale_id"].notna()]
            ids = sorted(items["sale_id"].unique())
            pos = {s: i for i, s in enumerate(ids)}
            a, b, n = np.zeros((len(ids), k, k)), np.zeros((len(ids), k)), np.zeros(len(ids))
            for s, av, bv, nv in zip(items["sale_id"], items["a"], items["b"], items["n"]):
                i = pos[s]
                a[i] += np.asarray(av).reshape(k, k)
                b[i] += bv
                n[i] += nv
            y = _solve_items(gram, a, b, n, snaps[day].reg_param)
            return pd.DataFrame({"t": day, "sale_id": ids, "factor": list(y)})

        rows = grouped.applyInPandas(fn, REFRESH_PARTIAL).groupBy("t").applyInPandas(solve, REFRESH_FINAL)
    got = rows.toPandas()  # one vector per rated sale and day: a few thousand a day
    out = {}
    for d, f in days.items():
        day = got[got["t"] == (d - first).days].sort_values("sale_id")
        mat = (np.array([np.asarray(v, dtype=float) for v in day["factor"]]).reshape(len(day), f.rank)
               if len(day) else np.zeros((0, f.rank)))
        out[d] = _factors(d, day["sale_id"], mat, settings)
    log.info("ALS: %d day(s) refreshed from their snapshots (%d user block(s))", len(days), n_blocks)
    return out


def fold_in(fac: Factors, weights) -> np.ndarray:
    """(users x rank) factors from a sparse (users x ``fac.ids``) matrix of ratings: for each
    user, the solve of MLlib's implicit least squares (see the module's docstring); a user
    without ratings gets 0."""
    w = weights.tocsr()
    n_u, r = w.shape[0], fac.rank
    out = np.zeros((n_u, r))
    if r == 0 or w.nnz == 0:
        return out
    y = fac.matrix
    for u in range(n_u):
        lo, hi = w.indptr[u], w.indptr[u + 1]
        if lo == hi:
            continue
        idx, rat = w.indices[lo:hi], w.data[lo:hi]
        yu = y[idx]
        c1 = fac.alpha * np.abs(rat)
        a = fac.gram + (yu.T * c1) @ yu + (fac.reg_param * float(np.count_nonzero(rat > 0)) + RIDGE) * np.eye(r)
        b = ((1.0 + c1) * (rat > 0)) @ yu
        out[u] = np.linalg.solve(a, b)
    return out


def score(x_users: np.ndarray, y_open: np.ndarray) -> np.ndarray:
    """(users x open sales) scores in [0, 1): max(0, x . y) / (1 + max(0, x . y))."""
    s = np.maximum(x_users @ y_open.T, 0.0)
    return s / (1.0 + s)
