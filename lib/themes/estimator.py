"""NMF themes as a Spark ML Estimator and Model, persisted with MLlib's own format.

- :class:`ThemeNMF` (Estimator): its Params are the factorisation's settings (k, alphaW,
  alphaH, l1Ratio, maxIter, tol, seed, initSampleRows, solverSweeps) and the tag
  vocabulary (``tags``: the columns of the image x tag matrix). ``fit`` runs the
  distributed alternating NNLS of :func:`vistarank.themes.nmf.fit` on a DataFrame of
  (image_id, idx array<int>, val array<float>) rows (:func:`vistarank.themes.profiles.tag_matrix`).
- **Warm start** (:meth:`ThemeNMF.setInitialModel`): the fit starts from a previous
  model's themes instead of scikit-learn's NNDSVDa on a sample, and the new themes are
  matched to the old ones (the assignment that maximises the summed cosine, scipy's
  ``linear_sum_assignment``): theme i of the new model is the successor of theme i of the
  old one, so analysts' theme ids do not renumber when the nightly refit sees new images.
  ``model.drift`` reports each theme's cosine to its predecessor.
- :class:`ThemeNMFModel` (Model): the theme matrix (``themes``: k x tags, rows summing to
  1) and ``transform`` (each image's theme weights by NNLS against it: a ``weights``
  column). Saved and loaded with ``model.write().save(path)`` / ``ThemeNMFModel.load``
  (DefaultParamsWritable: the matrix is a Param, a few thousand numbers).
"""
from __future__ import annotations

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame

from vistarank.themes import nmf


class _ThemeParams(Params):
    k = Param(Params._dummy(), "k", "number of themes", TypeConverters.toInt)
    alphaW = Param(Params._dummy(), "alphaW", "penalty on the image weights (scikit-learn's alpha_W)",
                   TypeConverters.toFloat)
    alphaH = Param(Params._dummy(), "alphaH", "penalty on the themes (scikit-learn's alpha_H)", TypeConverters.toFloat)
    l1Ratio = Param(Params._dummy(), "l1Ratio", "share of L1 in the penalties", TypeConverters.toFloat)
    maxIter = Param(Params._dummy(), "maxIter", "distributed passes at most", TypeConverters.toInt)
    tol = Param(Params._dummy(), "tol", "stop when a pass improves the objective by less (relative)",
                TypeConverters.toFloat)
    seed = Param(Params._dummy(), "seed", "seed of the starting sample and of restarted themes", TypeConverters.toInt)
    initSampleRows = Param(Params._dummy(), "initSampleRows", "rows of the sample scikit-learn starts from",
                           TypeConverters.toInt)
    solverSweeps = Param(Params._dummy(), "solverSweeps", "coordinate-descent sweeps of each row's NNLS",
                         TypeConverters.toInt)
    tags = Param(Params._dummy(), "tags", "the tag vocabulary (the matrix's columns)", TypeConverters.toListString)

    def _defaults(self) -> None:
        d = nmf.NMFParams()
        self._setDefault(k=d.n_themes, alphaW=d.alpha_w, alphaH=d.alpha_h, l1Ratio=d.l1_ratio, maxIter=d.max_iter,
                         tol=d.tol, seed=d.seed, initSampleRows=d.init_sample_rows, solverSweeps=d.solver_sweeps)

    def nmf_params(self) -> nmf.NMFParams:
        g = self.getOrDefault
        return nmf.NMFParams(n_themes=g(self.k), alpha_w=g(self.alphaW), alpha_h=g(self.alphaH),
                             l1_ratio=g(self.l1Ratio), max_iter=g(self.maxIter), tol=g(self.tol), seed=g(self.seed),
                             init_sample_rows=g(self.initSampleRows), solver_sweeps=g(self.solverSweeps))


