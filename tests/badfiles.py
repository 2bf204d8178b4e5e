"""A corpus of awkward image files, each with what ingest must do with it."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def _png(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


def _jpeg(img: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, format="JPEG", **kw)
    return b.getvalue()


def _huge_png() -> bytes:
    data = bytearray(_png(Image.new("RGB", (64, 64), (10, 20, 30))))
    # IHDR chunk: length(4) 'IHDR'(4) width(4) height(4) ...; rewrite the size and the CRC
    i = data.index(b"IHDR")
    data[i + 4:i + 12] = struct.pack(">II", 100_000, 100_000)
    crc = zlib.crc32(bytes(data[i:i + 17])) & 0xFFFFFFFF
    data[i + 17:i + 21] = struct.pack(">I", crc)
    return bytes(data)


def _gradient(w=96, h=64) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None, None]
    return Image.fromarray(np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                                           np.full((h, w, 1), 128, np.uint8)], axis=2))


def _exif_rotated() -> bytes:
    img = _gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    return _jpeg(img, exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), (i * 100, 50, 200 - i * 60)) for i in range(3)]
    b = io.BytesIO()
    frames[0].save(b, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return b.getvalue()


def _sixteen_bit_png() -> bytes:
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    return _png(Image.fromarray(arr))  # uint16 -> mode I;16


def corpus() -> dict[str, tuple[bytes, str | None, dict]]:
    """file name -> (bytes, expected reject reason or None if accepted, expectations)."""
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))  # fully transparent red: white once composed
    good = _jpeg(_gradient())
    cmyk = _jpeg(_gradient().convert("CMYK"))
    pal = _png(_gradient().convert("P"))
    grey = _png(_gradient().convert("L"))
    return {
        "zero.jpg": (b"", "empty", {}),
        "truncated.jpg": (good[: len(good) // 2], "corrupt", {}),
        "random.jpg": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not_an_image", {}),
        "text.jpg": (b"this is not an image, only text\n" * 20, "not_an_image", {}),
        "one_pixel.png": (_png(Image.new("RGB", (1, 1))), "too_small", {}),
        "huge_declared.png": (_huge_png(), "decompression_bomb", {}),
        "notes.txt": (b"a text file with an unsupported extension", "unsupported_extension", {}),
        "alpha.png": (_png(rgba), None, {"size": (64, 48), "source_mode": "RGBA", "pixel": (255, 255, 255)}),
        "cmyk.jpg": (cmyk, None, {"size": (96, 64), "source_mode": "CMYK"}),
        "sixteen_bit.png": (_sixteen_bit_png(), None, {"size": (64, 64)}),
        "palette.png": (pal, None, {"size": (96, 64), "source_mode": "P"}),
        "grey.png": (grey, None, {"size": (96, 64), "source_mode": "L"}),
        "animated.gif": (_animated_gif(), None, {"size": (64, 64), "detail": "animated"}),
        "exif_rotated.jpg": (_exif_rotated(), None, {"size": (40, 80)}),
        "good.jpg": (good, None, {"size": (96, 64)}),
    }


def write_corpus(folder: str) -> dict[str, tuple[bytes, str | None, dict]]:
    os.makedirs(folder, exist_ok=True)
    items = corpus()
    for name, (data, _, _) in items.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
    return items
