"""The demo's transfer-learning tasks: hotel property areas (single label) and image
aesthetics (10-bin score distributions, EMD loss), as heads on frozen embeddings.

- Labels come from the demo world's hidden truth with a small budget per class
  (``training.labels_per_class``), drawn by a seeded hash; an optional share of them is
  flipped to a wrong class (``training.label_noise``) to show the cleaning step.
- Cleaning: out-of-fold predictions (``training.folds`` heads, each trained without its
  fold); a label is suspicious when the head's top class is another one, with at least
  ``training.clean_confidence`` and the label less than 1 - that (0, the default: every
  label the out-of-fold top class contradicts, cleanlab's ``predicted_neq_given``). With
  ``training.clean_neighbours`` k, only the contradictions the label's k nearest labelled
  neighbours back (their majority class is the one the heads predict: deep k-NN, Bahri et
  al. 2020) are acted on: an out-of-fold head that never saw a scene as its class guesses,
  and its guess has no neighbours behind it. ``training.clean_spread`` keeps the backed
  contradictions far from every label of the predicted class, ``training.clean_outliers``
  also acts on the contradicted area labels unlike every label of their area. The acted-on
  labels the heads call ``other`` become ``other`` and the rest are dropped
  (``training.clean_action`` other_or_drop, the default; drop; relabel: the predicted
  class), and the head is retrained.
- Evaluation on held-out truth (images not in the label set): top-1/top-5 accuracy,
  per-class precision and recall, a confusion matrix PNG; for aesthetics, the mean EMD
  and the Spearman correlation of the predicted mean score with the hidden score.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

BINS = 10


def score_distribution(score: F.Column, sigma: float = 1.0) -> F.Column:
    """A 10-bin distribution over scores 1..10: a discretised Gaussian around the score
    (how a panel of raters' votes would spread), normalised to sum 1."""
    w = [F.exp(-((F.lit(float(b)) - score) ** 2) / (2 * sigma * sigma)) for b in range(1, BINS + 1)]
    total = w[0]
    for x in w[1:]:
        total = total + x
    return F.array(*[(x / total).cast("float") for x in w])


def score_distribution_np(score: float, sigma: float = 1.0) -> np.ndarray:
    """:func:`score_distribution` for one score, in numpy (held-out targets)."""
    b = np.arange(1, BINS + 1, dtype=np.float64)
    w = np.exp(-((b - score) ** 2) / (2 * sigma * sigma))
    return w / w.sum()


def image_truth(truth: DataFrame, sources: DataFrame) -> DataFrame:
    """(image_id, area, aesthetic) from the hidden truth of the files behind each image."""
    return (truth.join(sources.select("uri", "image_id"), "uri")
            .groupBy("image_id").agg(F.first("area", ignorenulls=True).alias("area"),
                                     F.avg("aesthetic").alias("aesthetic")))


def budget(df: DataFrame, label: str, per_class: int, seed: int) -> DataFrame:
    """At most ``per_class`` rows per label value, by a seeded hash of image_id."""
    from pyspark.sql import Window

    w = Window.partitionBy(label).orderBy(F.xxhash64("image_id", F.lit(seed)), "image_id")
    return df.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= per_class).drop("_r")


def add_noise(df: DataFrame, classes: list[str], rate: float, seed: int) -> DataFrame:
    """Flip ``rate`` of the labels (seeded) to another class; keeps the true one in ``true_y``."""
    if rate <= 0:
        return df.withColumn("true_y", F.col("y")).withColumn("noisy", F.lit(False))
    u = (F.abs(F.xxhash64("image_id", F.lit(seed + 1))) % 1_000_000) / 1_000_000.0
    shift = (F.abs(F.xxhash64("image_id", F.lit(seed + 2))) % (len(classes) - 1)) + 1
    flipped = ((F.col("y") + shift) % len(classes)).cast("long")
    return (df.withColumn("true_y", F.col("y")).withColumn("noisy", u < rate)
            .withColumn("y", F.when(F.col("noisy"), flipped).otherwise(F.col("y"))))


def class_weights(y: np.ndarray, n: int) -> np.ndarray:
    """Balanced weights: n_rows / (n_classes * count), 0 for an absent class."""
    counts = np.bincount(y, minlength=n).astype(float)
    return np.where(counts > 0, len(y) / (n * np.maximum(counts, 1)), 0.0)


def suspicious(oof: np.ndarray, y: np.ndarray, confidence: float) -> np.ndarray:
    """Labels whose out-of-fold top class is another one, given at least ``confidence``
    while the label gets less than ``1 - confidence`` (0: every such contradiction)."""
    pred = oof.argmax(axis=1)
    return (pred != y) & (oof.max(axis=1) >= confidence) & (oof[np.arange(len(y)), y] < 1 - confidence)


