"""Table contracts: every Delta table's name, schema, keys and partitioning.

Jobs and lib never spell a table name or a schema as a string literal: they use the
:class:`Table` objects here. docs/tables.md documents the same contracts for analysts
(a test checks that every table here is documented there).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql.types import (ArrayType, BinaryType, DateType, DoubleType, FloatType,
                               IntegerType, LongType, MapType, StringType, StructField,
                               StructType, TimestampType)


@dataclass(frozen=True)
class Table:
    name: str
    schema: StructType
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    truth: bool = False  # hidden truth of the demo world: evaluation only, never a model input
    # whether rows with the same key always share their partition values (then a MERGE may
    # prune on them); images: the same bytes ingested on a later day are the same image
    partition_follows_key: bool = True
    description: str = ""
    nullable: frozenset[str] = field(default_factory=frozenset)

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def _s(*fields: tuple) -> StructType:
    return StructType([StructField(n, t, True) for n, t in fields])


LABEL_PROB = StructType([StructField("label", StringType(), True),
                         StructField("probability", FloatType(), True)])

# ---------------------------------------------------------------- demo world (generate_world)
SALES = Table("sales", _s(
    ("sale_id", StringType()), ("hotel_id", StringType()), ("hotel", StringType()),
    ("destination", StringType()), ("country", StringType()), ("region", StringType()),
    ("destination_type", StringType()), ("stars", IntegerType()), ("price", DoubleType()),
    ("open_date", DateType()), ("close_date", DateType()), ("description", StringType()),
    ("n_images", IntegerType())),
    keys=("sale_id",), description="flash sales (hotel offers), open from open_date to close_date inclusive")

USERS = Table("users", _s(
    ("user_id", StringType()), ("home_region", StringType()), ("signup_date", DateType())),
    keys=("user_id",), description="customers")

VISITS = Table("visits", _s(
    ("user_id", StringType()), ("sale_id", StringType()), ("visit_ts", TimestampType()),
    ("visit_date", DateType())),
    keys=("user_id", "sale_id", "visit_ts"), partition_by=("visit_date",),
    description="sale page visits (only of sales open that day)")

PURCHASES = Table("purchases", _s(
    ("user_id", StringType()), ("sale_id", StringType()), ("purchase_ts", TimestampType()),
    ("purchase_date", DateType()), ("amount", DoubleType())),
    keys=("user_id", "sale_id", "purchase_date"), description="purchases (only of sales open that day)")

TRUTH_IMAGES = Table("truth_images", _s(
    ("sale_id", StringType()), ("uri", StringType()), ("photo_key", StringType()),
    ("category", StringType()), ("theme", StringType()), ("area", StringType()),
    ("aesthetic", DoubleType()), ("degradation", StringType()), ("variant", StringType())),
    keys=("uri",), truth=True,
    description="hidden truth per rendered image file: scene category, theme, property area, aesthetic score")

TRUTH_USERS = Table("truth_users", _s(
    ("user_id", StringType()), ("taste", MapType(StringType(), DoubleType())),
    ("budget", DoubleType()), ("activity", DoubleType())),
    keys=("user_id",), truth=True, description="hidden truth per user: taste over themes, budget, activity")

# ---------------------------------------------------------------- images (ingest_images)
IMAGES = Table("images", _s(
    ("image_id", StringType()), ("format", StringType()), ("width", IntegerType()),
    ("height", IntegerType()), ("source_mode", StringType()), ("n_bytes", LongType()),
    ("phash", StringType()), ("near_duplicate_of", StringType()), ("quality", ArrayType(FloatType())),
    ("content", BinaryType()),
    ("ingested_at", TimestampType()), ("ingest_date", DateType()), ("ingest_part", IntegerType())),
    keys=("image_id",), partition_by=("ingest_date", "ingest_part"), partition_follows_key=False,
    description="unique images by content hash (sha256 of the bytes), with the original bytes; partitioned by "
                "ingest day and a hash part sized by the day's images (about label.chunk_images each), so that "
                "labelling reads only what it scores, each byte once")

IMAGE_SOURCES = Table("image_sources", _s(
    ("image_id", StringType()), ("sale_id", StringType()), ("uri", StringType()),
    ("ingested_at", TimestampType())),
    keys=("uri",), description="every (sale, file) link to an image; duplicates collapse to one image_id")

IMAGES_REJECTED = Table("images_rejected", _s(
    ("uri", StringType()), ("sale_id", StringType()), ("reason", StringType()),
    ("detail", StringType()), ("rejected_at", TimestampType())),
    keys=("uri",), description="files that failed a check, with the reason; the job still succeeds")

INGEST_LOG = Table("ingest_log", _s(
    ("source", StringType()), ("position", DateType()), ("files", LongType()), ("logged_at", TimestampType())),
    keys=("source", "logged_at"),
    description="one row per incremental ingest run and source (a dated tree or a dated manifest): the last day "
                "read, the next run's watermark")

# ---------------------------------------------------------------- labels (label_images)
IMAGE_LABELS = Table("image_labels", _s(
    ("image_id", StringType()), ("model_version", StringType()),
    ("labels", ArrayType(LABEL_PROB)), ("embedding", ArrayType(FloatType())),
    ("probabilities", ArrayType(FloatType())), ("quality", ArrayType(FloatType())),
    ("scored_at", TimestampType())),
    keys=("image_id", "model_version"), partition_by=("model_version",),
    description="top-k scene labels, an embedding and no-reference quality statistics per image and model version")

IMAGE_LABEL_FAILURES = Table("image_label_failures", _s(
    ("image_id", StringType()), ("model_version", StringType()), ("reason", StringType()),
    ("detail", StringType()), ("failed_at", TimestampType())),
    keys=("image_id", "model_version"),
    description="images a model version could not score, with the reason: not retried for that version")

# ---------------------------------------------------------------- themes (fit_themes)
TAG_WEIGHT = StructType([StructField("tag", StringType(), True), StructField("weight", FloatType(), True)])

THEMES = Table("themes", _s(
    ("theme_id", IntegerType()), ("name", StringType()), ("model_version", StringType()),
    ("top_tags", ArrayType(TAG_WEIGHT)), ("share", DoubleType()), ("n_images", LongType()),
    ("fitted_at", TimestampType())),
    keys=("theme_id",), description="NMF themes: a name from the top tags, the tags with weights, share of images")

IMAGE_THEMES = Table("image_themes", _s(
    ("image_id", StringType()), ("weights", ArrayType(FloatType())), ("dominant_theme", IntegerType()),
    ("dominant_weight", FloatType())),
    keys=("image_id",), nullable=frozenset({"dominant_theme", "dominant_weight"}),
    description="each image as a mix of themes (weights sum to 1; all 0 for an image without tags)")

SALE_THEMES = Table("sale_themes", _s(
    ("sale_id", StringType()), ("weights", ArrayType(FloatType())), ("dominant_theme", IntegerType()),
    ("n_images", IntegerType())),
    keys=("sale_id",), description="the mean theme mix of a sale's images, normalised to sum 1")

USER_THEMES = Table("user_themes", _s(
    ("user_id", StringType()), ("weights", ArrayType(FloatType())), ("dominant_theme", IntegerType()),
    ("n_sales", IntegerType()), ("as_of", DateType())),
    keys=("user_id",),
    description="a user's theme profile: time-decayed mix of visited and bought sales up to the run date")

TAG_ATTRACTIVENESS = Table("tag_attractiveness", _s(
    ("level", StringType()), ("item", StringType()), ("segment", StringType()), ("segment_value", StringType()),
    ("visit_share", DoubleType()), ("sale_share", DoubleType()), ("attractiveness", DoubleType()),
    ("n_visits", LongType()), ("n_sales", LongType()), ("as_of", DateType())),
    keys=("level", "item", "segment", "segment_value"), nullable=frozenset({"attractiveness"}),
    description="share of visits with a tag or theme / share of sales with it - 1, overall and by segment")

# ---------------------------------------------------------------- recommenders (build_candidates)
SALE_NEIGHBORS = Table("sale_neighbors", _s(
    ("run_date", DateType()), ("kind", StringType()), ("sale_id", StringType()), ("neighbor_id", StringType()),
    ("similarity", DoubleType()), ("rank", IntegerType())),
    keys=("run_date", "kind", "sale_id", "neighbor_id"), partition_by=("run_date",),
    description="the K most similar sales per sale by themes, content and co-visits, per run date")

CANDIDATES = Table("candidates", _s(
    ("run_date", DateType()), ("user_id", StringType()), ("sale_id", StringType()), ("cf", DoubleType()),
    ("content", DoubleType()), ("image", DoubleType()), ("popularity", DoubleType()), ("recency", DoubleType()),
    ("price_fit", DoubleType()), ("als", DoubleType()), ("new_sale", DoubleType())),
    keys=("run_date", "user_id", "sale_id"), partition_by=("run_date",),
    description="every active user x every sale open on the run date, one scaled score column per engine")

# ---------------------------------------------------------------- re-ranker (train_reranker, recommend)
TRAINING_SET = Table("training_set", _s(
    ("as_of", DateType()), ("user_id", StringType()), ("sale_id", StringType()), ("label", DoubleType()),
    ("split", StringType()), ("cf", DoubleType()), ("content", DoubleType()), ("image", DoubleType()),
    ("popularity", DoubleType()), ("recency", DoubleType()), ("price_fit", DoubleType()), ("als", DoubleType()),
    ("new_sale", DoubleType())),
    keys=("as_of", "user_id", "sale_id"), partition_by=("split",),
    description="purchases (label 1) and sampled open, unbought sales (label 0) with engine scores as of that day")

RERANK_EVAL = Table("rerank_evaluation", _s(
    ("model_version", StringType()), ("arm", StringType()), ("metric", StringType()), ("value", DoubleType()),
    ("lift_vs_popularity", DoubleType()), ("n", LongType()), ("evaluated_at", TimestampType()),
    ("slice", StringType())),
    keys=("model_version", "arm", "slice", "metric"), nullable=frozenset({"lift_vs_popularity"}),
    description="offline evaluation on held-out days: each engine alone, the meta-model, the meta-model without images")

RECOMMENDATIONS = Table("recommendations", _s(
    ("run_date", DateType()), ("user_id", StringType()), ("rank", IntegerType()), ("sale_id", StringType()),
    ("probability", DoubleType()), ("top_engine", StringType()), ("model_version", StringType())),
    keys=("run_date", "user_id", "rank"), partition_by=("run_date",),
    description="each active user's top open sales on the run date, by the re-ranker's purchase probability")

# ---------------------------------------------------------------- heads (train_head)
IMAGE_AREAS = Table("image_areas", _s(
    ("image_id", StringType()), ("model_version", StringType()), ("area", StringType()),
    ("probability", FloatType()), ("probabilities", ArrayType(FloatType()))),
    keys=("image_id", "model_version"), description="the property area each image shows, by the area head")

IMAGE_AESTHETICS = Table("image_aesthetics", _s(
    ("image_id", StringType()), ("model_version", StringType()), ("distribution", ArrayType(FloatType())),
    ("score", FloatType())),
    keys=("image_id", "model_version"), description="each image's predicted 10-bin aesthetic score distribution and mean")

HEAD_EVAL = Table("head_evaluation", _s(
    ("model_version", StringType()), ("task", StringType()), ("arm", StringType()), ("metric", StringType()),
    ("class", StringType()), ("value", DoubleType()), ("n", LongType()), ("evaluated_at", TimestampType())),
    keys=("model_version", "task", "arm", "metric", "class"), nullable=frozenset({"class"}),
    description="held-out evaluation of the heads: noisy vs cleaned labels, transfer vs fine-tuned vs from scratch, "
                "aesthetics")

SALE_GALLERY = Table("sale_gallery", _s(
    ("sale_id", StringType()), ("rank", IntegerType()), ("image_id", StringType()), ("area", StringType()),
    ("score", FloatType())),
    keys=("sale_id", "rank"), description="each sale's images in gallery order: best-looking first, first few areas distinct")

MODEL_METRICS = Table("model_metrics", _s(
    ("model_version", StringType()), ("stage", StringType()), ("metric", StringType()),
    ("value", DoubleType()), ("n", LongType()), ("recorded_at", TimestampType())),
    keys=("model_version", "stage", "metric"), description="evaluation metrics of trained models")

STAGE_RUNS = Table("stage_runs", _s(
    ("stage", StringType()), ("run_date", DateType()), ("started_at", TimestampType()),
    ("seconds", DoubleType()), ("status", StringType()), ("outputs", MapType(StringType(), LongType())),
    ("config_env", StringType())),
    keys=("stage", "started_at"), description="one row per stage run: duration, status, rows written per table")

ALL_TABLES: dict[str, Table] = {t.name: t for t in [
    SALES, USERS, VISITS, PURCHASES, TRUTH_IMAGES, TRUTH_USERS, IMAGES, IMAGE_SOURCES,
    IMAGES_REJECTED, INGEST_LOG, IMAGE_LABELS, IMAGE_LABEL_FAILURES, THEMES, IMAGE_THEMES, SALE_THEMES, USER_THEMES, TAG_ATTRACTIVENESS,
    SALE_NEIGHBORS, CANDIDATES, TRAINING_SET, RERANK_EVAL, RECOMMENDATIONS, IMAGE_AREAS, IMAGE_AESTHETICS, HEAD_EVAL, SALE_GALLERY, MODEL_METRICS,
    STAGE_RUNS]}

# Tables made from the demo world's image files: a regenerated world rewrites those files
# under the same paths, so generate_world drops these (ingest and labelling then start over).
FROM_WORLD_FILES: list[Table] = [IMAGES, IMAGE_SOURCES, IMAGES_REJECTED, INGEST_LOG, IMAGE_LABELS, IMAGE_LABEL_FAILURES, THEMES, IMAGE_THEMES,
                                 SALE_THEMES, USER_THEMES, TAG_ATTRACTIVENESS]
