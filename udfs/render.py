"""Procedural scene rendering for the demo world and the demo scene model.

Every scene is drawn from a seeded ``numpy.random.Generator``: the same seed gives
the same pixels (and, encoded with the same settings, the same JPEG bytes). The
scenes are deliberately simple but varied (layout, colour, lighting, size, noise),
so that a small network must learn shape and colour cues to tell them apart.
Each photo has a hidden aesthetic score, which is what the aesthetics head later learns:
the light of a clean photo (how vivid and how contrasted it is: :func:`compose`) sets it
between 7 and 9.5, and degradations (blur, noise, exposure, tilt, low contrast) lower it.
Everything the score depends on is drawn in the pixels, as raters judge real photos by
what they see.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

Color = tuple[int, int, int]


def _c(rng: np.random.Generator, base: Color, amt: int = 18) -> Color:
    return tuple(int(np.clip(v + rng.integers(-amt, amt + 1), 0, 255)) for v in base)  # type: ignore


def _gradient(img: Image.Image, y0: int, y1: int, top: Color, bottom: Color) -> None:
    if y1 <= y0:
        return
    w = img.width
    t = np.linspace(0.0, 1.0, y1 - y0)[:, None]
    band = (np.array(top)[None, :] * (1 - t) + np.array(bottom)[None, :] * t).astype(np.uint8)
    img.paste(Image.fromarray(np.repeat(band[:, None, :], w, axis=1)), (0, y0))


_SKIES = {"day": ((70, 130, 210), (170, 205, 240)), "golden": ((240, 150, 80), (250, 210, 150)),
          "overcast": ((150, 155, 165), (200, 200, 205))}


def _sky(img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator, horizon: int,
         sun: bool = True) -> None:
    kind = rng.choice(list(_SKIES), p=[0.6, 0.25, 0.15])
    top, bottom = _SKIES[kind]
    _gradient(img, 0, horizon, _c(rng, top), _c(rng, bottom))
    if sun and kind != "overcast" and rng.random() < 0.5:
        r = int(img.width * rng.uniform(0.03, 0.07))
        x, y = int(rng.uniform(0.1, 0.9) * img.width), int(rng.uniform(0.1, 0.6) * horizon)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_c(rng, (255, 240, 190), 10))
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, img.width), rng.uniform(0.05, 0.7) * horizon
        cw, ch = img.width * rng.uniform(0.08, 0.2), img.height * rng.uniform(0.02, 0.05)
        d.ellipse([cx - cw, cy - ch, cx + cw, cy + ch], fill=_c(rng, (245, 245, 248), 8))


def _hills(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, base: int, amp: float,
           color: Color) -> None:
    xs = np.linspace(0, w, 12)
    phase, freq = rng.uniform(0, 6.3), rng.uniform(1.0, 3.0)
    ys = base - amp * (0.5 + 0.5 * np.sin(phase + freq * xs / w * 3.14))
    d.polygon([(0, base + 1000)] + list(zip(xs.tolist(), ys.tolist())) + [(w, base + 1000)], fill=color)


def _water(img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator, y0: int, y1: int,
           top: Color, bottom: Color, waves: int = 12) -> None:
    _gradient(img, y0, y1, _c(rng, top), _c(rng, bottom))
    for _ in range(waves):
        y = rng.uniform(y0, y1)
        x = rng.uniform(0, img.width)
        ln = img.width * rng.uniform(0.05, 0.15)
        d.line([(x, y), (x + ln, y)], fill=_c(rng, (225, 235, 245), 10), width=1)


def _trees(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, y_lo: float, y_hi: float, n: int,
           size: float, color: Color = (30, 90, 40)) -> None:
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(y_lo, y_hi)
        s = size * rng.uniform(0.6, 1.3) * (0.5 + y / max(y_hi, 1))
        d.polygon([(x, y - 2.2 * s), (x - s * 0.7, y), (x + s * 0.7, y)], fill=_c(rng, color, 15))
        d.rectangle([x - s * 0.1, y, x + s * 0.1, y + s * 0.4], fill=(80, 55, 30))


def _windows(d: ImageDraw.ImageDraw, rng: np.random.Generator, box: tuple[float, float, float, float],
             cols: int, rows: int, color: Color) -> None:
    x0, y0, x1, y1 = box
    cw, rh = (x1 - x0) / cols, (y1 - y0) / rows
    for i in range(cols):
        for j in range(rows):
            d.rectangle([x0 + i * cw + cw * 0.25, y0 + j * rh + rh * 0.2,
                         x0 + (i + 1) * cw - cw * 0.25, y0 + (j + 1) * rh - rh * 0.25], fill=_c(rng, color, 12))


def _room(img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator, wall: Color,
          floor: Color) -> int:
    w, h = img.size
    fy = int(h * rng.uniform(0.6, 0.75))
    _gradient(img, 0, fy, _c(rng, wall), _c(rng, tuple(int(v * 0.85) for v in wall)))  # type: ignore
    _gradient(img, fy, h, _c(rng, floor), _c(rng, tuple(int(v * 0.7) for v in floor)))  # type: ignore
    return fy


# --------------------------------------------------------------------------- scenes
def beach(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.3, 0.5))
    shore = int(h * rng.uniform(0.6, 0.75))
    _sky(img, d, rng, hz)
    _water(img, d, rng, hz, shore, (30, 100, 170), (60, 170, 200))
    _gradient(img, shore, h, _c(rng, (235, 215, 165)), _c(rng, (215, 190, 140)))
    for _ in range(int(rng.integers(1, 5))):
        x, y = rng.uniform(0.05, 0.95) * w, rng.uniform(shore + 5, h - 5)
        s = w * rng.uniform(0.04, 0.08)
        d.polygon([(x - s, y - s * 0.6), (x + s, y - s * 0.6), (x, y - s * 1.2)],
                  fill=tuple(int(v) for v in rng.integers(60, 255, 3)))
        d.line([(x, y - s * 0.6), (x, y)], fill=(90, 70, 50), width=2)


def coast(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.3, 0.45))
    _sky(img, d, rng, hz)
    _water(img, d, rng, hz, h, (25, 90, 160), (40, 130, 180))
    left = rng.random() < 0.5
    top = h * rng.uniform(0.2, 0.4)
    xs = [0, w * rng.uniform(0.3, 0.55), w * rng.uniform(0.45, 0.65), 0] if left else \
        [w, w * rng.uniform(0.45, 0.7), w * rng.uniform(0.35, 0.55), w]
    d.polygon([(xs[0], top), (xs[1], top + h * 0.05), (xs[2], h), (xs[3], h)], fill=_c(rng, (120, 95, 70)))
    d.polygon([(xs[0], top - 4), (xs[1], top + h * 0.05 - 4), (xs[1], top + h * 0.05 + 6), (xs[0], top + 6)],
              fill=_c(rng, (70, 120, 60)))


def open_sea(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.35, 0.55))
    _sky(img, d, rng, hz)
    _water(img, d, rng, hz, h, (20, 70, 140), (30, 110, 170), waves=30)
    if rng.random() < 0.6:
        x, y, s = rng.uniform(0.2, 0.8) * w, hz + rng.uniform(5, 30), w * rng.uniform(0.03, 0.06)
        d.polygon([(x - s, y), (x + s, y), (x + s * 0.7, y + s * 0.3), (x - s * 0.7, y + s * 0.3)],
                  fill=(250, 250, 250))
        d.polygon([(x, y - s * 1.5), (x, y), (x + s * 0.8, y)], fill=(245, 245, 240))


def _pool(d, rng, box, water=(40, 180, 210)):
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=_c(rng, water))
    for i in range(1, 6):
        yy = y0 + (y1 - y0) * i / 6
        d.line([(x0, yy), (x1, yy)], fill=_c(rng, (110, 215, 235), 10), width=1)
    d.rectangle(box, outline=_c(rng, (235, 235, 230), 5), width=3)


def outdoor_pool(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.25, 0.4))
    _sky(img, d, rng, hz)
    _gradient(img, hz, h, _c(rng, (210, 200, 185)), _c(rng, (185, 175, 160)))
    _trees(d, rng, w, hz, hz + 2, int(rng.integers(0, 5)), h * 0.08, (40, 110, 50))
    _pool(d, rng, (w * rng.uniform(0.05, 0.2), h * rng.uniform(0.5, 0.6), w * rng.uniform(0.8, 0.95),
                   h * rng.uniform(0.82, 0.95)))
    for _ in range(int(rng.integers(1, 4))):
        x = rng.uniform(0.1, 0.8) * w
        d.rectangle([x, hz + h * 0.08, x + w * 0.1, hz + h * 0.12], fill=_c(rng, (245, 245, 245)))


def indoor_pool(img, d, rng):
    w, h = img.size
    fy = _room(img, d, rng, (200, 205, 210), (170, 190, 200))
    _windows(d, rng, (w * 0.05, h * 0.08, w * 0.95, fy - h * 0.1), int(rng.integers(3, 7)), 1, (190, 220, 245))
    _pool(d, rng, (w * 0.1, fy - h * 0.05, w * 0.9, h * 0.95), water=(30, 150, 200))


def hot_tub(img, d, rng):
    w, h = img.size
    _gradient(img, 0, h, _c(rng, (140, 100, 70)), _c(rng, (100, 70, 45)))
    for i in range(0, h, max(6, h // 18)):
        d.line([(0, i), (w, i)], fill=_c(rng, (80, 55, 35), 8), width=1)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.5, 0.65)
    r = min(w, h) * rng.uniform(0.28, 0.4)
    d.ellipse([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], fill=_c(rng, (200, 200, 195)))
    d.ellipse([cx - r * 0.85, cy - r * 0.58, cx + r * 0.85, cy + r * 0.58], fill=_c(rng, (60, 190, 200)))
    for _ in range(40):
        bx, by = cx + rng.normal(0, r * 0.35), cy + rng.normal(0, r * 0.2)
        br = rng.uniform(1, 3)
        d.ellipse([bx - br, by - br, bx + br, by + br], fill=(235, 250, 250))


def golf_course(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.3, 0.45))
    _sky(img, d, rng, hz)
    _hills(d, rng, w, hz + 10, h * 0.08, _c(rng, (60, 130, 60)))
    _gradient(img, int(hz + h * 0.1), h, _c(rng, (90, 180, 80)), _c(rng, (70, 160, 60)))
    _trees(d, rng, w, hz, hz + h * 0.08, int(rng.integers(2, 8)), h * 0.06)
    bx, by = w * rng.uniform(0.2, 0.7), h * rng.uniform(0.65, 0.85)
    d.ellipse([bx, by, bx + w * 0.2, by + h * 0.07], fill=_c(rng, (230, 215, 170)))
    fx, fy = w * rng.uniform(0.3, 0.8), h * rng.uniform(0.5, 0.7)
    d.line([(fx, fy), (fx, fy - h * 0.18)], fill=(240, 240, 240), width=2)
    d.polygon([(fx, fy - h * 0.18), (fx + w * 0.06, fy - h * 0.15), (fx, fy - h * 0.12)], fill=(220, 30, 30))


def ski_slope(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.2, 0.35))
    _sky(img, d, rng, hz)
    _hills(d, rng, w, hz + 20, h * 0.1, _c(rng, (150, 160, 180)))
    y_left, y_right = (hz, h * 0.8) if rng.random() < 0.5 else (h * 0.8, hz)
    d.polygon([(0, y_left), (w, y_right), (w, h), (0, h)], fill=_c(rng, (245, 248, 252), 6))
    _trees(d, rng, w, hz + h * 0.1, h * 0.95, int(rng.integers(4, 12)), h * 0.05, (25, 70, 40))
    for _ in range(int(rng.integers(2, 8))):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.5, h * 0.95)
        d.ellipse([x - 2, y - 5, x + 2, y], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    d.line([(0, hz + h * 0.1), (w, hz + h * 0.3)], fill=(50, 50, 50), width=1)


def snowy_mountain(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.65, 0.8))
    _sky(img, d, rng, hz)
    for _ in range(int(rng.integers(2, 5))):
        px, ph, pw = rng.uniform(0, w), h * rng.uniform(0.15, 0.45), w * rng.uniform(0.25, 0.5)
        col = _c(rng, (110, 115, 135))
        d.polygon([(px - pw, hz), (px, ph), (px + pw, hz)], fill=col)
        cap = (hz - ph) * rng.uniform(0.25, 0.45)
        d.polygon([(px - pw * cap / (hz - ph), ph + cap), (px, ph), (px + pw * cap / (hz - ph), ph + cap)],
                  fill=(250, 250, 252))
    _gradient(img, hz, h, _c(rng, (235, 240, 245)), _c(rng, (210, 220, 230)))


def forest(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.15, 0.35))
    _sky(img, d, rng, hz, sun=False)
    _gradient(img, hz, h, _c(rng, (50, 90, 45)), _c(rng, (35, 60, 30)))
    _trees(d, rng, w, hz, h * 1.05, int(rng.integers(25, 45)), h * 0.1, (30, 100, 40))


def lake(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.4, 0.55))
    _sky(img, d, rng, hz)
    _hills(d, rng, w, hz, h * 0.15, _c(rng, (70, 110, 80)))
    _trees(d, rng, w, hz - 4, hz, int(rng.integers(5, 15)), h * 0.05)
    _water(img, d, rng, hz, int(h * rng.uniform(0.8, 0.95)), (80, 120, 150), (60, 100, 130), waves=8)
    _gradient(img, int(h * 0.93), h, _c(rng, (90, 120, 60)), _c(rng, (70, 100, 50)))


def vineyard(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.25, 0.4))
    _sky(img, d, rng, hz)
    _hills(d, rng, w, hz + 15, h * 0.1, _c(rng, (120, 140, 80)))
    _gradient(img, int(hz + h * 0.05), h, _c(rng, (160, 130, 90)), _c(rng, (130, 100, 70)))
    vx = w * rng.uniform(0.3, 0.7)
    for i in range(-10, 11):
        d.line([(vx, hz + h * 0.05), (vx + i * w * 0.12, h)], fill=_c(rng, (60, 120, 40), 10), width=3)


def city_skyline(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.7, 0.85))
    _sky(img, d, rng, hz)
    x = 0.0
    while x < w:
        bw, bh = w * rng.uniform(0.05, 0.12), h * rng.uniform(0.2, 0.6)
        col = _c(rng, (90, 95, 110), 30)
        d.rectangle([x, hz - bh, x + bw, hz], fill=col)
        _windows(d, rng, (x, hz - bh, x + bw, hz), 3, max(2, int(bh / 12)), (230, 220, 150))
        x += bw + rng.uniform(0, w * 0.02)
    _gradient(img, hz, h, _c(rng, (60, 60, 65)), _c(rng, (40, 40, 45)))


def tower(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.8, 0.9))
    _sky(img, d, rng, hz)
    _gradient(img, hz, h, _c(rng, (100, 140, 80)), _c(rng, (80, 120, 60)))
    cx, top = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.05, 0.15)
    bw = w * rng.uniform(0.12, 0.2)
    col = _c(rng, (110, 90, 70), 20)
    d.polygon([(cx - bw, hz), (cx - 2, top), (cx + 2, top), (cx + bw, hz)], outline=col, width=3)
    for k in range(1, 8):
        y = top + (hz - top) * k / 8
        half = 2 + (bw - 2) * k / 8
        d.line([(cx - half, y), (cx + half, y)], fill=col, width=2)
        d.line([(cx - half, y), (cx + half * 0.8, y + (hz - top) / 8)], fill=col, width=1)


def bridge(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.35, 0.5))
    _sky(img, d, rng, hz)
    _water(img, d, rng, hz, h, (70, 100, 120), (50, 80, 100))
    deck = hz + h * rng.uniform(0.05, 0.15)
    col = _c(rng, (170, 60, 40), 40)
    d.rectangle([0, deck, w, deck + h * 0.03], fill=col)
    for px in (w * rng.uniform(0.15, 0.3), w * rng.uniform(0.7, 0.85)):
        d.rectangle([px - 4, hz - h * 0.3, px + 4, h * 0.95], fill=col)
        for k in range(8):
            d.line([(px, hz - h * 0.3), (px + (k - 4) * w * 0.04, deck)], fill=col, width=1)


def castle(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.6, 0.75))
    _sky(img, d, rng, hz)
    _gradient(img, hz, h, _c(rng, (90, 140, 70)), _c(rng, (70, 110, 50)))
    stone = _c(rng, (160, 150, 135))
    x0, x1 = w * rng.uniform(0.1, 0.25), w * rng.uniform(0.75, 0.9)
    wall_top = hz - h * rng.uniform(0.2, 0.3)
    d.rectangle([x0, wall_top, x1, hz], fill=stone)
    for x in np.arange(x0, x1, w * 0.04):
        d.rectangle([x, wall_top - h * 0.03, x + w * 0.02, wall_top], fill=stone)
    roof = _c(rng, (60, 70, 120), 30)
    for tx in (x0, x1, (x0 + x1) / 2):
        tw, tt = w * 0.05, wall_top - h * rng.uniform(0.1, 0.2)
        d.rectangle([tx - tw, tt, tx + tw, hz], fill=stone)
        d.polygon([(tx - tw * 1.3, tt), (tx, tt - h * 0.12), (tx + tw * 1.3, tt)], fill=roof)
    d.rectangle([(x0 + x1) / 2 - w * 0.03, hz - h * 0.1, (x0 + x1) / 2 + w * 0.03, hz], fill=(60, 40, 30))


def desert(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.35, 0.5))
    _gradient(img, 0, hz, _c(rng, (240, 180, 110)), _c(rng, (250, 220, 170)))
    r = w * 0.06
    sx, sy = rng.uniform(0.2, 0.8) * w, hz * rng.uniform(0.3, 0.7)
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 245, 200))
    _gradient(img, hz, h, _c(rng, (225, 165, 95)), _c(rng, (200, 135, 70)))
    for k in range(int(rng.integers(2, 5))):
        _hills(d, rng, w, hz + (h - hz) * (0.2 + 0.25 * k), h * 0.1, _c(rng, (215 - 12 * k, 150 - 10 * k, 85)))


def bedroom(img, d, rng):
    w, h = img.size
    fy = _room(img, d, rng, (215, 200, 175), (140, 100, 65))
    bx0, bx1 = w * rng.uniform(0.15, 0.3), w * rng.uniform(0.7, 0.85)
    d.rectangle([bx0, fy - h * 0.28, bx1, fy - h * 0.05], fill=_c(rng, (100, 70, 50)))
    d.rectangle([bx0 - w * 0.03, fy - h * 0.08, bx1 + w * 0.03, h * 0.93], fill=_c(rng, (245, 245, 240), 8))
    d.rectangle([bx0 - w * 0.03, fy + h * 0.05, bx1 + w * 0.03, h * 0.93], fill=_c(rng, (120, 40, 60), 50))
    for px in (bx0 + w * 0.05, (bx0 + bx1) / 2 + w * 0.02):
        d.ellipse([px, fy - h * 0.12, px + w * 0.15, fy - h * 0.03], fill=(250, 250, 250))
    lx = w * rng.uniform(0.03, 0.1)
    d.rectangle([lx, fy - h * 0.1, lx + w * 0.06, fy + h * 0.05], fill=(90, 60, 40))
    d.polygon([(lx, fy - h * 0.12), (lx + w * 0.06, fy - h * 0.12), (lx + w * 0.045, fy - h * 0.2),
               (lx + w * 0.015, fy - h * 0.2)], fill=(250, 230, 170))


def bathroom(img, d, rng):
    w, h = img.size
    _gradient(img, 0, h, _c(rng, (235, 235, 235)), _c(rng, (210, 210, 215)))
    step = max(8, int(min(w, h) / rng.uniform(8, 14)))
    grout = _c(rng, (180, 185, 190), 10)
    for x in range(0, w, step):
        d.line([(x, 0), (x, h)], fill=grout, width=1)
    for y in range(0, h, step):
        d.line([(0, y), (w, y)], fill=grout, width=1)
    mx = w * rng.uniform(0.3, 0.5)
    d.rectangle([mx, h * 0.1, mx + w * 0.25, h * 0.4], fill=_c(rng, (190, 210, 225)), outline=(150, 150, 150))
    d.rectangle([mx - w * 0.02, h * 0.5, mx + w * 0.27, h * 0.56], fill=(250, 250, 250))
    d.ellipse([mx + w * 0.05, h * 0.5, mx + w * 0.2, h * 0.58], fill=(225, 230, 235))
    if rng.random() < 0.6:
        d.rounded_rectangle([w * 0.02, h * 0.65, w * 0.55, h * 0.9], radius=10, fill=(252, 252, 252),
                            outline=(200, 200, 200))


def restaurant(img, d, rng):
    w, h = img.size
    fy = _room(img, d, rng, (150, 90, 60), (110, 70, 45))
    for _ in range(int(rng.integers(2, 5))):
        x = rng.uniform(0.05, 0.85) * w
        d.ellipse([x, h * 0.12, x + w * 0.06, h * 0.2], fill=(255, 220, 150))
    for row in range(2):
        for _ in range(int(rng.integers(2, 4))):
            x = rng.uniform(0.05, 0.85) * w
            y = fy + (h - fy) * (0.2 + 0.45 * row)
            tw = w * (0.1 + 0.05 * row)
            d.rectangle([x + tw * 0.45, y, x + tw * 0.55, y + h * 0.12], fill=(80, 60, 40))
            d.ellipse([x, y - h * 0.03, x + tw, y + h * 0.03], fill=_c(rng, (250, 250, 245), 5))
            for gx in (x + tw * 0.3, x + tw * 0.65):
                d.line([(gx, y - h * 0.05), (gx, y - h * 0.01)], fill=(200, 40, 60), width=2)


def reception(img, d, rng):
    w, h = img.size
    fy = _room(img, d, rng, (180, 160, 130), (200, 190, 175))
    d.rectangle([w * 0.35, h * 0.15, w * 0.65, h * 0.3], fill=_c(rng, (180, 150, 60)))
    for i in range(4):
        for j in range(3):
            d.rectangle([w * (0.72 + i * 0.05), h * (0.2 + j * 0.08), w * (0.74 + i * 0.05), h * (0.24 + j * 0.08)],
                        fill=(120, 90, 40))
    d.ellipse([w * 0.46, fy - h * 0.3, w * 0.54, fy - h * 0.2], fill=_c(rng, (220, 180, 150)))
    d.rectangle([w * 0.44, fy - h * 0.2, w * 0.56, fy - h * 0.05], fill=_c(rng, (40, 40, 60)))
    d.rectangle([w * 0.1, fy - h * 0.12, w * 0.9, fy + h * 0.12], fill=_c(rng, (100, 60, 40), 30))
    d.rectangle([w * 0.1, fy - h * 0.14, w * 0.9, fy - h * 0.1], fill=_c(rng, (60, 50, 45)))


def foyer(img, d, rng):
    w, h = img.size
    fy = int(h * rng.uniform(0.55, 0.65))
    _gradient(img, 0, fy, _c(rng, (225, 215, 195)), _c(rng, (200, 190, 170)))
    step = max(10, w // 10)
    a, b = _c(rng, (235, 230, 225)), _c(rng, (60, 60, 65))
    for i, x in enumerate(range(0, w, step)):
        for j, y in enumerate(range(fy, h, step // 2)):
            d.rectangle([x, y, x + step, y + step // 2], fill=a if (i + j) % 2 else b)
    for cx in np.linspace(w * 0.1, w * 0.9, int(rng.integers(2, 5))):
        d.rectangle([cx - w * 0.025, h * 0.05, cx + w * 0.025, fy], fill=_c(rng, (240, 235, 225), 8))
    cx = w * rng.uniform(0.4, 0.6)
    d.line([(cx, 0), (cx, h * 0.1)], fill=(150, 120, 40), width=1)
    d.polygon([(cx - w * 0.08, h * 0.15), (cx + w * 0.08, h * 0.15), (cx, h * 0.1)], fill=(240, 200, 90))
    for k in range(7):
        x = cx - w * 0.08 + k * w * 0.027
        d.ellipse([x - 2, h * 0.15, x + 2, h * 0.18], fill=(255, 250, 210))


def kitchen(img, d, rng):
    w, h = img.size
    fy = _room(img, d, rng, (225, 225, 220), (170, 160, 150))
    col = _c(rng, (120, 140, 160), 40)
    n = int(rng.integers(4, 7))
    for i in range(n):
        x0 = w * 0.05 + i * (w * 0.9 / n)
        d.rectangle([x0 + 2, h * 0.08, x0 + w * 0.9 / n - 2, h * 0.3], fill=col, outline=(80, 80, 80))
        d.rectangle([x0 + 2, fy - h * 0.05, x0 + w * 0.9 / n - 2, h * 0.9], fill=col, outline=(80, 80, 80))
    d.rectangle([w * 0.03, fy - h * 0.09, w * 0.97, fy - h * 0.05], fill=_c(rng, (60, 60, 60)))
    sx = w * rng.uniform(0.3, 0.6)
    for k in range(2):
        d.ellipse([sx + k * w * 0.08, fy - h * 0.1, sx + k * w * 0.08 + w * 0.06, fy - h * 0.07], fill=(20, 20, 20))
    step = max(6, w // 25)
    for x in range(int(w * 0.05), int(w * 0.95), step):
        d.line([(x, h * 0.32), (x, fy - h * 0.1)], fill=(200, 200, 200), width=1)


def facade(img, d, rng):
    w, h = img.size
    hz = int(h * rng.uniform(0.85, 0.95))
    _sky(img, d, rng, hz)
    _gradient(img, hz, h, _c(rng, (130, 130, 130)), _c(rng, (100, 100, 100)))
    x0, x1 = w * rng.uniform(0.02, 0.15), w * rng.uniform(0.85, 0.98)
    top = h * rng.uniform(0.08, 0.25)
    d.rectangle([x0, top, x1, hz], fill=_c(rng, (230, 210, 180), 30))
    _windows(d, rng, (x0, top, x1, hz - h * 0.15), int(rng.integers(4, 8)), int(rng.integers(3, 6)),
             (70, 90, 120))
    d.rectangle([(x0 + x1) / 2 - w * 0.06, hz - h * 0.15, (x0 + x1) / 2 + w * 0.06, hz], fill=(80, 50, 30))
    d.rectangle([(x0 + x1) / 2 - w * 0.15, top - h * 0.06, (x0 + x1) / 2 + w * 0.15, top],
                fill=_c(rng, (150, 30, 40), 30))


# --------------------------------------------------------------------------- elements
# The demo's fine-grained tags: objects drawn over a scene (vistarank.world.catalog.ELEMENTS
# says which scene shows which). Each element is a list of shapes in a unit box: x from
# -0.5 to 0.5 (the element's width s), y from -1 (top) to 0 (its foot), drawn at a spot of
# its zone: "ground" (the lower part of the photo), "sky", "wall" or "ceiling".
WHITE, CREAM, SILVER, GREY, DKGREY, BLACK = (245, 245, 245), (240, 228, 200), (200, 200, 210), (130, 130, 135), \
    (60, 60, 65), (25, 25, 25)
RED, PINK, ORANGE, YELLOW, GOLD = (200, 40, 40), (240, 120, 170), (240, 130, 30), (240, 205, 40), (205, 165, 55)
GREEN, DKGREEN, TEAL, LTBLUE, BLUE, NAVY, PURPLE = (50, 150, 60), (20, 85, 35), (40, 160, 160), (150, 200, 240), \
    (40, 80, 190), (30, 40, 90), (120, 50, 140)
BROWN, DKBROWN, TAN, SAND, SKIN, TERRA = (125, 80, 40), (80, 50, 25), (200, 160, 100), (225, 200, 150), \
    (225, 180, 150), (190, 90, 50)


def R(x0, y0, x1, y1, c):
    return ("rect", (x0, y0, x1, y1), c)


def E(x0, y0, x1, y1, c):
    return ("ellipse", (x0, y0, x1, y1), c)


def P(pts, c):
    return ("poly", tuple(pts), c)


def L(x0, y0, x1, y1, c, w=0.04):
    return ("line", (x0, y0, x1, y1, w), c)


def _figure(body, legs=NAVY, extra=()):
    return [E(-0.09, -1.0, 0.09, -0.82, SKIN), R(-0.14, -0.82, 0.14, -0.42, body),
            L(-0.07, -0.42, -0.1, 0, legs, 0.07), L(0.07, -0.42, 0.1, 0, legs, 0.07), *extra]


def _umbrella(c1, c2):
    return [L(0, 0, 0, -0.9, DKBROWN, 0.04), P([(-0.5, -0.68), (0, -1), (0.5, -0.68)], c1),
            P([(-0.16, -0.78), (0, -1), (0.16, -0.78)], c2)]


def _palm(fronds, trunk=BROWN, extra=()):
    return [L(0, 0, 0.1, -0.85, trunk, 0.08), *[L(0.1, -0.85, x, y, fronds, 0.07) for x, y in
            [(-0.45, -0.65), (0.5, -0.65), (-0.3, -1.0), (0.45, -1.0), (0.1, -1.05)]], *extra]


def _vehicle(c, long=False, extra=()):
    x = 0.5 if long else 0.45
    body = [R(-x, -0.5 if long else -0.35, x, -0.1, c)]
    if not long:
        body.append(R(-0.25, -0.55, 0.25, -0.35, c))
        body.append(R(-0.2, -0.52, 0.2, -0.38, LTBLUE))
    else:
        body.append(R(-0.45, -0.42, 0.45, -0.3, CREAM))
    return body + [E(-x + 0.05, -0.2, -x + 0.25, 0, BLACK), E(x - 0.25, -0.2, x - 0.05, 0, BLACK), *extra]


def _house(wall, roof, extra=()):
    return [R(-0.42, -0.5, 0.42, 0, wall), P([(-0.52, -0.48), (0, -0.85), (0.52, -0.48)], roof),
            R(-0.08, -0.28, 0.08, 0, DKBROWN), R(-0.32, -0.38, -0.16, -0.22, LTBLUE),
            R(0.16, -0.38, 0.32, -0.22, LTBLUE), *extra]


ELEMENT_ART: dict[str, tuple[str, list]] = {
    # sea
    "parasol": ("ground", _umbrella(RED, WHITE)),
    "beach_towel": ("ground", [R(-0.5, -0.16, 0.5, 0, ORANGE), R(-0.5, -0.11, 0.5, -0.06, WHITE),
                               R(-0.2, -0.16, -0.1, 0, BLUE)]),
    "sandcastle": ("ground", [R(-0.4, -0.4, 0.4, 0, SAND), R(-0.4, -0.55, -0.2, -0.4, SAND),
                              R(0.2, -0.55, 0.4, -0.4, SAND), R(-0.1, -0.7, 0.1, -0.4, SAND),
                              L(0, -0.7, 0, -0.9, DKBROWN, 0.02), P([(0, -0.9), (0.15, -0.85), (0, -0.8)], RED)]),
    "palm_tree": ("ground", _palm(GREEN)),
    "surfboard": ("ground", [E(-0.13, -1, 0.13, 0, YELLOW), L(0, -0.95, 0, -0.05, RED, 0.03)]),
    "lighthouse": ("ground", [P([(-0.15, 0), (-0.08, -0.8), (0.08, -0.8), (0.15, 0)], WHITE),
                              R(-0.13, -0.3, 0.13, -0.15, RED), R(-0.1, -0.65, 0.1, -0.5, RED),
                              R(-0.1, -0.92, 0.1, -0.8, YELLOW), P([(-0.13, -0.92), (0, -1.02), (0.13, -0.92)], RED)]),
    "seagull": ("sky", [L(-0.5, -0.62, 0, -0.45, WHITE, 0.07), L(0, -0.45, 0.5, -0.62, WHITE, 0.07),
                        E(-0.08, -0.5, 0.08, -0.4, GREY)]),
    "sea_rocks": ("ground", [P([(-0.5, 0), (-0.35, -0.4), (-0.1, -0.5), (0.05, -0.3), (0.3, -0.45), (0.5, 0)], DKGREY),
                             P([(-0.3, -0.3), (-0.1, -0.45), (0, -0.3)], GREY)]),
    "sailboat": ("ground", [P([(-0.45, -0.15), (0.45, -0.15), (0.3, 0), (-0.3, 0)], BROWN),
                            L(0, -0.15, 0, -1, DKBROWN, 0.03), P([(0.02, -1), (0.02, -0.2), (0.42, -0.2)], WHITE),
                            P([(-0.02, -0.85), (-0.02, -0.2), (-0.3, -0.2)], CREAM)]),
    "yacht": ("ground", [P([(-0.5, -0.25), (0.5, -0.25), (0.35, 0), (-0.4, 0)], WHITE),
                         R(-0.25, -0.47, 0.2, -0.25, WHITE), R(-0.2, -0.4, 0.15, -0.33, NAVY),
                         R(-0.45, -0.13, 0.42, -0.08, NAVY)]),
    "buoy": ("ground", [L(0, -0.6, 0, -0.95, DKGREY, 0.04), E(-0.3, -0.62, 0.3, 0, ORANGE),
                        R(-0.3, -0.36, 0.3, -0.26, WHITE)]),
    "dolphin": ("ground", [P([(-0.5, -0.2), (-0.2, -0.6), (0.2, -0.65), (0.5, -0.3), (0.2, -0.5), (-0.2, -0.45)], GREY),
                           P([(0, -0.6), (0.05, -0.82), (0.16, -0.6)], GREY)]),
    # pool and spa
    "sun_lounger": ("ground", [P([(-0.5, -0.15), (0.2, -0.15), (0.5, -0.55), (0.44, -0.6), (0.15, -0.23),
                                  (-0.5, -0.23)], WHITE), R(-0.45, -0.23, 0.1, -0.17, BLUE),
                               L(-0.45, -0.15, -0.45, 0, BLACK, 0.03), L(0.15, -0.15, 0.15, 0, BLACK, 0.03)]),
    "pool_float": ("ground", [E(-0.5, -0.45, 0.5, 0, PINK), E(-0.22, -0.32, 0.22, -0.13, (40, 180, 210))]),
    "potted_palm": ("ground", _palm(GREEN, extra=[R(-0.2, -0.28, 0.2, 0, TERRA)])),
    "cabana": ("ground", [R(-0.45, -0.7, 0.45, 0, WHITE), P([(-0.52, -0.7), (0, -1), (0.52, -0.7)], BLUE),
                          R(-0.45, -0.66, -0.3, 0, LTBLUE), R(0.3, -0.66, 0.45, 0, LTBLUE)]),
    "pool_ladder": ("ground", [L(-0.2, 0, -0.2, -0.8, SILVER, 0.06), L(0.2, 0, 0.2, -0.8, SILVER, 0.06),
                               L(-0.2, -0.8, -0.05, -0.95, SILVER, 0.06), L(0.2, -0.8, 0.35, -0.95, SILVER, 0.06),
                               L(-0.2, -0.2, 0.2, -0.2, SILVER), L(-0.2, -0.45, 0.2, -0.45, SILVER),
                               L(-0.2, -0.7, 0.2, -0.7, SILVER)]),
    "towel_stack": ("ground", [R(-0.4, -0.15, 0.4, 0, WHITE), R(-0.4, -0.3, 0.4, -0.15, TEAL),
                               R(-0.4, -0.45, 0.4, -0.3, WHITE), R(-0.4, -0.6, 0.4, -0.45, TEAL)]),
    "lane_rope": ("ground", [E(-0.5 + 0.125 * i, -0.16, -0.375 + 0.125 * i, 0, RED if i % 2 else WHITE)
                             for i in range(8)]),
    "spa_candles": ("ground", [R(-0.35, -0.4, -0.2, 0, CREAM), R(-0.05, -0.55, 0.1, 0, CREAM),
                               R(0.25, -0.3, 0.4, 0, CREAM), E(-0.31, -0.52, -0.24, -0.41, ORANGE),
                               E(-0.01, -0.67, 0.06, -0.56, ORANGE), E(0.29, -0.42, 0.36, -0.31, ORANGE)]),
    "bamboo": ("ground", [*[L(x, 0, x + 0.04, -1, (110, 170, 60), 0.07) for x in (-0.25, 0, 0.25)],
                          *[L(x - 0.05, y, x + 0.08, y, DKGREEN, 0.03) for x in (-0.25, 0, 0.25)
                            for y in (-0.3, -0.6, -0.85)],
                          P([(0.04, -0.7), (0.45, -0.8), (0.06, -0.64)], GREEN)]),
    "spa_lantern": ("ground", [R(-0.3, -0.12, 0.3, 0, DKBROWN), R(-0.25, -0.72, 0.25, -0.12, GOLD),
                               R(-0.18, -0.62, 0.18, -0.22, (255, 230, 150)),
                               P([(-0.38, -0.72), (0, -0.95), (0.38, -0.72)], DKBROWN)]),
    # snow
    "skier": ("ground", _figure(RED, BLACK, [L(-0.45, 0, 0.45, -0.1, BLACK, 0.05), L(-0.2, -0.6, -0.35, 0, GREY, 0.03),
                                              L(0.2, -0.6, 0.35, 0, GREY, 0.03)])),
    "ski_lift": ("ground", [L(-0.4, 0, -0.4, -0.95, DKGREY, 0.06), L(-0.5, -0.95, 0.5, -0.8, BLACK, 0.03),
                            L(0.2, -0.85, 0.2, -0.45, BLACK, 0.03), R(0.05, -0.45, 0.38, -0.35, BLUE),
                            R(0.3, -0.7, 0.38, -0.35, BLUE)]),
    "pine_tree": ("ground", [R(-0.05, -0.15, 0.05, 0, BROWN), P([(-0.45, -0.15), (0, -0.5), (0.45, -0.15)], DKGREEN),
                             P([(-0.35, -0.4), (0, -0.75), (0.35, -0.4)], DKGREEN),
                             P([(-0.25, -0.65), (0, -1), (0.25, -0.65)], DKGREEN),
                             P([(-0.1, -0.88), (0, -1), (0.1, -0.88)], WHITE)]),
    "snowman": ("ground", [E(-0.3, -0.55, 0.3, 0, WHITE), E(-0.2, -0.88, 0.2, -0.5, WHITE),
                           R(-0.13, -1.02, 0.13, -0.86, BLACK), P([(0, -0.72), (0.2, -0.69), (0, -0.66)], ORANGE)]),
    "piste_marker": ("ground", [R(-0.06, -1, 0.06, 0, ORANGE), R(-0.06, -0.9, 0.06, -0.72, BLACK),
                                R(-0.06, -0.5, 0.06, -0.32, BLACK)]),
    "chalet": ("ground", _house(BROWN, DKBROWN, [P([(-0.52, -0.48), (0, -0.85), (0.52, -0.48), (0, -0.78)], WHITE)])),
    "gondola": ("sky", [L(-0.5, -0.95, 0.5, -0.75, BLACK, 0.03), L(0, -0.85, 0, -0.62, BLACK, 0.03),
                        R(-0.22, -0.62, 0.22, -0.15, RED), R(-0.16, -0.55, 0.16, -0.35, LTBLUE)]),
    "eagle": ("sky", [P([(-0.5, -0.5), (-0.1, -0.62), (0, -0.55), (0.1, -0.62), (0.5, -0.5), (0.1, -0.45), (0, -0.35),
                         (-0.1, -0.45)], DKBROWN), E(-0.06, -0.66, 0.06, -0.54, WHITE)]),
    # nature
    "golf_flag": ("ground", [L(0, 0, 0, -1, WHITE, 0.03), P([(0, -1), (0.4, -0.88), (0, -0.76)], YELLOW),
                             E(-0.12, -0.05, 0.12, 0.02, BLACK)]),
    "golf_cart": ("ground", [R(-0.45, -0.45, 0.45, -0.15, WHITE), R(-0.47, -0.8, 0.47, -0.74, WHITE),
                             L(-0.4, -0.75, -0.4, -0.45, GREY, 0.03), L(0.4, -0.75, 0.4, -0.45, GREY, 0.03),
                             E(-0.4, -0.22, -0.2, 0, BLACK), E(0.2, -0.22, 0.4, 0, BLACK)]),
    "golfer": ("ground", _figure(LTBLUE, (230, 230, 220), [L(0.12, -0.55, 0.4, -0.02, GREY, 0.03)])),
    "deer": ("ground", [E(-0.35, -0.58, 0.3, -0.3, BROWN), *[L(x, -0.4, x, 0, BROWN, 0.04) for x in (-0.28, -0.15, 0.1, 0.22)],
                        L(0.25, -0.5, 0.32, -0.75, BROWN, 0.06), E(0.24, -0.85, 0.44, -0.7, BROWN),
                        L(0.3, -0.85, 0.2, -1.0, DKBROWN, 0.025), L(0.38, -0.85, 0.48, -1.0, DKBROWN, 0.025)]),
    "mushroom": ("ground", [R(-0.1, -0.4, 0.1, 0, CREAM),
                            P([(-0.42, -0.38), (-0.3, -0.6), (0, -0.7), (0.3, -0.6), (0.42, -0.38)], RED),
                            E(-0.22, -0.6, -0.12, -0.5, WHITE), E(0.08, -0.62, 0.18, -0.52, WHITE)]),
    "wooden_cabin": ("ground", [R(-0.45, -0.5, 0.45, 0, (150, 95, 50)),
                                *[L(-0.45, y, 0.45, y, DKBROWN, 0.02) for y in (-0.4, -0.3, -0.2, -0.1)],
                                P([(-0.52, -0.5), (0, -0.8), (0.52, -0.5)], (90, 60, 35)), R(-0.08, -0.3, 0.08, 0, DKBROWN)]),
    "hiker": ("ground", _figure(GREEN, BROWN, [R(-0.3, -0.8, -0.12, -0.45, ORANGE), L(0.2, -0.6, 0.3, 0, DKBROWN, 0.03)])),
    "rowboat": ("ground", [P([(-0.5, -0.22), (0.5, -0.22), (0.35, 0), (-0.35, 0)], (150, 60, 40)),
                           R(-0.4, -0.22, 0.4, -0.17, DKBROWN),
                           L(-0.3, -0.25, -0.55, 0.02, BROWN, 0.03), L(0.3, -0.25, 0.55, 0.02, BROWN, 0.03)]),
    "duck": ("ground", [E(-0.35, -0.35, 0.25, 0, (110, 85, 60)), E(0.1, -0.6, 0.35, -0.35, DKGREEN),
                        P([(0.33, -0.5), (0.48, -0.46), (0.33, -0.42)], YELLOW)]),
    "jetty": ("ground", [R(-0.5, -0.22, 0.5, -0.12, BROWN),
                         *[L(x, -0.22, x, -0.12, DKBROWN, 0.02) for x in (-0.3, -0.1, 0.1, 0.3)],
                         *[R(x, -0.12, x + 0.05, 0, DKBROWN) for x in (-0.45, -0.05, 0.38)]]),
    "wine_barrel": ("ground", [E(-0.35, -0.72, 0.35, 0, (130, 70, 40)), L(-0.33, -0.55, 0.33, -0.55, DKGREY, 0.04),
                               L(-0.33, -0.17, 0.33, -0.17, DKGREY, 0.04), E(-0.3, -0.76, 0.3, -0.62, (100, 55, 30))]),
    "grapes": ("ground", [P([(0, -1), (0.35, -0.9), (0.05, -0.78)], GREEN),
                          *[E(x - 0.11, y - 0.11, x + 0.11, y + 0.11, PURPLE) for x, y in
                            [(-0.2, -0.7), (0, -0.7), (0.2, -0.7), (-0.1, -0.5), (0.1, -0.5), (0, -0.3), (0, -0.12)]]]),
    "farmhouse": ("ground", _house(CREAM, (190, 80, 50))),
    "tractor": ("ground", [R(-0.4, -0.5, 0.2, -0.2, GREEN), R(-0.1, -0.85, 0.2, -0.5, GREEN),
                           R(-0.05, -0.8, 0.15, -0.55, LTBLUE), E(-0.05, -0.5, 0.45, 0, BLACK),
                           E(0.12, -0.33, 0.28, -0.17, YELLOW), E(-0.48, -0.22, -0.26, 0, BLACK)]),
    # city
    "street_lamp": ("ground", [L(0, 0, 0, -0.9, BLACK, 0.05), L(0, -0.9, 0.2, -0.9, BLACK, 0.04),
                               E(0.1, -0.95, 0.32, -0.75, YELLOW)]),
    "taxi": ("ground", _vehicle(YELLOW, extra=[R(-0.08, -0.62, 0.08, -0.55, BLACK)])),
    "billboard": ("ground", [L(-0.3, 0, -0.3, -0.5, DKGREY, 0.05), L(0.3, 0, 0.3, -0.5, DKGREY, 0.05),
                             R(-0.5, -1, 0.5, -0.5, WHITE), R(-0.45, -0.95, 0, -0.55, RED), R(0, -0.95, 0.45, -0.55, BLUE)]),
    "crane": ("ground", [L(0, 0, 0, -1, YELLOW, 0.06), L(-0.5, -0.95, 0.5, -0.95, YELLOW, 0.05),
                         L(0.4, -0.95, 0.4, -0.6, BLACK, 0.02), R(-0.08, -0.9, 0.1, -0.8, DKGREY)]),
    "cafe_umbrella": ("ground", _umbrella(DKGREEN, CREAM) + [R(-0.25, -0.35, 0.25, -0.3, WHITE)]),
    "pigeon": ("ground", [E(-0.3, -0.35, 0.2, 0, GREY), E(0.1, -0.5, 0.3, -0.3, (100, 100, 110)),
                          P([(-0.3, -0.2), (-0.5, -0.3), (-0.45, -0.1)], DKGREY), P([(0.28, -0.42), (0.38, -0.4), (0.28, -0.37)], ORANGE)]),
    "tour_bus": ("ground", _vehicle(RED, long=True, extra=[R(-0.5, -0.62, 0.5, -0.5, (220, 60, 60))])),
    "river_boat": ("ground", [R(-0.5, -0.2, 0.5, 0, NAVY), R(-0.4, -0.45, 0.35, -0.2, WHITE),
                              R(-0.35, -0.38, 0.3, -0.3, NAVY)]),
    "tram": ("ground", _vehicle(GREEN, long=True, extra=[L(0, -0.5, 0.1, -0.8, BLACK, 0.02),
                                                         L(-0.2, -0.8, 0.4, -0.8, BLACK, 0.02)])),
    # heritage
    "banner": ("ground", [L(0, 0, 0, -1, DKGREY, 0.04), R(0.02, -1, 0.34, -0.45, PURPLE), E(0.1, -0.8, 0.26, -0.64, GOLD)]),
    "drawbridge": ("ground", [R(-0.38, -0.8, 0.38, 0, DKGREY), R(-0.3, -0.7, 0.3, 0, (110, 75, 40)),
                              *[L(x, -0.7, x, 0, DKBROWN, 0.02) for x in (-0.15, 0, 0.15)],
                              L(-0.3, -0.7, -0.45, -0.95, BLACK, 0.02), L(0.3, -0.7, 0.45, -0.95, BLACK, 0.02)]),
    "knight_statue": ("ground", [R(-0.3, -0.25, 0.3, 0, GREY), R(-0.12, -0.7, 0.12, -0.25, (160, 160, 165)),
                                 E(-0.09, -0.86, 0.09, -0.7, (160, 160, 165)), P([(0, -0.86), (0.1, -1), (0.05, -0.84)], RED),
                                 L(0.18, -0.75, 0.18, -0.25, SILVER, 0.03)]),
    "cannon": ("ground", [P([(-0.4, -0.35), (0.45, -0.62), (0.5, -0.52), (-0.35, -0.25)], BLACK),
                          E(-0.3, -0.35, 0.05, 0, BROWN), E(-0.16, -0.21, -0.09, -0.14, DKGREY)]),
    "swan": ("ground", [E(-0.4, -0.35, 0.3, 0, WHITE), L(0.15, -0.25, 0.25, -0.75, WHITE, 0.07),
                        E(0.18, -0.85, 0.34, -0.7, WHITE), P([(0.32, -0.8), (0.45, -0.76), (0.32, -0.73)], ORANGE)]),
    # desert
    "camel": ("ground", [E(-0.35, -0.65, 0.3, -0.35, TAN), E(-0.2, -0.82, 0.1, -0.55, TAN),
                         *[L(x, -0.45, x, 0, TAN, 0.05) for x in (-0.25, -0.1, 0.1, 0.22)],
                         L(0.25, -0.5, 0.38, -0.82, TAN, 0.07), E(0.3, -0.92, 0.5, -0.78, TAN)]),
    "cactus": ("ground", [R(-0.08, -1, 0.08, 0, GREEN), R(-0.35, -0.65, -0.25, -0.35, GREEN),
                          R(-0.35, -0.42, -0.08, -0.33, GREEN), R(0.25, -0.8, 0.35, -0.5, GREEN),
                          R(0.08, -0.58, 0.35, -0.5, GREEN)]),
    "bedouin_tent": ("ground", [P([(-0.5, 0), (-0.3, -0.6), (0, -0.7), (0.3, -0.6), (0.5, 0)], (160, 90, 50)),
                                R(-0.35, -0.4, 0.35, -0.33, CREAM), P([(-0.1, 0), (0, -0.35), (0.1, 0)], DKBROWN)]),
    "date_palm": ("ground", _palm(DKGREEN, (140, 100, 60), [E(0.02, -0.84, 0.2, -0.7, ORANGE)])),
    "dune_buggy": ("ground", [R(-0.45, -0.35, 0.45, -0.15, ORANGE), L(-0.3, -0.35, -0.15, -0.7, BLACK, 0.04),
                              L(-0.15, -0.7, 0.2, -0.7, BLACK, 0.04), L(0.2, -0.7, 0.3, -0.35, BLACK, 0.04),
                              E(-0.5, -0.3, -0.15, 0.02, BLACK), E(0.15, -0.3, 0.5, 0.02, BLACK)]),
    "minaret": ("ground", [R(-0.1, -0.9, 0.1, 0, CREAM), R(-0.16, -0.66, 0.16, -0.6, TAN),
                           E(-0.1, -1.0, 0.1, -0.86, GOLD), L(0, -1.0, 0, -1.08, GOLD, 0.02)]),
    # hotel interiors
    "bedside_lamp": ("ground", [R(-0.05, -0.6, 0.05, 0, GOLD), E(-0.2, -0.08, 0.2, 0.02, GOLD),
                                P([(-0.3, -0.6), (0.3, -0.6), (0.2, -0.95), (-0.2, -0.95)], CREAM)]),
    "painting": ("wall", [R(-0.5, -0.8, 0.5, -0.1, GOLD), R(-0.42, -0.72, 0.42, -0.18, LTBLUE),
                          P([(-0.42, -0.18), (-0.1, -0.55), (0.2, -0.3), (0.42, -0.45), (0.42, -0.18)], GREEN),
                          E(0.15, -0.68, 0.3, -0.55, YELLOW)]),
    "wardrobe": ("ground", [R(-0.35, -1, 0.35, 0, (140, 90, 50)), L(0, -1, 0, 0, DKBROWN, 0.02),
                            E(-0.08, -0.55, -0.03, -0.5, GOLD), E(0.03, -0.55, 0.08, -0.5, GOLD)]),
    "armchair": ("ground", [R(-0.4, -0.85, 0.4, -0.4, (150, 40, 60)), R(-0.45, -0.4, 0.45, -0.15, (150, 40, 60)),
                            R(-0.5, -0.55, -0.35, -0.1, (120, 30, 50)), R(0.35, -0.55, 0.5, -0.1, (120, 30, 50)),
                            L(-0.4, -0.15, -0.4, 0, DKBROWN, 0.04), L(0.4, -0.15, 0.4, 0, DKBROWN, 0.04)]),
    "bathrobe": ("wall", [L(-0.2, -0.95, 0.2, -0.95, GREY, 0.03),
                          P([(-0.35, -0.9), (0.35, -0.9), (0.45, 0), (-0.45, 0)], (232, 232, 245)),
                          R(-0.4, -0.5, 0.4, -0.44, LTBLUE), L(-0.15, -0.9, 0, -0.6, GREY, 0.02),
                          L(0.15, -0.9, 0, -0.6, GREY, 0.02)]),
    "bath_towel": ("wall", [L(-0.5, -0.92, 0.5, -0.92, SILVER, 0.04), R(-0.4, -0.9, 0.4, -0.05, (240, 150, 120)),
                            R(-0.4, -0.25, 0.4, -0.18, WHITE)]),
    "soap_dish": ("ground", [E(-0.4, -0.25, 0.4, 0, WHITE), E(-0.2, -0.32, 0.2, -0.1, PINK),
                             E(0.15, -0.55, 0.27, -0.43, LTBLUE), E(-0.05, -0.65, 0.05, -0.55, LTBLUE)]),
    "shower_head": ("ceiling", [L(-0.5, -1, 0, -1, SILVER, 0.05), L(0, -1, 0, -0.82, SILVER, 0.05),
                                E(-0.22, -0.86, 0.22, -0.7, SILVER),
                                *[L(x, -0.7, x * 1.4, 0, LTBLUE, 0.015) for x in (-0.15, -0.05, 0.05, 0.15)]]),
    "chandelier": ("ceiling", [L(0, -1, 0, -0.6, GOLD, 0.03), E(-0.45, -0.65, 0.45, -0.45, GOLD),
                               *[E(x - 0.06, -0.75, x + 0.06, -0.62, YELLOW) for x in (-0.35, -0.12, 0.12, 0.35)],
                               *[E(x - 0.04, -0.45, x + 0.04, -0.3, (250, 250, 220)) for x in (-0.3, 0, 0.3)]]),
    "wine_glass": ("ground", [E(-0.22, -1, 0.22, -0.55, (235, 235, 245)), E(-0.18, -0.8, 0.18, -0.58, (130, 20, 40)),
                              L(0, -0.56, 0, -0.05, (220, 220, 230), 0.03), E(-0.18, -0.07, 0.18, 0.02, (220, 220, 230))]),
    "dinner_candle": ("ground", [R(-0.15, -0.1, 0.15, 0, SILVER), L(0, -0.1, 0, -0.2, SILVER, 0.05),
                                 R(-0.06, -0.85, 0.06, -0.2, WHITE), E(-0.05, -1, 0.05, -0.86, ORANGE)]),
    "waiter": ("ground", _figure(BLACK, BLACK, [R(-0.06, -0.82, 0.06, -0.5, WHITE), E(0.1, -0.62, 0.5, -0.55, SILVER)])),
    "desk_bell": ("ground", [R(-0.35, -0.12, 0.35, 0, DKGREY), P([(-0.28, -0.12), (-0.2, -0.4), (0, -0.48),
                                                                   (0.2, -0.4), (0.28, -0.12)], GOLD),
                             L(0, -0.48, 0, -0.58, GOLD, 0.04)]),
    "key_rack": ("wall", [R(-0.45, -0.8, 0.45, -0.2, BROWN),
                          *[R(x - 0.04, y, x + 0.04, y + 0.12, GOLD) for x in (-0.3, -0.1, 0.1, 0.3) for y in (-0.7, -0.45)]]),
    "wall_clock": ("wall", [E(-0.4, -0.9, 0.4, -0.1, BLACK), E(-0.35, -0.85, 0.35, -0.15, WHITE),
                            L(0, -0.5, 0, -0.78, BLACK, 0.03), L(0, -0.5, 0.2, -0.45, BLACK, 0.03)]),
    "receptionist": ("ground", _figure(NAVY, NAVY, [P([(-0.1, -0.82), (0.1, -0.82), (0, -0.7)], RED)])),
    "sofa": ("ground", [R(-0.5, -0.7, 0.5, -0.4, (60, 90, 140)), R(-0.5, -0.45, 0.5, -0.12, (60, 90, 140)),
                        R(-0.5, -0.55, -0.4, -0.12, (45, 70, 115)), R(0.4, -0.55, 0.5, -0.12, (45, 70, 115)),
                        L(-0.45, -0.12, -0.45, 0, DKBROWN, 0.03), L(0.45, -0.12, 0.45, 0, DKBROWN, 0.03)]),
    "grand_piano": ("ground", [P([(-0.5, -0.5), (0.3, -0.5), (0.5, -0.35), (0.3, -0.25), (-0.5, -0.25)], BLACK),
                               R(-0.5, -0.3, -0.1, -0.25, WHITE), L(-0.45, -0.5, 0.2, -0.85, BLACK, 0.02),
                               L(-0.4, -0.25, -0.4, 0, BLACK, 0.04), L(0.3, -0.25, 0.3, 0, BLACK, 0.04)]),
    "flower_vase": ("ground", [P([(-0.15, 0), (-0.22, -0.3), (-0.1, -0.45), (0.1, -0.45), (0.22, -0.3), (0.15, 0)], BLUE),
                               *[L(0, -0.45, x, -0.85, GREEN, 0.02) for x in (-0.25, 0, 0.25)],
                               E(-0.33, -0.95, -0.17, -0.8, PINK), E(-0.08, -1, 0.08, -0.85, YELLOW),
                               E(0.17, -0.95, 0.33, -0.8, RED)]),
    "luggage_cart": ("ground", [R(-0.45, -0.15, 0.45, -0.08, GOLD), L(-0.4, -0.1, -0.4, -0.9, GOLD, 0.03),
                                L(0.4, -0.1, 0.4, -0.9, GOLD, 0.03), L(-0.4, -0.9, 0.4, -0.9, GOLD, 0.03),
                                R(-0.3, -0.5, 0.05, -0.15, (90, 60, 120)), R(0.08, -0.4, 0.32, -0.15, (60, 120, 90)),
                                E(-0.4, -0.08, -0.28, 0.02, BLACK), E(0.28, -0.08, 0.4, 0.02, BLACK)]),
    "fridge": ("ground", [R(-0.3, -1, 0.3, 0, (232, 234, 238)), L(-0.3, -0.65, 0.3, -0.65, DKGREY, 0.02),
                          L(0.2, -0.9, 0.2, -0.72, DKGREY, 0.03), L(0.2, -0.55, 0.2, -0.3, DKGREY, 0.03)]),
    "kettle": ("ground", [E(-0.3, -0.6, 0.3, 0, RED), P([(0.25, -0.35), (0.5, -0.55), (0.28, -0.25)], RED),
                          L(-0.2, -0.6, 0.2, -0.6, BLACK, 0.05), L(-0.2, -0.6, -0.25, -0.8, BLACK, 0.04),
                          L(-0.25, -0.8, 0.15, -0.8, BLACK, 0.04)]),
    "microwave": ("ground", [R(-0.5, -0.5, 0.5, 0, DKGREY), R(-0.42, -0.42, 0.15, -0.08, BLACK),
                             *[E(0.27, y, 0.37, y + 0.08, SILVER) for y in (-0.4, -0.25, -0.1)]]),
    "fruit_bowl": ("ground", [E(-0.2, -0.45, 0.05, -0.2, ORANGE), E(0.0, -0.5, 0.25, -0.25, (230, 40, 40)),
                              E(-0.35, -0.38, -0.12, -0.16, YELLOW), E(0.15, -0.4, 0.38, -0.18, GREEN),
                              P([(-0.45, -0.25), (0.45, -0.25), (0.3, 0), (-0.3, 0)], WHITE)]),
    "balcony": ("wall", [R(-0.5, -0.4, 0.5, -0.33, GREY), *[L(x, -0.33, x, -0.05, BLACK, 0.02)
                                                            for x in (-0.45, -0.3, -0.15, 0, 0.15, 0.3, 0.45)],
                         L(-0.5, -0.05, 0.5, -0.05, BLACK, 0.03), R(-0.3, -0.5, 0.3, -0.4, RED)]),
    "awning": ("wall", [P([(-0.5 + 0.2 * i, -0.8), (-0.3 + 0.2 * i, -0.8), (-0.28 + 0.22 * i, -0.5),
                           (-0.5 + 0.22 * i, -0.5)], RED if i % 2 else WHITE) for i in range(5)]),
    "doorman": ("ground", _figure((150, 30, 40), BLACK, [R(-0.1, -1.08, 0.1, -0.95, BLACK),
                                                         E(-0.02, -0.7, 0.03, -0.65, GOLD), E(-0.02, -0.58, 0.03, -0.53, GOLD)])),
    "parked_car": ("ground", _vehicle(BLUE)),
    "hotel_flag": ("ground", [L(-0.3, 0, -0.3, -1, SILVER, 0.03), R(-0.28, -1, 0.3, -0.62, NAVY),
                              R(-0.28, -0.84, 0.3, -0.78, GOLD)]),
}
ZONES = {"ground": (0.72, 0.97, 0.22, 0.36), "sky": (0.2, 0.42, 0.2, 0.3), "wall": (0.4, 0.58, 0.2, 0.3),
         "ceiling": (0.25, 0.35, 0.2, 0.28)}  # foot's y range (share of height), size range (share of min side)


def draw_element(img: Image.Image, d: ImageDraw.ImageDraw, rng: np.random.Generator, name: str,
                 x_range: tuple[float, float]) -> None:
    """Draw element ``name`` (:data:`ELEMENT_ART`) with its foot somewhere in ``x_range``
    (shares of the width) and its zone's band, colours jittered."""
    w, h = img.size
    zone, ops = ELEMENT_ART[name]
    y_lo, y_hi, s_lo, s_hi = ZONES[zone]
    s = min(w, h) * rng.uniform(s_lo, s_hi)
    x0 = w * rng.uniform(*x_range)
    y0 = h * rng.uniform(y_lo, y_hi)
    flip = -1.0 if rng.random() < 0.5 else 1.0

    def pt(x, y):
        return (x0 + flip * x * s, y0 + y * s)

    for kind, g, col in ops:
        c = _c(rng, col, 12)
        if kind == "line":
            d.line([pt(g[0], g[1]), pt(g[2], g[3])], fill=c, width=max(1, int(round(g[4] * s))))
        elif kind == "poly":
            d.polygon([pt(x, y) for x, y in g], fill=c)
        else:
            (ax, ay), (bx, by) = pt(g[0], g[1]), pt(g[2], g[3])
            box = [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]
            (d.rectangle if kind == "rect" else d.ellipse)(box, fill=c)


