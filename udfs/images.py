"""Image reading, checking and decoding inside Python workers.

One decode path serves ingest (checks, hashes) and scoring (model input):
:func:`decode_rgb` opens bytes with Pillow under a decompression-bomb guard, takes
the first frame of animations, applies the EXIF orientation and normalises every
mode (CMYK, palette, alpha, 16-bit, greyscale) to 8-bit RGB, composing transparency
on white. JPEGs are decoded with Pillow's draft mode when a smaller size is wanted,
which lets libjpeg downscale by 2/4/8 while decoding.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey image


class ImageRejected(Exception):
    """A file that is not a usable image; ``reason`` is a short code, ``str()`` the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# --------------------------------------------------------------------------- reading bytes
def local_path(uri: str) -> Optional[str]:
    """The local (or FUSE) path of a URI, or None when it needs a remote filesystem."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if uri.startswith("file:"):
        return uri[len("file:"):]
    if uri.startswith("dbfs:/"):
        return "/dbfs/" + uri[len("dbfs:/"):].lstrip("/")
    if "://" not in uri:
        return uri
    return None


def read_bytes(uri: str, max_bytes: int) -> bytes:
    """Read a file's bytes: local and FUSE paths directly, object stores through pyarrow.fs
    (s3a:// and s3n:// read as s3://; gs://, hdfs://, abfs[s]:// as pyarrow supports them)."""
    path = local_path(uri)
    if path is not None:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise ImageRejected("too_large", f"{size} bytes > ingest.max_bytes={max_bytes}")
        with open(path, "rb") as fh:
            return fh.read()
    from pyarrow import fs as pafs

    norm = uri.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    filesystem, inner = pafs.FileSystem.from_uri(norm)
    size = filesystem.get_file_info(inner).size
    if size is not None and size > max_bytes:
        raise ImageRejected("too_large", f"{size} bytes > ingest.max_bytes={max_bytes}")
    with filesystem.open_input_stream(inner) as fh:
        return fh.read()


# --------------------------------------------------------------------------- decoding
def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


@dataclass
class Decoded:
    image: Image.Image  # RGB, oriented
    format: str
    source_mode: str
    width: int  # after orientation
    height: int
    frames: int


# Pillow modes whose reduce() works without a conversion first
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"})


def _reduced(img: Image.Image, size: int) -> Image.Image:
    """Downscale by the largest integer factor that keeps the shorter side at least ``size``
    (box filter: what JPEG's draft mode does for JPEGs, for every other format)."""
    factor = min(img.size) // size
    return img.reduce(factor) if factor >= 2 else img


def decode_rgb(data: bytes, *, max_pixels: int, formats: Optional[list[str]] = None,
               min_side: int = 1, draft_size: Optional[int] = None) -> Decoded:
    """Decode ``data`` to an oriented RGB image or raise :class:`ImageRejected`.

    ``draft_size``: when set, the image is downscaled by an integer factor while its shorter
    side stays at least this many pixels (model input): a JPEG in the decoder (draft mode),
    any other format right after decoding, so a large PNG holds one full-size decode only
    until its reduction (width x height x bytes per pixel, per decoding thread).
    """
    if not data:
        raise ImageRejected("empty", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if formats and fmt not in formats:
                raise ImageRejected("unsupported_format", f"{fmt} not in ingest.formats")
            w, h = img.size
            if w * h > max_pixels:
                raise ImageRejected("decompression_bomb", f"declared {w}x{h} > ingest.max_pixels={max_pixels}")
            frames = int(getattr(img, "n_frames", 1) or 1)
            source_mode = img.mode
            if draft_size and fmt == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            if draft_size and fmt != "JPEG" and img.mode in _REDUCIBLE:
                img = _reduced(img, draft_size)  # before any copy: the full-size decode is the peak
            img = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(img)
            if draft_size and fmt != "JPEG":
                rgb = _reduced(rgb, draft_size)  # modes reduce() does not take (palette, 16-bit)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from None
    except Image.DecompressionBombWarning as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from None
    except Image.UnidentifiedImageError as exc:
        raise ImageRejected("not_an_image", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from None
    if min(rgb.size) < min_side:
        raise ImageRejected("too_small", f"{rgb.size[0]}x{rgb.size[1]} < ingest.min_side={min_side}")
    return Decoded(rgb, fmt, source_mode, rgb.size[0], rgb.size[1], frames)


def content_id(data: bytes) -> str:
    """The image_id: sha256 of the file's bytes (exact duplicates share it)."""
    return hashlib.sha256(data).hexdigest()


PHASH_BITS = 256


def phash_hex(img: Image.Image) -> str:
    """256-bit perceptual hash (DCT, imagehash.phash with hash_size=16) as 64 hex digits.

    256 bits rather than the usual 64: on catalogue photos of similar layout (sky over
    sea over sand) 64-bit hashes of different photos often fall within a few bits."""
    import imagehash

    return str(imagehash.phash(img, hash_size=16))


def hamming_hex(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


# --------------------------------------------------------------------------- model input
def to_model_input(img: Image.Image, size: int) -> np.ndarray:
    """Resize (bilinear, no crop: the whole picture matters) to size x size, float32 HWC 0..255."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


# --------------------------------------------------------------------------- ingest (mapInPandas)
CHECK_SCHEMA = ("uri string, sale_id string, ok boolean, reason string, detail string, image_id string, "
                "format string, width int, height int, source_mode string, n_bytes long, phash string, "
                "content binary")


def quality_or_none(data: bytes, quality_size: int, max_pixels: int):
    """An ingested image's quality statistics (:func:`vistarank.udfs.quality.quality_of_bytes`),
    or None where they fail: they never reject an image that passed its checks."""
    from vistarank.udfs.quality import quality_of_bytes

    try:
        return quality_of_bytes(data, quality_size, max_pixels)
    except Exception:  # labelling computes them again, and reports a failure there
        return None


def check_files_fn(max_bytes: int, max_pixels: int, formats: list[str], min_side: int):
    """mapInPandas function over (uri, sale_id): read, check, hash. One output row per file."""
    formats = list(formats)

    def fn(batches):
        import pandas as pd

        for pdf in batches:
            rows = []
            for uri, sale_id in zip(pdf["uri"], pdf["sale_id"]):
                row = dict(uri=uri, sale_id=sale_id, ok=False, reason=None, detail=None, image_id=None,
                           format=None, width=None, height=None, source_mode=None, n_bytes=None, phash=None,
                           content=None)
                try:
                    data = read_bytes(uri, max_bytes)
                    dec = decode_rgb(data, max_pixels=max_pixels, formats=formats, min_side=min_side)
                    row.update(ok=True, image_id=content_id(data), format=dec.format, width=dec.width,
                               height=dec.height, source_mode=dec.source_mode, n_bytes=len(data),
                               phash=phash_hex(dec.image), content=data)
                    if dec.frames > 1:
                        row["detail"] = f"animated ({dec.frames} frames): first frame used"
                except ImageRejected as exc:
                    row.update(reason=exc.reason, detail=str(exc)[:500])
                except FileNotFoundError as exc:
                    row.update(reason="missing", detail=str(exc)[:500])
                except Exception as exc:  # a file must never fail the job: it is rejected with the error
                    row.update(reason="unreadable", detail=f"{type(exc).__name__}: {exc}"[:500])
                rows.append(row)
            yield pd.DataFrame(rows)

    return fn
