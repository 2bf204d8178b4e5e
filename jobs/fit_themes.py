"""fit_themes: NMF of image x tag probabilities into named themes; image, sale and user theme
profiles, tag and theme attractiveness, and theme galleries."""
from __future__ import annotations

import dataclasses
import json
import logging
import sys

import numpy as np

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.files import read_text, write_bytes
from vistarank.jobs.common import main_for
from vistarank import runs
from vistarank.runs import StageResult, record_metrics
from vistarank.themes import nmf, pictures, profiles
from vistarank.themes.estimator import ThemeNMF, ThemeNMFModel
from vistarank.vision import models

log = logging.getLogger(__name__)


def params(cfg: Config) -> nmf.NMFParams:
    t = cfg.themes
    return nmf.NMFParams(n_themes=t.n_themes, alpha_w=t.alpha_w, alpha_h=t.alpha_h, l1_ratio=t.l1_ratio,
                         max_iter=t.max_iter, tol=t.tol, seed=t.seed, init_sample_rows=t.init_sample_rows)


def model_folder(cfg: Config, model_version: str) -> str:
    return join(cfg.models_dir(), "themes", model_version.replace(":", "_").replace("/", "_"))


def labels_for(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    return io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == model_version)


def load_saved(folder: str) -> tuple[ThemeNMFModel, dict] | None:
    """The themes model saved in ``folder`` (MLlib persistence, ``model/``) and its
    ``themes.json``; None when there is none (or only a fit saved by an earlier vistarank)."""
    text = read_text(join(folder, "themes.json"))
    if text is None or read_text(join(folder, "model", "metadata", "_SUCCESS")) is None:
        return None
    return ThemeNMFModel.load(join(folder, "model")), json.loads(text)


def fit_or_load(spark: SparkSession, cfg: Config, rm: models.ResolvedModel, x: DataFrame,
                tags: list[str]) -> tuple[ThemeNMFModel, list[str], bool]:
    """The saved fit when it was made from this very image_labels version, tags and
    parameters (a rerun refits nothing); otherwise a new fit, saved: warm-started from the
    saved one when it has the same tags and number of themes (``themes.warm_start``), so
    theme ids stay (each theme's drift is logged and kept in themes.json)."""
    folder = model_folder(cfg, rm.model_version)
    labels_version = io.snapshot_id(spark, cfg, T.IMAGE_LABELS)
    p = params(cfg)
    est = ThemeNMF.of(p, tags)
    saved = load_saved(folder)
    if saved is not None:
        prev, meta = saved
        if (meta.get("labels_version") == labels_version and meta["tags"] == tags
                and meta["params"] == dataclasses.asdict(p) and meta.get("input") == cfg.themes.input):
            log.info("themes: reusing the fit in %s (image_labels %s)", folder, labels_version)
            return prev, meta["names"], False
        if cfg.themes.warm_start and meta["tags"] == tags and meta.get("input") == cfg.themes.input \
                and prev.fitted().k == p.n_themes:
            log.info("themes: warm start from the fit of image_labels %s", meta.get("labels_version"))
            est.setInitialModel(prev)
    model = est.fit(x)
    names = nmf.theme_names(model.fitted(), cfg.themes.name_tags)
    drift = model.drift_
    if drift:
        log.info("themes: drift from the previous fit: mean cosine %.3f, lowest %.3f (theme %d)", float(np.mean(drift)),
                 min(drift), int(np.argmin(drift)))
    model.write().overwrite().save(join(folder, "model"))
    f = model.fitted()
    meta = {"tags": tags, "names": names, "params": dataclasses.asdict(p), "n_rows": f.n_rows, "losses": f.losses,
            "converged": f.converged, "seconds": f.seconds, "rec": f.rec, "labels_version": labels_version,
            "input": cfg.themes.input, "model_version": rm.model_version, "warm_start": bool(drift),
            "drift": drift}
    write_bytes(join(folder, "themes.json"), json.dumps(meta, indent=1).encode())
    return model, names, True


OUTPUTS = [T.THEMES, T.IMAGE_THEMES, T.SALE_THEMES, T.USER_THEMES, T.TAG_ATTRACTIVENESS]
INPUTS = [T.IMAGE_LABELS, T.IMAGE_SOURCES, T.IMAGES, T.SALES, T.USERS, T.VISITS, T.PURCHASES]


