"""One model per Python worker, kept across batches and tasks.

Spark reuses Python workers between tasks (``spark.python.worker.reuse=true``, the
default), so a module-level cache keyed by the resolved model spec loads each model
once per worker process. On executors, give that process enough memory outside the
JVM heap: ``spark.executor.memoryOverhead`` (or ``spark.executor.pyspark.memory``) of
at least the model's size plus a few batches (docs/operations.md).

The backend's threads follow the task's CPUs (``spark.task.cpus``); on a GPU executor,
the task's GPU comes from ``TaskContext.resources()["gpu"]`` (as ``CUDA_VISIBLE_DEVICES``,
set before the backend starts) and the backend takes GPU memory as it needs it, so several
tasks (``spark.task.resource.gpu.amount`` below 1) can share a GPU. Keras's backend is
TensorFlow unless ``KERAS_BACKEND`` names ``jax`` or ``torch``: the same model files run
on all three (docs/operations.md, "GPU executors (label_images)").
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_SCORERS: dict[str, object] = {}
_CONFIGURED = False


def configure_backend() -> None:
    """Once per Python worker, before the backend starts: its GPU and threads from the task."""
    global _CONFIGURED
    if _CONFIGURED:
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
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: no 75% grab per process
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
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
    elif backend == "torch":
        import torch

        torch.set_num_threads(cpus)
    log.info("keras backend %s, %d cpus, gpus %s in worker pid %d", backend, cpus, gpus or "none", os.getpid())
    _CONFIGURED = True


def accelerators() -> list[str]:
    """The GPUs that this process's Keras backend sees (call configure_backend first)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices("GPU")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    return []


def get_scorer(model_json: str, precision: str = "float32"):
    """The :class:`~vistarank.vision.models.Scorer` for a resolved spec (JSON), loaded once."""
    with _LOCK:
        scorer = _SCORERS.get(model_json + precision)
        if scorer is None:
            configure_backend()
            from vistarank.vision.models import ResolvedModel, Scorer

            scorer = Scorer(ResolvedModel.from_json(model_json), precision)
            _SCORERS[model_json + precision] = scorer
            log.info("loaded model %s in worker pid %d", scorer.rm.model_version, os.getpid())
        return scorer
