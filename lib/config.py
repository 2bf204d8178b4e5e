"""Layered, typed configuration.

``conf/base.yaml`` holds every key with its default; an environment overlay
(``conf/<env>.yaml``) and ``--set a.b=c`` overrides are merged on top. The result
is validated into :class:`Config` before Spark starts: an unknown key, a wrong
type or a missing local path raises :class:`ConfigError` naming the key (and the
closest valid key for a typo).
"""
from __future__ import annotations

import copy
import datetime as dt
import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

URI_SCHEMES = ("s3://", "s3a://", "gs://", "abfss://", "wasbs://", "hdfs://", "dbfs:/", "file:/")


class ConfigError(ValueError):
    """A configuration problem, raised before any Spark work starts."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LakehouseConfig(_Section):
    root: str = "./lakehouse"
    schema_name: Optional[str] = None


class SparkConfig(_Section):
    app_name: str = "vistarank"
    master: str = "local[*]"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "6g"
    arrow_batch_size: int = Field(1024, ge=1)
    jars_dir: str = ".cache/jars"
    ivy_dir: str = ".cache/ivy"
    show_progress: bool = True
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    extra_conf: dict[str, str] = Field(default_factory=dict)


class WorldSize(_Section):
    n_sales: int = Field(ge=1)
    n_hotels: int = Field(ge=1)
    n_users: int = Field(ge=1)
    n_days: int = Field(ge=1)
    images_per_sale_min: int = Field(ge=1)
    images_per_sale_max: int = Field(ge=1)
    partitions: int = Field(ge=1)


class WorldConfig(_Section):
    size: Literal["tiny", "small", "demo"] = "demo"
    seed: int = 42
    start_date: dt.date = dt.date(2026, 9, 1)
    sale_days_min: int = Field(5, ge=1)
    sale_days_max: int = Field(9, ge=1)
    image_min_side: int = Field(160, ge=16)
    image_max_side: int = Field(360, ge=16)
    near_duplicate_rate: float = Field(0.15, ge=0, le=1)
    degraded_rate: float = Field(0.35, ge=0, le=1)
    visits_per_active_day: float = Field(1.5, gt=0)
    purchase_rate: float = Field(0.04, ge=0, le=1)
    sizes: dict[str, WorldSize] = Field(default_factory=lambda: {
        "tiny": WorldSize(n_sales=40, n_hotels=30, n_users=150, n_days=14, images_per_sale_min=3,
                          images_per_sale_max=6, partitions=2),
        "small": WorldSize(n_sales=300, n_hotels=220, n_users=1500, n_days=30, images_per_sale_min=3,
                           images_per_sale_max=12, partitions=4),
        "demo": WorldSize(n_sales=2000, n_hotels=1400, n_users=10000, n_days=60, images_per_sale_min=3,
                          images_per_sale_max=12, partitions=8)})

    def dims(self) -> WorldSize:
        if self.size not in self.sizes:
            raise ConfigError(f"world.size={self.size!r} has no entry under world.sizes "
                              f"(have: {sorted(self.sizes)})")
        return self.sizes[self.size]

    @property
    def end_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.dims().n_days - 1)


class IngestConfig(_Section):
    source: Optional[str] = None
    manifest: Optional[str] = None
    formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
    extensions: list[str] = Field(default_factory=lambda: [
        "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"])
    max_bytes: int = Field(20_000_000, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    min_side: int = Field(32, ge=1)
    phash_max_distance: int = Field(10, ge=0, le=256)
    partitions: int = Field(8, ge=1)
    layout: Literal["flat", "dated"] = "flat"
    lookback_days: int = Field(1, ge=0, le=366)
    manifest_date_column: str = "ingest_date"

    @field_validator("phash_max_distance")
    @classmethod
    def _servable(cls, v: int) -> int:
        from vistarank.udfs.near_dup import plan_bands

        plan_bands(v)  # refuses a distance that cannot be searched exactly with bounded work
        return v


class _Versioned(_Section):
    """A section that names a model: ``<name>:<version>`` (a YAML number becomes a string)."""
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)

    name: str
    version: str = "1"

    @property
    def model_version(self) -> str:
        return f"{self.name}:{self.version}"


class ModelSpec(_Versioned):
    name: str = "scene-demo"
    version: str = "2"
    source: Literal["keras_file", "savedmodel", "application"] = "keras_file"
    path: Optional[str] = None
    architecture: Optional[str] = None
    weights: Optional[str] = None
    labels: Optional[str] = None
    input_size: int = Field(96, ge=8)
    preprocessing: Literal["unit", "symmetric", "caffe", "torch", "included"] = "included"
    embedding_layer: Optional[str] = None


class SceneModelConfig(_Section):
    images_per_class: int = Field(160, ge=4)
    holdout_per_class: int = Field(30, ge=1)
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=1)
    width: int = Field(32, ge=4)
    learning_rate: float = Field(3e-3, gt=0)
    seed: int = 7
    dir: Optional[str] = None


class LabelConfig(_Section):
    top_k: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)
    decode_threads: int = Field(2, ge=1)
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    full_probabilities: bool = False
    chunk_images: int = Field(20000, ge=1)
    min_partitions: int = Field(0, ge=0)
    broadcast_max_ids: int = Field(2_000_000, ge=0)
    arrow_max_bytes: int = Field(64 * 1024 * 1024, ge=1 << 20, lt=1 << 31)
    quality_size: int = Field(256, ge=0)


class ThemesConfig(_Section):
    n_themes: int = Field(30, ge=1)
    input: Literal["topk", "full"] = "topk"
    alpha_w: float = Field(0.0, ge=0)
    alpha_h: float = Field(0.0, ge=0)
    l1_ratio: float = Field(1.0, ge=0, le=1)
    max_iter: int = Field(100, ge=1)
    tol: float = Field(1e-4, gt=0)
    seed: int = 0
    init_sample_rows: int = Field(20000, ge=10)
    warm_start: bool = True
    name_tags: int = Field(3, ge=1)
    top_tags: int = Field(10, ge=1)
    user_half_life_days: float = Field(14.0, gt=0)
    purchase_weight: float = Field(5.0, ge=0)
    tag_min_probability: float = Field(0.1, ge=0, le=1)
    gallery_images: int = Field(16, ge=1)
    overview_images: int = Field(8, ge=1)


class RecsysConfig(_Section):
    neighbors_k: int = Field(50, ge=1)
    active_days: int = Field(14, ge=1)
    half_life_days: float = Field(14.0, gt=0)
    purchase_weight: float = Field(5.0, ge=0)
    shrinkage: float = Field(10.0, ge=0)
    popularity_days: int = Field(7, ge=1)
    price_sigma: float = Field(0.5, gt=0)
    max_feature_sales: int = Field(0, ge=0)
    similarity: Literal["exact", "approximate"] = "exact"
    query_block_rows: int = Field(4096, ge=1)
    candidate_block_rows: int = Field(200_000, ge=1)
    lsh_bucket_length: float = Field(0.5, gt=0)
    lsh_num_hash_tables: int = Field(6, ge=1)
    lsh_max_distance: float = Field(1.0, gt=0)
    history_days: int = Field(56, ge=1)
    candidates_sample: float = Field(0.02, ge=0, le=1)
    candidates_retention_days: int = Field(14, ge=0)
    als_rank: int = Field(32, ge=0)
    als_reg_param: float = Field(0.1, ge=0)
    als_alpha: float = Field(1.0, ge=0)
    als_max_iter: int = Field(10, ge=1)
    als_refit_days: int = Field(7, ge=1)
    als_half_life_days: float = Field(0.0, ge=0)
    theme_idf: bool = True
    image_score: Literal["choice", "fit", "cosine"] = "choice"
    taste_prior: float = Field(1.0, gt=0)
    taste_relevance: float = Field(0.1, ge=0, le=1)
    taste_users: int = Field(50_000, ge=0)


class RerankConfig(_Versioned):
    name: str = "reranker"
    negatives: int = Field(5, ge=1)
    seed: int = 0
    warmup_days: int = Field(14, ge=0)
    eval_days: int = Field(7, ge=1)
    validation_days: int = Field(7, ge=1)
    train_days: int = Field(28, ge=0)
    reg_params: list[float] = Field(default_factory=lambda: [0.0, 0.001, 0.01, 0.1])
    elastic_net_params: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0])
    max_iter: int = Field(1000, ge=1)
    tol: float = Field(1e-4, gt=0)
    top_n: int = Field(10, ge=1)
    exclude_bought: bool = True
    parallelism: int = Field(2, ge=1)
    review_users: int = Field(4, ge=1)
    als_ranks: list[int] = Field(default_factory=list)
    als_reg_params: list[float] = Field(default_factory=list)
    als_alphas: list[float] = Field(default_factory=lambda: [1.0, 10.0])


class FineTuneConfig(_Section):
    enabled: bool = True
    head_epochs: int = Field(6, ge=1)
    head_learning_rate: float = Field(0.003, gt=0)
    top_epochs: int = Field(10, ge=0)
    top_learning_rate: float = Field(0.0003, gt=0)
    unfreeze_from: Optional[str] = None
    batch_size: int = Field(16, ge=1)
    crop: float = Field(0.15, ge=0, lt=1)
    rotation: float = Field(0.03, ge=0, le=0.25)
    scratch: bool = True
    scratch_learning_rate: float = Field(0.001, gt=0)
    lr_schedule: Literal["cosine", "constant"] = "constant"
    eval_max_rows: int = Field(2000, ge=10)


class FlawsConfig(_Section):
    images: int = Field(0, ge=0)
    copies: int = Field(2, ge=1)
    epochs: int = Field(40, ge=1)


class TrainingConfig(_Versioned):
    name: str = "heads"
    backend: Literal["tf", "horovod"] = "tf"
    horovod_python: str = ".venv-hvd/bin/python"
    workers: int = Field(2, ge=1)
    labels_per_class: int = Field(40, ge=2)
    aesthetic_labels: int = Field(400, ge=10)
    label_noise: float = Field(0.15, ge=0, lt=1)
    folds: int = Field(5, ge=2)
    clean_confidence: float = Field(0.0, ge=0, le=1)
    clean_class_cap: float = Field(0.0, ge=0)
    clean_neighbours: int = Field(10, ge=0)
    clean_action: Literal["drop", "relabel", "other_or_drop"] = "other_or_drop"
    clean_spread: float = Field(0.9, ge=0, le=1)
    clean_outliers: float = Field(0.9, ge=0, le=1)
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(0.003, gt=0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.5, ge=0, lt=1)
    seed: int = 0
    timeout_s: int = Field(900, ge=10)
    eval_max_rows: int = Field(20000, ge=10)
    gallery_diverse: int = Field(3, ge=0)
    aesthetics_quality: bool = True
    aesthetics_cap_folds: int = Field(0, ge=0)
    flaws: FlawsConfig = Field(default_factory=FlawsConfig)
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig)

    @field_validator("aesthetics_cap_folds")
    @classmethod
    def _folds_or_none(cls, v: int) -> int:
        if v == 1:  # one fold leaves no labels to train on
            raise ValueError("0 (no cap) or at least 2 folds")
        return v


class Config(_Section):
    env: str = "local"
    run_date: Optional[dt.date] = None
    lakehouse: LakehouseConfig = Field(default_factory=LakehouseConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    world: WorldConfig = Field(default_factory=WorldConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    model: ModelSpec = Field(default_factory=ModelSpec)
    scene_model: SceneModelConfig = Field(default_factory=SceneModelConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    themes: ThemesConfig = Field(default_factory=ThemesConfig)
    recsys: RecsysConfig = Field(default_factory=RecsysConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @field_validator("run_date", mode="before")
    @classmethod
    def _parse_date(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("", "none", "null", "latest"):
            return None
        if isinstance(v, str) and v.strip().lower() == "today":
            # a scheduled run's date is the day it runs (UTC), fixed once when the config loads
            return dt.datetime.now(dt.timezone.utc).date()
        return v

    def effective_run_date(self) -> dt.date:
        """The run date: the configured one (``today`` is resolved at load), else the demo
        world's last day (``null``/``latest``: the demo only)."""
        return self.run_date or self.world.end_date

    def models_dir(self) -> str:
        """Where versioned models live: scene_model.dir, else <lakehouse.root>/models."""
        return self.scene_model.dir or join(self.lakehouse.root, "models")

    def versioned_dir(self, section: "_Versioned") -> str:
        """Where a versioned model is saved: <models_dir>/<name>/<version>."""
        return join(self.models_dir(), section.name, section.version)

    def reports_dir(self) -> str:
        """Where pictures and run reports are written: <lakehouse.root>/reports."""
        return join(self.lakehouse.root, "reports")

    def images_root(self) -> str:
        """Where raw image files live (ingest.source, else the demo world's folder)."""
        return self.ingest.source or join(self.lakehouse.root, "raw", "images")