def inputs_fingerprint(spark: SparkSession, cfg: Config) -> dict:
    """What the stage's outputs depend on: input table states, run date, model, config."""
    return runs.fingerprint(spark, cfg, INPUTS, model_version=cfg.model.model_version,
                            themes=cfg.themes.model_dump())


def needed(spark: SparkSession, cfg: Config) -> bool:
    """False when every output exists and was written from these very inputs."""
    return not runs.is_current(spark, cfg, "fit_themes", OUTPUTS, inputs_fingerprint(spark, cfg))


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("fit_themes")
    tc = cfg.themes
    run_date = cfg.effective_run_date()
    rm = models.resolve(cfg)
    fingerprint = inputs_fingerprint(spark, cfg)  # before reading: a concurrent change reruns next time
    with open(rm.labels_path, encoding="utf-8") as fh:
        tags = models.parse_labels(fh.read())
    labels = labels_for(spark, cfg, rm.model_version)
    if tc.input == "full" and labels.where(F.col("probabilities").isNotNull()).limit(1).count() == 0:
        raise ValueError("themes.input=full needs full probability vectors: label the images with "
                         "label.full_probabilities=true (and a new model.version), or use themes.input=topk")
    x = profiles.tag_matrix(labels, tags, tc.input)
    model, names, refit = fit_or_load(spark, cfg, rm, x, tags)

    res.add(T.IMAGE_THEMES, io.write(profiles.image_themes(model.transform(x)), cfg, T.IMAGE_THEMES))
    img = io.read(spark, cfg, T.IMAGE_THEMES)
    res.add(T.THEMES, io.write(profiles.themes_table(spark, model.themes, tags, names, rm.model_version, img,
                                                     tc.top_tags), cfg, T.THEMES))
    sources = io.read(spark, cfg, T.IMAGE_SOURCES)
    res.add(T.SALE_THEMES, io.write(profiles.sale_themes(img, sources), cfg, T.SALE_THEMES))
    sale_th = io.read(spark, cfg, T.SALE_THEMES)
    visits, purchases = io.read(spark, cfg, T.VISITS), io.read(spark, cfg, T.PURCHASES)
    inter = profiles.interactions(visits, purchases, run_date, tc.user_half_life_days, tc.purchase_weight)
    res.add(T.USER_THEMES, io.write(profiles.user_themes(inter, sale_th, run_date), cfg, T.USER_THEMES))
    items = profiles.sale_items(labels, sources, sale_th, names, tc.tag_min_probability)
    attr = profiles.attractiveness(visits, io.read(spark, cfg, T.USERS), io.read(spark, cfg, T.SALES), items,
                                   run_date)
    res.add(T.TAG_ATTRACTIVENESS, io.write(attr, cfg, T.TAG_ATTRACTIVENESS))

    themes_rows = [r.asDict(recursive=True) for r in io.read(spark, cfg, T.THEMES).orderBy("theme_id").collect()]
    for t in themes_rows:
        t["top_tags"] = [(x["tag"], x["weight"]) for x in t["top_tags"]]
    top = profiles.top_images(img, tc.gallery_images).join(
        io.read(spark, cfg, T.IMAGES).select("image_id", "content"), "image_id")
    shown: dict[int, list[tuple[int, bytes]]] = {}
    for r in top.toLocalIterator():  # k x gallery_images rows at most
        shown.setdefault(r["theme_id"], []).append((r["rank"], bytes(r["content"])))
    images = {k: [c for _, c in sorted(v)] for k, v in shown.items()}
    paths = pictures.write_galleries(cfg.reports_dir(), themes_rows, images, tc.overview_images)

    if refit:
        drift = model.drift_
        model = model.fitted()
        metrics = {"reconstruction_error": model.reconstruction_error(), "objective": model.losses[-1],
                   "passes": len(model.losses), "converged": float(model.converged), "n_themes": model.k,
                   "fit_seconds": model.seconds} | (
            {"drift_mean_cosine": float(np.mean(drift)), "drift_min_cosine": float(min(drift))} if drift else {})
        res.add(T.MODEL_METRICS, record_metrics(spark, cfg, f"themes:{rm.model_version}", "fit_themes",
                                                metrics, model.n_rows))
    runs.mark_current(cfg, "fit_themes", fingerprint)
    res.notes.append(f"{len(names)} themes ({'fitted' if refit else 'reused'}): {', '.join(names[:5])}"
                     f"{', ...' if len(names) > 5 else ''}")
    res.notes.append(f"galleries: {join(cfg.reports_dir(), 'themes', 'overview.png')} and {len(paths) - 1} more")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("fit_themes", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