def neighbour_votes(x: np.ndarray, y: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """(n, n_classes): each label's share of its ``k`` nearest other labels in each class, by
    the cosine distance between their features (scikit-learn's exact ``NearestNeighbors``;
    a label is never its own neighbour). Zeros when there are too few labels."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(y) - 1)
    votes = np.zeros((len(y), n_classes))
    if k < 1:
        return votes
    idx = NearestNeighbors(n_neighbors=k, metric="cosine").fit(x).kneighbors(return_distance=False)
    np.add.at(votes, (np.repeat(np.arange(len(y)), k), np.asarray(y)[idx].ravel()), 1.0)
    return votes / k


def class_distances(x: np.ndarray, y: np.ndarray, n_classes: int, k: int = 5) -> np.ndarray:
    """(n, n_classes): each label's mean cosine distance to its ``k`` nearest labels of each
    class (scikit-learn's exact ``NearestNeighbors``; a label is never its own neighbour;
    fewer when the class has fewer; inf for a class with no other label)."""
    from sklearn.neighbors import NearestNeighbors

    x, y = np.asarray(x), np.asarray(y)
    out = np.full((len(y), n_classes), np.inf)
    for c in np.unique(y):
        members = np.where(y == c)[0]
        d, j = NearestNeighbors(n_neighbors=min(k + 1, len(members)), metric="cosine").fit(
            x[members]).kneighbors(x)
        d = np.sort(np.where(members[j] == np.arange(len(y))[:, None], np.inf, d), axis=1)[:, :k]
        fin = np.isfinite(d)
        n = fin.sum(axis=1)
        out[:, c] = np.where(n > 0, np.where(fin, d, 0.0).sum(axis=1) / np.maximum(n, 1), np.inf)
    return out


def near_predicted(oof: np.ndarray, y: np.ndarray, dist: np.ndarray, quantile: float) -> np.ndarray:
    """Whether each label lies as close to the labels of its predicted class (the out-of-fold
    heads' top class) as that class's own labels lie to each other: its distance to them
    (:func:`class_distances`) is at most the ``quantile`` of the class's own labels' distances
    to theirs. A contradiction far from every label of the predicted class (a scene labelled
    once, that no label of the guessed class is near) is a guess of the heads, not evidence
    of a flip. True everywhere at ``quantile`` 0 (no gate) or when the class has no spread."""
    pred = np.asarray(oof).argmax(axis=1)
    if quantile <= 0:
        return np.ones(len(pred), bool)
    y = np.asarray(y)
    spread = np.full(dist.shape[1], np.inf)
    for c in np.unique(y):
        own = dist[y == c, c]
        own = own[np.isfinite(own)]
        if len(own):
            spread[c] = np.quantile(own, quantile)
    return dist[np.arange(len(pred)), pred] <= spread[pred]


def within_own_spread(y: np.ndarray, dist: np.ndarray, quantile: float) -> np.ndarray:
    """Whether each label lies as close to the other labels of its own class as that class's
    labels lie to each other (:func:`near_predicted` with the given class in place of the
    predicted one). False marks an outlier of its class: for a class that is one kind of
    scene, a label unlike all of it. True everywhere at ``quantile`` 0."""
    y = np.asarray(y)
    return near_predicted(np.eye(dist.shape[1])[y], y, dist, quantile)


def backed(oof: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """Whether the neighbours' majority class (:func:`neighbour_votes`; a tie counts for the
    predicted class) is the out-of-fold heads' top class."""
    pred = oof.argmax(axis=1)
    return votes[np.arange(len(pred)), pred] >= votes.max(axis=1)


def cap_per_class(oof: np.ndarray, y: np.ndarray, flag: np.ndarray, factor: float) -> np.ndarray:
    """``flag`` with at most ``ceil(factor x the flagged share x n_c)`` labels of each given
    class ``c`` (its ``n_c`` labels) left flagged: the ones whose own class the out-of-fold
    heads give the least probability. A class whose labels the heads contradict far more
    often than the others' (``other``, many scenes under one label, when a rare scene has
    no other label in the budget) keeps its least contradicted ones."""
    flag = np.asarray(flag, bool)
    if factor <= 0 or not flag.any():
        return flag
    share = factor * flag.mean()
    out = np.zeros_like(flag)
    for c in np.unique(y[flag]):
        idx = np.where(flag & (y == c))[0]
        cap = int(np.ceil(share * (y == c).sum()))
        out[idx[np.argsort(oof[idx, c], kind="stable")][:cap]] = True
    return out


def classification_report(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    top = np.argsort(-probs, axis=1)
    k = min(5, probs.shape[1])
    p, r, _, support = precision_recall_fscore_support(y, top[:, 0], labels=list(range(len(classes))),
                                                       zero_division=0)
    return {"top1": float((top[:, 0] == y).mean()), "top5": float((top[:, :k] == y[:, None]).any(axis=1).mean()),
            "n": int(len(y)), "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]),
                                                "support": int(support[i])} for i, c in enumerate(classes)}}


