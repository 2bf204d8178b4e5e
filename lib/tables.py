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
    ("phash", StringType()), ("near_duplicate_of", StringType()), ("content", BinaryType()),
    ("ingested_at", TimestampType())),
    keys=("image_id",),
    description="unique images by content hash (sha256 of the bytes), with the original bytes")

IMAGE_SOURCES = Table("image_sources", _s(
    ("image_id", StringType()), ("sale_id", StringType()), ("uri", StringType()),
    ("ingested_at", TimestampType())),
    keys=("uri",), description="every (sale, file) link to an image; duplicates collapse to one image_id")

IMAGES_REJECTED = Table("images_rejected", _s(
    ("uri", StringType()), ("sale_id", StringType()), ("reason", StringType()),
    ("detail", StringType()), ("rejected_at", TimestampType())),
    keys=("uri",), description="files that failed a check, with the reason; the job still succeeds")

# ---------------------------------------------------------------- labels (label_images)
IMAGE_LABELS = Table("image_labels", _s(
    ("image_id", StringType()), ("model_version", StringType()),
    ("labels", ArrayType(LABEL_PROB)), ("embedding", ArrayType(FloatType())),
    ("probabilities", ArrayType(FloatType())), ("scored_at", TimestampType())),
    keys=("image_id", "model_version"), partition_by=("model_version",),
    description="top-k scene labels and an embedding per image and model version")

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
    IMAGES_REJECTED, IMAGE_LABELS, MODEL_METRICS, STAGE_RUNS]}