class ThemeNMF(Estimator, _ThemeParams, DefaultParamsReadable, DefaultParamsWritable):
    """The NMF themes estimator (see the module's docstring)."""

    @keyword_only
    def __init__(self, *, k: int | None = None, alphaW: float | None = None, alphaH: float | None = None,
                 l1Ratio: float | None = None, maxIter: int | None = None, tol: float | None = None,
                 seed: int | None = None, initSampleRows: int | None = None, solverSweeps: int | None = None,
                 tags: list[str] | None = None) -> None:
        super().__init__()
        self._defaults()
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        self._initial: ThemeNMFModel | None = None

    @classmethod
    def of(cls, p: nmf.NMFParams, tags: list[str]) -> "ThemeNMF":
        return cls(k=p.n_themes, alphaW=p.alpha_w, alphaH=p.alpha_h, l1Ratio=p.l1_ratio, maxIter=p.max_iter,
                   tol=p.tol, seed=p.seed, initSampleRows=p.init_sample_rows, solverSweeps=p.solver_sweeps,
                   tags=list(tags))

    def setInitialModel(self, model: "ThemeNMFModel | None") -> "ThemeNMF":
        """Warm start from ``model`` (its tags must be this estimator's); None: a cold start."""
        self._initial = model
        return self

    def _fit(self, dataset: DataFrame) -> "ThemeNMFModel":
        if not self.isSet(self.tags):
            raise ValueError("ThemeNMF needs its tag vocabulary: ThemeNMF(tags=[...])")
        tags = list(self.getOrDefault(self.tags))
        p = self.nmf_params()
        old = getattr(self, "_initial", None)
        init = None
        if old is not None:
            if list(old.getOrDefault(old.tags)) != tags:
                raise ValueError("warm start: the previous model's tags differ from these (a new labelling model?); "
                                 "fit without setInitialModel")
            init = old.fitted().h_fit
        fitted = nmf.fit(dataset, tags, p, init=init)
        drift = None
        if old is not None:
            order, sim = nmf.match_themes(old.fitted().h, fitted.h)
            fitted.h_fit, fitted.scale = fitted.h_fit[order], fitted.scale[order]
            drift = [float(x) for x in sim]
        model = ThemeNMFModel._from(fitted, self)
        model._set(drift=drift or [])
        return model


class ThemeNMFModel(Model, _ThemeParams, DefaultParamsReadable, DefaultParamsWritable):
    """The fitted themes (see the module's docstring)."""

    hFit = Param(Params._dummy(), "hFit", "the solver's theme matrix, row-major (k x tags)", TypeConverters.toListFloat)
    scale = Param(Params._dummy(), "scale", "per theme: the solver's row sum (hFit / scale sums to 1)",
                  TypeConverters.toListFloat)
    nRows = Param(Params._dummy(), "nRows", "rows the model was fitted on (the penalties' scale)", TypeConverters.toInt)
    drift = Param(Params._dummy(), "drift", "after a warm start: each theme's cosine to its predecessor",
                  TypeConverters.toListFloat)
    losses = Param(Params._dummy(), "losses", "the objective after each pass", TypeConverters.toListFloat)

    def __init__(self) -> None:
        super().__init__()
        self._defaults()
        self._setDefault(drift=[], losses=[], nRows=0)

    @classmethod
    def _from(cls, fitted: nmf.NMFModel, est: ThemeNMF) -> "ThemeNMFModel":
        m = cls()
        est._copyValues(m)
        m._set(k=fitted.k, hFit=[float(x) for x in fitted.h_fit.ravel()], scale=[float(x) for x in fitted.scale],
               nRows=int(fitted.n_rows), losses=[float(x) for x in fitted.losses])
        m._fitted = fitted
        return m

    def fitted(self) -> nmf.NMFModel:
        """The model as :mod:`vistarank.themes.nmf` uses it."""
        got = getattr(self, "_fitted", None)
        if got is None:
            tags = list(self.getOrDefault(self.tags))
            h = np.asarray(self.getOrDefault(self.hFit), dtype=np.float64).reshape(-1, len(tags))
            got = nmf.NMFModel(h, np.asarray(self.getOrDefault(self.scale), dtype=np.float64), tags,
                               self.nmf_params(), int(self.getOrDefault(self.nRows)),
                               list(self.getOrDefault(self.losses)))
            self._fitted = got
        return got

    @property
    def themes(self) -> np.ndarray:
        """k x tags, each row summing to 1."""
        return self.fitted().h

    @property
    def drift_(self) -> list[float]:
        return list(self.getOrDefault(self.drift))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return nmf.transform(dataset, self.fitted())
