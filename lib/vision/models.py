"""Models are configuration: a :class:`~vistarank.config.ModelSpec` names the file, the
labels, the input size, the preprocessing and the embedding layer.

Supported sources (never downloaded; every file is named by the config):
- ``keras_file``: a ``.keras`` or ``.h5`` file, loaded with ``safe_mode=True`` (a model
  file cannot run arbitrary code; Lambda layers with Python code are refused);
- ``savedmodel``: a TensorFlow SavedModel directory (its serving signature);
- ``application``: a ``keras.applications`` architecture (VGG16, MobileNetV2,
  EfficientNetB0, ...) built with as many classes as the labels file has lines, then
  loaded from a weights file (e.g. Places365 VGG16 or ImageNet weights saved to disk).

Labels files: one label per line, or the Places365 ``categories_places365.txt`` form
``/a/abbey 0`` (the leading letter folder is dropped: ``abbey``; ``/b/bamboo_forest 12``
gives ``bamboo_forest``; ``/s/ski_slope 300`` gives ``ski_slope``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from vistarank.config import Config, ModelSpec, join

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_PLACES = re.compile(r"^/[a-z]/(\S+)\s+\d+\s*$")


def parse_labels(text: str) -> list[str]:
    """Labels from a labels file (plain lines, or Places365 ``/a/abbey 0`` lines)."""
    labels = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _PLACES.match(line)
        labels.append(m.group(1) if m else line)
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"labels file has duplicate labels: {dup[:5]}")
    return labels


def preprocess(batch: np.ndarray, mode: str) -> np.ndarray:
    """From float RGB 0..255 (N, H, W, 3) to what the model expects."""
    if mode == "included":
        return batch
    if mode == "unit":
        return batch / 255.0
    if mode == "symmetric":
        return batch / 127.5 - 1.0
    if mode == "caffe":
        return batch[..., ::-1] - CAFFE_MEAN_BGR
    if mode == "torch":
        return (batch / 255.0 - TORCH_MEAN) / TORCH_STD
    raise ValueError(f"unknown preprocessing {mode!r}")


@dataclass(frozen=True)
class ResolvedModel:
    """A spec with its paths resolved: plain strings and numbers only, safe to ship to workers."""
    model_version: str
    source: str
    path: str
    labels_path: str
    architecture: Optional[str]
    input_size: int
    preprocessing: str
    embedding_layer: Optional[str]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "ResolvedModel":
        return ResolvedModel(**json.loads(text))


def demo_model_dir(cfg: Config, spec: Optional[ModelSpec] = None) -> str:
    return cfg.versioned_dir(spec or cfg.model)


def resolve(cfg: Config, spec: Optional[ModelSpec] = None) -> ResolvedModel:
    """Resolve the configured model's paths (None path = the demo scene model)."""
    spec = spec or cfg.model
    if spec.source == "application":
        path = spec.weights or ""
    else:
        path = spec.path or join(demo_model_dir(cfg, spec), "model.keras")
    labels = spec.labels or join(os.path.dirname(path.rstrip("/")) if spec.source != "savedmodel" else path,
                                 "labels.txt")
    return ResolvedModel(spec.model_version, spec.source, path, labels, spec.architecture, spec.input_size,
                         spec.preprocessing, spec.embedding_layer)


def model_available(rm: ResolvedModel) -> bool:
    return os.path.exists(rm.path) and os.path.exists(rm.labels_path)


def _last_4d_layer(model: Any):
    for layer in reversed(model.layers):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            return layer
    return None


def features_output(model: Any, embedding_layer: Optional[str]):
    """The embedding tensor of a Keras model: the named layer's output, else the last 4-D
    layer's (else the layer before the output), globally average pooled when 4-D. Scoring
    and fine-tuning take the same one."""
    import keras

    if embedding_layer:
        feat = model.get_layer(embedding_layer).output
    else:
        layer = _last_4d_layer(model)
        feat = layer.output if layer is not None else model.layers[-2].output
    if len(feat.shape) == 4:
        feat = keras.layers.GlobalAveragePooling2D(name="vistarank_embedding")(feat)
    return feat


