"""Procedural scene rendering for the demo world and the demo scene model.

Every scene is drawn from a seeded ``numpy.random.Generator``: the same seed gives
the same pixels (and, encoded with the same settings, the same JPEG bytes). The
scenes are deliberately simple but varied (layout, colour, lighting, size, noise),
so that a small network must learn shape and colour cues to tell them apart.
Degradations (blur, noise, exposure, tilt, low contrast) lower a hidden aesthetic
score, which is what the aesthetics head later learns.
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


SCENES: dict[str, Callable] = {f.__name__: f for f in [
    beach, coast, open_sea, outdoor_pool, indoor_pool, hot_tub, golf_course, ski_slope, snowy_mountain,
    forest, lake, vineyard, city_skyline, tower, bridge, castle, desert, bedroom, bathroom, restaurant,
    reception, foyer, kitchen, facade]}


def render_scene(category: str, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Draw one scene of ``category`` at ``width`` x ``height`` with lighting and sensor noise."""
    img = Image.new("RGB", (int(width), int(height)))
    d = ImageDraw.Draw(img)
    SCENES[category](img, d, rng)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.85, 1.15)))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.8, 1.25)))
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 3, (img.height, img.width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


DEGRADATIONS = ["blur", "noise", "dark", "overexposed", "tilt", "flat"]


def degrade(img: Image.Image, rng: np.random.Generator, rate: float) -> tuple[Image.Image, float, str]:
    """Maybe apply one or two degradations; returns the image, a hidden aesthetic score
    in [1, 10] and the degradations' names ("" for none)."""
    score = float(rng.uniform(7.0, 9.5))  # composition quality of a clean photo
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
