"""The aesthetics head's self-supervised flaw detector and its score cap
(lib/training/flaws.py): small synthetic data, no Spark."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


def _photo(seed: int, w: int = 96, h: int = 64) -> bytes:
    """A textured JPEG: a gradient sky over noise-free stripes (sharp edges for blur to remove)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([80 + 100 * y / h, 120 + 60 * np.sin(x / (3 + seed % 4)), 150 + 50 * ((x // 8) % 2)], -1)
    img = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_each_distortion_moves_the_statistics_it_should():
    from vistarank.udfs.quality import DISTORTIONS, QUALITY_FEATURES, distort, pixel_stats

    img = Image.open(io.BytesIO(_photo(1))).convert("RGB")
    base = dict(zip(QUALITY_FEATURES, pixel_stats(np.asarray(img))))
    rng = np.random.default_rng(0)
    after = {f: dict(zip(QUALITY_FEATURES, pixel_stats(np.asarray(distort(img, f, 0.8, rng))))) for f in DISTORTIONS}
    assert after["blur"]["laplacian_var"] < 0.5 * base["laplacian_var"]
    assert after["noise"]["noise_sigma"] > 2 * base["noise_sigma"]
    assert after["dark"]["luma_mean"] < 0.6 * base["luma_mean"]
    assert after["bright"]["luma_mean"] > 1.3 * base["luma_mean"]
    assert after["contrast"]["luma_std"] < 0.6 * base["luma_std"]
    assert after["rotate"]["clipped_dark"] > base["clipped_dark"] + 0.01  # the black corners a rotation leaves
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(img, "sepia", 0.5, rng)


def test_flaw_examples_are_the_photo_and_its_seeded_copies():
    from vistarank.udfs.quality import N_QUALITY, flaw_examples, quality_of_bytes

    data = _photo(2)
    rows = flaw_examples(data, 256, 3, np.random.default_rng(5))
    assert [c for c, _ in rows][0] == 0 and all(1 <= c <= 6 for c, _ in rows[1:]) and len(rows) == 4
    np.testing.assert_array_equal(rows[0][1], quality_of_bytes(data, 256))  # as ingest measures it
    assert all(v.shape == (N_QUALITY,) and np.isfinite(v).all() for _, v in rows)
    again = flaw_examples(data, 256, 3, np.random.default_rng(5))
    for (c1, v1), (c2, v2) in zip(rows, again):
        assert c1 == c2 and np.array_equal(v1, v2)
    assert not np.allclose(rows[1][1], rows[0][1])


def test_a_photo_that_does_not_decode_is_skipped_and_the_others_kept():
    import pandas as pd

    from vistarank.training.flaws import examples_fn

    batch = pd.DataFrame({"image_id": ["bad", "good"], "content": [b"not an image", _photo(3)]})
    out = pd.concat(list(examples_fn(256, 2, 0, 1 << 31)(iter([batch]))))
    assert list(out["cls"])[0] == 0 and len(out) == 3  # the good photo and its two copies
    again = pd.concat(list(examples_fn(256, 2, 0, 1 << 31)(iter([batch.iloc[::-1]]))))
    assert list(again["cls"]) == list(out["cls"])  # seeded by the image id, not by the order


def test_the_detector_learns_the_families_and_rides_inside_the_head(tmp_path):
    import keras

    from vistarank.training import flaws as FL
    from vistarank.udfs.quality import N_QUALITY, flaw_examples

    rng = np.random.default_rng(0)
    rows = [r for s in range(60) for r in flaw_examples(_photo(s), 256, 3, rng)]
    x, y = np.stack([v for _, v in rows]), np.array([c for c, _ in rows])
    det, rep = FL.train_detector(x, y, epochs=60, seed=0)
    assert rep["examples"] == 240 and rep["loss_last"] < rep["loss_first"]
    assert rep["train_accuracy"] > 0.6  # chance: 0.25 (always "as taken") or 1/7
    logp = FL.detector_features(det, x)
    assert logp.shape == (240, 7) and np.allclose(np.exp(logp).sum(1), 1, atol=1e-4)

    # a head trained on [embedding, standardised statistics, log probabilities], saved as one
    # model that reads [embedding, raw statistics]: the same outputs
    emb = rng.normal(size=(240, 5)).astype(np.float32)
    mean, scale = x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-6).astype(np.float32)
    feats = np.concatenate([emb, (x - mean) / scale, logp], 1)
    inp = keras.Input((feats.shape[1],))
    head = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(inp))
    path = str(tmp_path / "aes.keras")
    head.save(path)
    FL.with_inputs(path, 5, mean, scale, det)
    whole = keras.models.load_model(path, compile=False, safe_mode=True)
    assert whole.input_shape == (None, 5 + N_QUALITY)
    np.testing.assert_allclose(whole.predict(np.concatenate([emb, x], 1), verbose=0),
                               head.predict(feats, verbose=0), atol=1e-5)


def test_the_cap_ties_what_the_head_cannot_order():
    from vistarank.training.flaws import choose_cap
    from vistarank.udfs.heads import capped

    rng = np.random.default_rng(1)
    n = 600
    flawed = rng.random(n) < 0.35
    true = np.where(flawed, rng.uniform(2, 6, n), rng.uniform(7, 9.5, n))
    # the head: orders the flawed photos, and the flawless ones at random (its noise)
    oof = np.where(flawed, true + rng.normal(0, 0.5, n), 8 + rng.normal(0, 0.2, n))
    q = choose_cap(oof, true)
    assert 0.25 <= q <= 0.5  # the share below the cap: about the flawed 35%; the flawless two thirds tie
    from scipy.stats import spearmanr

    assert spearmanr(capped(oof, np.quantile(oof, q)), true).statistic > spearmanr(oof, true).statistic + 0.05
    # a head that orders every photo: no cap
    assert choose_cap(true + rng.normal(0, 0.1, n), true) == 1.0
    np.testing.assert_array_equal(capped(oof, None), oof.astype(np.float32))


def test_apply_heads_caps_the_score_and_keeps_the_distribution():
    import keras

    from vistarank.udfs.heads import apply_heads

    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    area = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    aes = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax")])
    free = apply_heads(area, aes, x, ["a", "b", "c"])
    cut = float(np.median(free["score"]))
    capped = apply_heads(area, aes, x, ["a", "b", "c"], score_cap=cut)
    np.testing.assert_allclose(capped["score"], np.minimum(free["score"], cut), rtol=1e-6)
    assert (capped["score"] == np.float32(cut)).sum() >= 25
    np.testing.assert_array_equal(np.stack(capped["distribution"]), np.stack(free["distribution"]))


def test_the_gallery_breaks_capped_ties_by_the_uncapped_mean(spark):
    import pandas as pd
    from pyspark.sql import functions as F

    from vistarank.training.workflow import _mean
    from vistarank.udfs.heads import gallery_order

    pdf = pd.DataFrame({"sale_id": ["s"] * 4, "image_id": ["a", "b", "c", "d"], "area": ["pool"] * 4,
                        "score": np.float32([7.0, 7.0, 7.0, 5.0]), "mean": [7.2, 8.1, 7.6, 5.0]})
    assert list(gallery_order(pdf, 0)["image_id"]) == ["b", "c", "a", "d"]
    assert list(gallery_order(pdf.drop(columns="mean"), 0)["image_id"]) == ["a", "b", "c", "d"]
    dist = [0.0] * 10
    dist[6], dist[8] = 0.5, 0.5  # half on 7, half on 9
    row = spark.createDataFrame([(dist,)], "distribution array<float>").select(_mean(F.col("distribution"))).first()
    assert row["mean"] == pytest.approx(8.0)

