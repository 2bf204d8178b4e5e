"""One model per Python worker, kept across batches and tasks.

Spark reuses Python workers between tasks (``spark.python.worker.reuse=true``, the
default), so a module-level cache keyed by the resolved model spec loads each model
once per worker process. On executors, give that process enough memory outside the
JVM heap: ``spark.executor.memoryOverhead`` (or ``spark.executor.pyspark.memory``) of
at least the model's size plus a few batches (docs/operations.md).

TensorFlow's threads follow the task's CPUs (``spark.task.cpus``); on a GPU executor,
the task's GPU comes from ``TaskContext.resources()["gpu"]`` and memory growth is
turned on, so several tasks (if configured) can share a GPU.
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_SCORERS: dict[str, object] = {}
_TF_CONFIGURED = False


def _configure_tf() -> None:
    global _TF_CONFIGURED
    if _TF_CONFIGURED:
        return
    from pyspark import TaskContext

    ctx = TaskContext.get()
    cpus = os.cpu_count() or 1  # outside Spark (driver, benchmarks): every core
    gpus: list[str] = []
    if ctx is not None:
        cpus = max(1, int(ctx.cpus()))
        res = ctx.resources()
        if "gpu" in res:
            gpus = list(res["gpu"].addresses)
    if gpus and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cpus)))
    except RuntimeError:  # TF already initialised in this process: keep its settings
        pass
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    _TF_CONFIGURED = True


def get_scorer(model_json: str):
    """The :class:`~vistarank.vision.models.Scorer` for a resolved spec (JSON), loaded once."""
    with _LOCK:
        scorer = _SCORERS.get(model_json)
        if scorer is None:
            _configure_tf()
            from vistarank.vision.models import ResolvedModel, Scorer

            scorer = Scorer(ResolvedModel.from_json(model_json))
            _SCORERS[model_json] = scorer
            log.info("loaded model %s in worker pid %d", scorer.rm.model_version, os.getpid())
        return scorer
