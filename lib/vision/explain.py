"""Class-activation heatmaps (Grad-CAM, Selvaraju et al. 2017) over an image for a chosen label.

The heatmap is the ReLU of the last convolutional block's channels weighted by the mean
gradient of the label's score with respect to each channel, scaled to [0, 1] and
resized to the image. It shows where the model looked to say "pool" or "beach".
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from vistarank.vision.models import ResolvedModel, _last_4d_layer, load_keras, parse_labels, preprocess


def gradcam(model, x: np.ndarray, class_index: int, layer_name: Optional[str] = None) -> np.ndarray:
    """Heatmap (H', W') in [0, 1] for one preprocessed input ``x`` of shape (1, S, S, 3)."""
    import keras
    import tensorflow as tf

    layer = model.get_layer(layer_name) if layer_name else _last_4d_layer(model)
    if layer is None:
        raise ValueError("the model has no 4-D (convolutional) layer to explain")
    grad_model = keras.Model(model.inputs, [layer.output, model.outputs[0]])
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        conv, preds = grad_model(x, training=False)
        score = preds[:, class_index]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # (1, C)
    cam = tf.nn.relu(tf.reduce_sum(conv * weights[:, None, None, :], axis=-1))[0].numpy()
    top = cam.max()
    return cam / top if top > 0 else cam


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The image with the heatmap drawn over it (jet colours)."""
    from matplotlib import colormaps

    heat = Image.fromarray((heatmap * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    coloured = (colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    return Image.blend(image.convert("RGB"), Image.fromarray(coloured), alpha)


def explain_file(rm: ResolvedModel, image_bytes: bytes, label: Optional[str], out_png: str) -> tuple[str, float]:
    """Write the Grad-CAM overlay for ``label`` (default: the top label); returns (label, probability)."""
    from vistarank.udfs.images import decode_rgb, to_model_input

    if rm.source == "savedmodel":
        raise ValueError("Grad-CAM needs a Keras model (model.source keras_file or application)")
    with open(rm.labels_path) as fh:
        labels = parse_labels(fh.read())
    model = load_keras(rm, len(labels))
    img = decode_rgb(image_bytes, max_pixels=1 << 31).image
    x = preprocess(to_model_input(img, rm.input_size)[None], rm.preprocessing)
    probs = np.asarray(model(x, training=False))[0]
    if label is None:
        idx = int(np.argmax(probs))
    elif label in labels:
        idx = labels.index(label)
    else:
        raise ValueError(f"label {label!r} is not one of the model's labels (e.g. {labels[:5]})")
    heat = gradcam(model, x, idx, rm.embedding_layer)
    overlay(img, heat).save(out_png)
    return labels[idx], float(probs[idx])