def join(root: str, *parts: str) -> str:
    """Join path parts under a local path or a URI without mangling the scheme."""
    return "/".join([root.rstrip("/")] + [p.strip("/") for p in parts])


def is_uri(path: str) -> bool:
    return path.startswith(URI_SCHEMES)


# --------------------------------------------------------------------------- loading

def conf_dir_default():
    """The conf/ folder shipped inside the package (a Traversable: works from a zipped wheel too)."""
    return resources.files("vistarank.conf")


def _read_yaml(path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``a.b=c`` to ``{"a": {"b": c}}``; the value is parsed as YAML (ints, bools, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example world.size=tiny")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value
    return node


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        full = f"{prefix}{name}"
        keys.append(full)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_valid_keys(ann, full + "."))
    return keys


def _explain(exc: ValidationError) -> str:
    valid = _valid_keys(Config)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, valid, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            lines.append(f"config key '{loc}' is unknown{hint}")
        elif err["type"] == "missing":
            lines.append(f"config key '{loc}' is required but missing")
        else:
            lines.append(f"config key '{loc}': {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _check_paths(cfg: Config) -> None:
    """Local paths that must exist do; URIs are checked by the job that reads them."""
    checks = {
        "ingest.source": cfg.ingest.source,
        "ingest.manifest": cfg.ingest.manifest,
        "model.weights": cfg.model.weights,
        "model.labels": cfg.model.labels if cfg.model.path or cfg.model.weights else None,
    }
    if cfg.model.path:  # None means the demo scene model that pretrain_scene_model makes
        checks["model.path"] = cfg.model.path
    for key, value in checks.items():
        if value and not is_uri(value) and not os.path.exists(value):
            raise ConfigError(f"config key '{key}': path {value!r} does not exist")
    if cfg.model.source == "application" and not cfg.model.architecture:
        raise ConfigError("config key 'model.architecture' is required when model.source=application")
    if cfg.world.image_min_side > cfg.world.image_max_side:
        raise ConfigError("config key 'world.image_min_side' must not exceed world.image_max_side")
    for name, size in cfg.world.sizes.items():
        if size.images_per_sale_min > size.images_per_sale_max:
            raise ConfigError(f"config key 'world.sizes.{name}.images_per_sale_min' must not exceed "
                              "images_per_sale_max")


def load_config(env: str = "local", overrides: Optional[list[str]] = None,
                conf_dir: Optional[str | Path] = None) -> Config:
    """Load base.yaml, the ``env`` overlay and ``--set`` overrides into a validated Config."""
    cdir = Path(conf_dir) if conf_dir else conf_dir_default()
    base_path = cdir / "base.yaml"
    if not base_path.is_file():
        raise ConfigError(f"no base.yaml in {cdir}")
    data = _read_yaml(base_path)
    overlay = cdir / f"{env}.yaml"
    if env != "base":
        if not overlay.is_file():
            envs = sorted(p.name[:-5] for p in cdir.iterdir() if p.name.endswith(".yaml") and p.name != "base.yaml")
            raise ConfigError(f"--env {env!r}: no {overlay.name} in {cdir} (have: {envs})")
        data = _merge(data, _read_yaml(overlay))
    data["env"] = env
    for text in overrides or []:
        data = _merge(data, parse_override(text))
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    cfg.world.dims()
    _check_paths(cfg)
    return cfg