SCENES: dict[str, Callable] = {f.__name__: f for f in [
    beach, coast, open_sea, outdoor_pool, indoor_pool, hot_tub, golf_course, ski_slope, snowy_mountain,
    forest, lake, vineyard, city_skyline, tower, bridge, castle, desert, bedroom, bathroom, restaurant,
    reception, foyer, kitchen, facade]}


def render_scene(category: str, rng: np.random.Generator, width: int, height: int,
                 elements: list[str] | tuple[str, ...] = ()) -> Image.Image:
    """Draw one scene of ``category`` at ``width`` x ``height``, then ``elements`` (names of
    :data:`ELEMENT_ART`, side by side), with lighting and sensor noise."""
    img = Image.new("RGB", (int(width), int(height)))
    d = ImageDraw.Draw(img)
    SCENES[category](img, d, rng)
    k = len(elements)
    for i, name in enumerate(elements):
        draw_element(img, d, rng, name, (0.12 + 0.76 * (i + 0.15) / k, 0.12 + 0.76 * (i + 0.85) / k))
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.85, 1.15)))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.8, 1.25)))
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 3, (img.height, img.width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


DEGRADATIONS = ["blur", "noise", "dark", "overexposed", "tilt", "flat"]


def compose(img: Image.Image, light: float) -> Image.Image:
    """The photographer's light, ``light`` in [0, 1]: from dull (colour 0.6, contrast 0.85)
    to vivid and punchy (colour 1.4, contrast 1.15). Milder than the ``flat`` degradation,
    and seen through the scene's own colours and lighting, which vary too."""
    img = ImageEnhance.Color(img).enhance(0.6 + 0.8 * light)
    return ImageEnhance.Contrast(img).enhance(0.85 + 0.3 * light)


def degrade(img: Image.Image, rng: np.random.Generator, rate: float) -> tuple[Image.Image, float, str]:
    """Draw the photo's light (:func:`compose`), then maybe apply one or two degradations;
    returns the image, its hidden aesthetic score in [1, 10] (7 to 9.5 by the light, less
    2.7 to 4.5 per degradation by its severity) and the degradations' names ("" for none)."""
    score = float(rng.uniform(7.0, 9.5))  # the clean photo's score, drawn as its light
    img = compose(img, (score - 7.0) / 2.5)
    applied = []
    if rng.random() < rate:
        k = 1 if rng.random() < 0.7 else 2
        for name in rng.choice(DEGRADATIONS, size=k, replace=False):
            s = float(rng.uniform(0.4, 1.0))  # severity
            if name == "blur":
                img = img.filter(ImageFilter.GaussianBlur(radius=0.8 + 2.5 * s))
            elif name == "noise":
                arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 8 + 25 * s, (img.height, img.width, 3))
                img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
            elif name == "dark":
                img = ImageEnhance.Brightness(img).enhance(1.0 - 0.6 * s)
            elif name == "overexposed":
                img = ImageEnhance.Brightness(img).enhance(1.0 + 0.8 * s)
            elif name == "tilt":
                img = img.rotate(float(rng.choice([-1, 1]) * (3 + 9 * s)), resample=Image.BILINEAR,
                                 expand=False, fillcolor=(0, 0, 0))
            elif name == "flat":
                img = ImageEnhance.Contrast(img).enhance(1.0 - 0.6 * s)
            score -= 1.5 + 3.0 * s
            applied.append(str(name))
    return img, float(np.clip(score, 1.0, 10.0)), "+".join(applied)


def encode_jpeg(img: Image.Image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), optimize=False)
    return buf.getvalue()