def load_keras(rm: ResolvedModel, n_labels: int):
    """The Keras model of a spec (keras_file or application), not yet wrapped."""
    import keras

    if rm.source == "keras_file":
        return keras.models.load_model(rm.path, compile=False, safe_mode=True)
    if rm.source == "application":
        arch = getattr(keras.applications, rm.architecture or "", None)
        if arch is None:
            raise ValueError(f"model.architecture {rm.architecture!r} is not in keras.applications")
        model = arch(weights=None, include_top=True, classes=n_labels,
                     input_shape=(rm.input_size, rm.input_size, 3))
        if rm.path:
            model.load_weights(rm.path)
        return model
    raise ValueError(f"load_keras does not handle source {rm.source!r}")


def with_precision(model: Any, precision: str):
    """``model`` computing under a Keras dtype policy (``mixed_bfloat16``: 16-bit activations
    and matrix products, float32 weights); float32 returns it unchanged. A loaded model keeps
    the policy it was saved with, so each layer is rebuilt from its config under the new one."""
    if precision == "float32":
        return model
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": precision})

    out = keras.models.clone_model(model, clone_function=clone)
    out.set_weights(model.get_weights())
    return out


def _tensorflow_for(what: str):
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise RuntimeError(f"{what} needs TensorFlow, which is not installed here; Keras model files "
                           "also run on Keras's JAX or PyTorch backend (KERAS_BACKEND)") from exc
    return tf


class Scorer:
    """A loaded model that maps a float RGB batch (N, S, S, 3; 0..255) to
    (probabilities (N, C), embeddings (N, D))."""

    def __init__(self, rm: ResolvedModel, precision: str = "float32") -> None:
        with open(rm.labels_path) as fh:
            self.labels = parse_labels(fh.read())
        self.rm = rm
        if rm.source == "savedmodel":
            tf = _tensorflow_for("a SavedModel (model.source: savedmodel)")
            loaded = tf.saved_model.load(rm.path)
            fn = loaded.signatures["serving_default"]
            out_keys = sorted(fn.structured_outputs)
            emb_key = rm.embedding_layer if rm.embedding_layer in out_keys else None
            prob_key = next(k for k in out_keys if k != emb_key)
            in_key = sorted(fn.structured_input_signature[1])[0]

            def call(x):
                out = fn(**{in_key: x})
                emb = out[emb_key] if emb_key else tf.zeros((tf.shape(x)[0], 0))
                return out[prob_key], emb
            self._call = call
        else:
            import keras

            model = with_precision(load_keras(rm, len(self.labels)), precision)
            self.model = keras.Model(model.inputs, [model.outputs[0], features_output(model, rm.embedding_layer)])
            backend = keras.backend.backend()
            if backend == "tensorflow":
                import tensorflow as tf

                self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
            elif backend == "torch":
                import torch

                def call(x):
                    # inference mode: no autograd bookkeeping; a direct call, not
                    # predict_on_batch, whose data adapter adds per-batch work
                    with torch.inference_mode():
                        out = self.model(x, training=False)
                    return [keras.ops.convert_to_numpy(o) for o in out]
                self._call = call
            else:
                # Keras 3 on JAX: Keras builds its own predict step, jit-compiled by XLA
                self._call = self.model.predict_on_batch
        n_out = int(self.predict(np.zeros((1, rm.input_size, rm.input_size, 3), np.float32))[0].shape[1])
        if n_out != len(self.labels):
            raise ValueError(f"model {rm.model_version} has {n_out} outputs but {rm.labels_path} "
                             f"has {len(self.labels)} labels")

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = preprocess(batch.astype(np.float32, copy=False), self.rm.preprocessing)
        probs, emb = self._call(x)
        return np.asarray(probs, dtype=np.float32), np.asarray(emb, dtype=np.float32)