def confusion_png(y: np.ndarray, pred: np.ndarray, classes: list[str], title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, pred, labels=list(range(len(classes))))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def aesthetics_report(dist_true: np.ndarray, dist_pred: np.ndarray, score_true: np.ndarray,
                      score_cap: float | None = None) -> dict:
    """EMD, and Spearman's correlation of the predicted score with the true one: of the
    score as written (``spearman``: the mean capped at ``score_cap``) and of the uncapped
    mean (``spearman_mean``)."""
    from scipy.stats import spearmanr

    from vistarank.training.heads import emd_numpy, mean_score
    from vistarank.udfs.heads import capped

    mean = mean_score(dist_pred)
    pred_score = capped(mean, score_cap)
    return {"emd": float(emd_numpy(dist_true, dist_pred).mean()),
            "spearman": float(spearmanr(pred_score, score_true).statistic),
            "spearman_mean": float(spearmanr(mean, score_true).statistic), "n": int(len(score_true)),
            "mae_score": float(np.abs(mean - score_true).mean()),
            "tied_at_cap": float((mean >= score_cap).mean()) if score_cap is not None else 0.0}


def evaluation_rows(report: dict) -> list[tuple]:
    """The evaluation report as (task, arm, metric, class, value, n) rows for head_evaluation."""
    rows: list[tuple] = []

    def classification(arm: str, r: dict) -> None:
        for m in ("top1", "top5"):
            rows.append(("areas", arm, m, None, float(r[m]), int(r["n"])))
        for c, pc in r["per_class"].items():
            rows.append(("areas", arm, "precision", c, float(pc["precision"]), int(pc["support"])))
            rows.append(("areas", arm, "recall", c, float(pc["recall"]), int(pc["support"])))

    classification("noisy", report["areas_noisy"])
    classification("cleaned", report["areas_cleaned"])
    if "areas_true_labels" in report:
        classification("true_labels", report["areas_true_labels"])
    for arm in ("transfer_head", "fine_tuned", "from_scratch"):
        if arm in report.get("areas_images", {}):
            classification(arm, report["areas_images"][arm])
    c = report["cleaning"]
    for m in ("flagged", "flagged_and_noisy", "precision", "recall", "not_backed", "not_near", "outliers",
              "relabelled", "relabelled_right"):
        if m in c:  # the last five: since the neighbour check, the spread gate (training.clean_spread), the outlier
            # rule (training.clean_outliers) and relabelling (training.clean_action)
            rows.append(("cleaning", "cleaned", m, None, float(c[m]), int(c["labels"])))
    for cls, n in c.get("flagged_clean_by_class", {}).items():  # dropped labels the injected noise had not flipped
        rows.append(("cleaning", "cleaned", "flagged_clean", cls, float(n), int(c["labels"])))
    a = report["aesthetics"]
    for m in ("emd", "spearman", "spearman_mean", "mae_score", "tied_at_cap"):
        if m in a:
            rows.append(("aesthetics", "emd_head", m, None, float(a[m]), int(a["n"])))
    if "gallery" in report:
        g = report["gallery"]
        rows.append(("gallery", "aesthetics", "first_in_hidden_top3", None, float(g["first_in_hidden_top3"]),
                     int(g["n"])))
    return rows


# --------------------------------------------------------------------------- the registered heads
MANIFEST = "heads.json"


def manifest_path(cfg) -> str:
    from vistarank.config import join

    return join(cfg.versioned_dir(cfg.training), MANIFEST)


def write_manifest(cfg, area: str, aesthetics: str, classes: list[str], features: str,
                   quality_mean: list[float] | None = None, score_cap: float | None = None) -> str:
    """Register the trained heads (training.model_version) for label_images, which applies
    them in its scoring pass to images labelled by the ``features`` model version.
    ``quality_mean``: the aesthetics head reads [embedding, quality statistics]; an image
    without statistics gets this mean (:func:`vistarank.udfs.heads.quality_matrix`).
    ``score_cap``: the aesthetic score is the distribution's mean capped there (None: no cap)."""
    import json

    from vistarank.files import write_bytes

    path = manifest_path(cfg)
    write_bytes(path, json.dumps({"model_version": cfg.training.model_version, "area": area,
                                  "aesthetics": aesthetics, "classes": classes, "features": features,
                                  "quality_mean": quality_mean, "score_cap": score_cap},
                                 indent=1).encode())
    return path


def load_manifest(cfg, features: str):
    """The registered heads as JSON text when they exist and take ``features``' embeddings;
    else None (label_images then writes labels only)."""
    import json

    from vistarank.files import read_text

    text = read_text(manifest_path(cfg))
    if text is None:
        return None
    m = json.loads(text)
    if m.get("features") != features:
        log.info("heads %s were trained on %s embeddings, not %s: not applied", m.get("model_version"),
                 m.get("features"), features)
        return None
    return text

