"""The labelling worker's backend set-up (GPU from the task) and 16-bit precision, on the CPU.
The same path on a real GPU executor: tests/test_gpu.py (``-m gpu``)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np


class _FakeTask:
    def __init__(self, gpus):
        self._gpus = gpus

    def cpus(self):
        return os.cpu_count() or 1  # the suite's own TensorFlow threads stay as they are

    def resources(self):
        return {"gpu": SimpleNamespace(addresses=self._gpus)} if self._gpus else {}


def test_the_worker_takes_its_gpu_from_the_task_context(monkeypatch):
    import pyspark

    from vistarank.udfs import model_cache

    monkeypatch.setattr(model_cache, "_CONFIGURED", False)
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: _FakeTask(["3"])))
    before = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        model_cache.configure_backend()
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
        # once per worker: a second task's GPU does not move a started backend
        monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: _FakeTask(["5"])))
        model_cache.configure_backend()
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        if before is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def test_mixed_precision_rebuilds_the_layers_and_keeps_the_weights():
    from vistarank.vision.models import features_output, with_precision
    from vistarank.vision.scene_model import build_model

    model = build_model(6, 32, 8, seed=0)
    assert with_precision(model, "float32") is model
    half = with_precision(model, "mixed_bfloat16")
    assert {layer.dtype_policy.name for layer in half.layers if layer.weights} == {"mixed_bfloat16"}
    for a, b in zip(model.get_weights(), half.get_weights()):
        np.testing.assert_array_equal(a, b)  # weights stay float32, unchanged
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    full, low = np.asarray(model(x)), np.asarray(half(x)).astype(np.float32)
    assert low.shape == full.shape and not np.array_equal(low, full)  # it really computed in 16 bits
    np.testing.assert_allclose(low, full, atol=0.02)
    assert features_output(half, None) is not None
