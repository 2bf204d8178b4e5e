"""Classic no-reference quality statistics of a photo, no network (numpy and scipy).

What a scene classifier is trained to ignore, and what degrades a photo: exposure
(luminance percentiles, clipped shares), sharpness (Laplacian energy at two scales and
their ratio), noise (Immerkaer's estimate), BRISQUE's natural-scene statistics (the
moments of the mean-subtracted contrast-normalised luminance and of its neighbour
products, at two scales), colourfulness (Hasler and Suesstrunk) and the orientation
histogram of the gradients (a tilted horizon moves its mass off 0 and 90 degrees).

They are a property of the image, not of a model: ingest computes them once per image
(:func:`quality_of_bytes`, into ``images.quality``) on the image as decoded for
``label.quality_size`` (a larger image is reduced by an integer factor while its shorter
side stays at least that many pixels: a JPEG in the decoder), and the labelling UDF copies
them into ``image_labels.quality`` for every model version (computing them only for an
image ingested without them); the aesthetics head reads them beside the embedding. They
depend on the resolution they are computed at, so one lakehouse keeps one
``label.quality_size``. Cost: about 12 ms per
360 x 240 photo on one core, growing with the pixels (a 12-megapixel JPEG at the default
256 is decoded at 500 x 375).
"""
from __future__ import annotations

import warnings

import numpy as np

_MSCN = ["mscn_var", "mscn_kurtosis", "mscn_skew", "pair_h_mean", "pair_h_var", "pair_v_mean", "pair_v_var"]
_SHARP = ["laplacian_var", "laplacian_abs_mean", "noise_sigma"]
QUALITY_FEATURES = (
    ["luma_mean", "luma_std", "clipped_dark", "clipped_bright"]
    + [f"luma_p{p}" for p in (1, 5, 25, 50, 75, 95, 99)]
    + _SHARP + [f"{n}_half" for n in _SHARP] + ["sharpness_ratio"]
    + _MSCN + [f"{n}_half" for n in _MSCN]
    + ["colourfulness"] + [f"orientation_{15 * i}" for i in range(12)])
N_QUALITY = len(QUALITY_FEATURES)  # 45
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _mscn(g: np.ndarray) -> list[float]:
    from scipy import ndimage
    from scipy.stats import kurtosis, skew

    mu = ndimage.gaussian_filter(g, 7 / 6)
    sd = np.sqrt(np.abs(ndimage.gaussian_filter(g * g, 7 / 6) - mu * mu))
    m = (g - mu) / (sd + 1 / 255)
    h, v = m[:, 1:] * m[:, :-1], m[1:, :] * m[:-1, :]
    return [m.var(), kurtosis(m, axis=None), skew(m, axis=None), h.mean(), h.var(), v.mean(), v.var()]


def _sharp_noise(g: np.ndarray) -> list[float]:
    from scipy import ndimage

    lap = ndimage.laplace(g)
    sigma = np.sqrt(np.pi / 2) * np.abs(ndimage.convolve(g, _IMMERKAER))[1:-1, 1:-1].mean() / 6
    return [lap.var(), np.abs(lap).mean(), sigma]


def quality_of_bytes(data: bytes, quality_size: int, max_pixels: int = 1 << 31) -> np.ndarray:
    """:func:`pixel_stats` of an encoded image as decoded for ``quality_size``: the one
    decode both ingest and the labelling UDF use, so their statistics are identical."""
    from vistarank.udfs.images import decode_rgb

    return pixel_stats(np.asarray(decode_rgb(bytes(data), max_pixels=max_pixels, draft_size=quality_size).image))


def pixel_stats(rgb: np.ndarray) -> np.ndarray:
    """The :data:`QUALITY_FEATURES` of one RGB image (height x width x 3, uint8 0..255),
    float32, no NaN or infinity (a flat or tiny image has zero moments, not undefined ones)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _pixel_stats(rgb)


def _pixel_stats(rgb: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    rgb = np.asarray(rgb, dtype=np.float32) / 255.0
    g = rgb @ _LUMA
    half = ndimage.zoom(ndimage.gaussian_filter(g, 1.0), 0.5, order=1)
    s_full, s_half = _sharp_noise(g), _sharp_noise(half)
    rg, yb = rgb[..., 0] - rgb[..., 1], 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    gy, gx = ndimage.sobel(g, 0), ndimage.sobel(g, 1)
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
    hist = np.histogram(ang, bins=12, range=(0, np.pi), weights=mag)[0]
    row = np.concatenate([
        [g.mean(), g.std(), (g < 0.02).mean(), (g > 0.98).mean()], np.percentile(g, [1, 5, 25, 50, 75, 95, 99]),
        s_full, s_half, [s_full[0] / (s_half[0] + 1e-9)], _mscn(g), _mscn(half),
        [np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())],
        hist / (hist.sum() + 1e-9)])
    return np.nan_to_num(row.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


# --------------------------------------------------------------------------- synthetic flaws
# The generic distortion families of no-reference quality research (KADID-10k, RankIQA): a
# self-supervised flaw detector learns what each does to the statistics above from copies
# of unlabelled catalogue photos (lib/training/flaws.py), where labels of real flaws are few.
DISTORTIONS = ("blur", "noise", "dark", "bright", "contrast", "rotate")


def distort(img, family: str, severity: float, rng: np.random.Generator):
    """``img`` (a PIL RGB image) with one distortion of ``family`` at ``severity`` in [0, 1]."""
    from PIL import Image, ImageEnhance, ImageFilter

    s = float(severity)
    if family == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=0.5 + 3.5 * s))
    if family == "noise":
        a = np.asarray(img, np.float32) + rng.normal(0, 5 + 35 * s, (img.height, img.width, 3))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if family == "dark":
        return ImageEnhance.Brightness(img).enhance(1 - 0.7 * s)
    if family == "bright":
        return ImageEnhance.Brightness(img).enhance(1 + 1.0 * s)
    if family == "contrast":
        return ImageEnhance.Contrast(img).enhance(1 - 0.7 * s)
    if family == "rotate":
        return img.rotate(float(rng.choice([-1, 1]) * (2 + 13 * s)), resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    raise ValueError(f"unknown distortion {family!r}; one of {DISTORTIONS}")


def flaw_examples(data: bytes, quality_size: int, copies: int, rng: np.random.Generator,
                  max_pixels: int = 1 << 31) -> list[tuple[int, np.ndarray]]:
    """(class, statistics) of a photo as it is (class 0) and of ``copies`` distorted copies
    (class 1 + the index in :data:`DISTORTIONS`; family and severity in [0.1, 1] drawn from
    ``rng``), each copy JPEG-encoded (quality 88) and decoded again as a catalogue photo
    would be, at the decode :func:`quality_of_bytes` uses."""
    import io

    from PIL import Image

    from vistarank.udfs.images import decode_rgb

    img = decode_rgb(bytes(data), max_pixels=max_pixels, draft_size=quality_size).image.convert("RGB")
    out = [(0, pixel_stats(np.asarray(img)))]
    for _ in range(copies):
        f = int(rng.integers(len(DISTORTIONS)))
        buf = io.BytesIO()
        distort(img, DISTORTIONS[f], float(rng.uniform(0.1, 1.0)), rng).save(buf, format="JPEG", quality=88)
        buf.seek(0)
        out.append((f + 1, pixel_stats(np.asarray(Image.open(buf).convert("RGB")))))
    return out
