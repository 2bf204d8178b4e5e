import numpy as np
import pytest
from PIL import Image

from vistarank.jobs import gradcam as gradcam_cli
from vistarank.vision.explain import gradcam


def test_gradcam_points_at_the_evidence():
    import keras

    inp = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(1, 1, activation="relu", kernel_initializer="ones", bias_initializer="zeros",
                               name="conv")(inp)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    out = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]),
                             bias_initializer="zeros")(pooled)
    model = keras.Model(inp, out)
    x = np.zeros((1, 16, 16, 3), np.float32)
    x[0, :8, :8] = 1.0  # evidence only in the top-left quadrant
    heat = gradcam(model, x, 0)
    assert heat.shape == (16, 16) and heat.max() == pytest.approx(1.0)
    assert heat[:8, :8].mean() > 0.9 and heat[8:, 8:].max() == 0.0
    assert gradcam(model, x, 1).max() == 0.0  # class 1 is argued against by the same pixels


def test_gradcam_cli_writes_a_png(tmp_path):
    from vistarank.udfs.render import encode_jpeg, render_scene
    from vistarank.vision.scene_model import build_model

    model = build_model(3, 32, 4, seed=0)
    model.save(tmp_path / "m.keras")
    (tmp_path / "labels.txt").write_text("beach\nforest\ntower\n")
    img = tmp_path / "x.jpg"
    img.write_bytes(encode_jpeg(render_scene("beach", np.random.default_rng(0), 120, 90)))
    out = tmp_path / "cam.png"
    common = ["--set", f"model.path={tmp_path / 'm.keras'}", "--set", f"model.labels={tmp_path / 'labels.txt'}",
              "--set", "model.input_size=32", "--image", str(img)]
    assert gradcam_cli.main(common + ["--label", "beach", "--out", str(out)]) == 0
    assert Image.open(out).size == (120, 90)
    assert gradcam_cli.main(common + ["--label", "volcano", "--out", str(out)]) == 2
