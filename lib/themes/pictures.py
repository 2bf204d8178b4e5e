"""Theme galleries: a contact sheet per theme with its most typical images, and one
overview page of every theme. Analysts look at these first.

Only the few images shown (``themes.gallery_images`` per theme) come to the driver.
Pictures go to ``<lakehouse.root>/reports/themes/``: ``theme_07.png`` and ``overview.png``.
"""
from __future__ import annotations

import io
import logging

from PIL import Image, ImageDraw, ImageFont

from vistarank.files import write_bytes
from vistarank.config import join
from vistarank.udfs.images import decode_rgb

log = logging.getLogger(__name__)

THUMB = 128
PAD = 6
_BG = (250, 250, 248)
_INK = (30, 30, 30)
_GREY = (110, 110, 110)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow without sized default fonts
        return ImageFont.load_default()


def thumbnail(content: bytes, size: int = THUMB) -> Image.Image:
    """A square, centre-cropped thumbnail (a grey square if the bytes do not decode)."""
    try:
        img = decode_rgb(bytes(content), max_pixels=1 << 31, draft_size=size).image
    except Exception:  # a gallery must not fail on one picture
        return Image.new("RGB", (size, size), (200, 200, 200))
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def contact_sheet(title: str, subtitle: str, contents: list[bytes], cols: int = 8) -> Image.Image:
    rows = max(1, -(-len(contents) // cols))
    head = 46
    sheet = Image.new("RGB", (PAD + cols * (THUMB + PAD), head + rows * (THUMB + PAD) + PAD), _BG)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 4), title, fill=_INK, font=_font(18))
    draw.text((PAD, 26), subtitle, fill=_GREY, font=_font(12))
    for i, c in enumerate(contents):
        r, col = divmod(i, cols)
        sheet.paste(thumbnail(c), (PAD + col * (THUMB + PAD), head + r * (THUMB + PAD)))
    return sheet


def overview(rows: list[tuple[str, str, list[bytes]]], per_row: int) -> Image.Image:
    """One band per theme: its name and tags on the left, ``per_row`` thumbnails."""
    label_w, band = 260, THUMB + PAD
    page = Image.new("RGB", (label_w + per_row * (THUMB + PAD) + PAD, PAD + len(rows) * band), _BG)
    draw = ImageDraw.Draw(page)
    for i, (title, subtitle, contents) in enumerate(rows):
        y = PAD + i * band
        draw.text((PAD, y + 8), title, fill=_INK, font=_font(15))
        for j, line in enumerate(_wrap(subtitle, 34)[:5]):
            draw.text((PAD, y + 30 + 15 * j), line, fill=_GREY, font=_font(11))
        for j, c in enumerate(contents[:per_row]):
            page.paste(thumbnail(c), (label_w + j * (THUMB + PAD), y))
    return page


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return lines + ([cur] if cur else [])


def write_galleries(reports_dir: str, themes: list[dict], images: dict[int, list[bytes]],
                    overview_images: int) -> list[str]:
    """Write every theme's contact sheet and the overview; returns the paths.

    ``themes``: dicts with theme_id, name, share, top_tags [(tag, weight)];
    ``images``: theme_id -> image bytes, most typical first.
    """
    out = join(reports_dir, "themes")
    paths, bands = [], []
    for t in themes:
        tags = ", ".join(f"{tag} {w:.2f}" for tag, w in t["top_tags"][:6] if w >= 0.005)
        title = f"{t['theme_id']:02d}  {t['name']}"
        subtitle = f"{100 * t['share']:.1f}% of image weight; tags: {tags}"
        contents = images.get(t["theme_id"], [])
        path = join(out, f"theme_{t['theme_id']:02d}.png")
        paths.append(write_bytes(path, _png(contact_sheet(title, subtitle, contents))))
        bands.append((title, f"{100 * t['share']:.1f}%  {tags}", contents))
    paths.append(write_bytes(join(out, "overview.png"), _png(overview(bands, overview_images))))
    log.info("theme galleries: %d pictures under %s", len(paths), out)
    return paths
