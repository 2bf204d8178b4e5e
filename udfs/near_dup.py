"""Near-duplicate search with bounded work: multi-index hashing over the 256-bit perceptual hash.

The hash is cut into ``m`` bands. Two hashes within Hamming distance ``d`` differ, in at
least one band, in at most ``r = d // m`` bits (pigeonhole). A new image is therefore
looked up under every key within radius ``r`` of each of its bands; a stored image under
its exact band values only, and a join on (band, key) finds every pair within ``d``
exactly. The distance is then checked on the whole hash.

``m`` is chosen so that every band is at least :data:`MIN_BAND_BITS` wide: two unrelated
hashes then share a band key with probability about ``2**-40``. A catalogue of N images
gives ``keys * N * 2**-bits`` random candidates per new image (about 0.012 at N = 300 M
and d = 10), so the work per image no longer grows with the catalogue, unlike exact
pigeonhole bands (``d + 1`` bands of about 23 bits: N x 11 x 2**-23 random candidates per
image, 730 at 300 M). A distance whose lookup keys would exceed :data:`MAX_KEYS_PER_IMAGE`
cannot be served exactly with bounded work and is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import Iterator

import pandas as pd

HASH_BITS = 256
MIN_BAND_BITS = 40
MAX_KEYS_PER_IMAGE = 20_000


@dataclass(frozen=True)
class BandPlan:
    distance: int
    bands: int
    radius: int
    widths: tuple[int, ...]

    def _ball(self, width: int) -> int:
        """Keys within ``radius`` bits of one band value of ``width`` bits."""
        return sum(comb(width, i) for i in range(self.radius + 1))

    @property
    def keys_per_image(self) -> int:
        """Lookup keys of one new image: every key within ``radius`` of each band."""
        return sum(self._ball(w) for w in self.widths)

    def random_candidates(self, catalogue: int) -> float:
        """Expected candidate pairs per new image from unrelated hashes, in a catalogue of that size."""
        return sum(self._ball(w) * catalogue * 2.0 ** -w for w in self.widths)


def _best_plan(distance: int, hash_bits: int = HASH_BITS) -> BandPlan:
    """The band layout with the fewest lookup keys per image whose bands are all at least
    MIN_BAND_BITS wide (and fit a signed 64-bit key)."""
    plans = []
    for m in range(1, hash_bits // MIN_BAND_BITS + 1):
        widths = tuple(hash_bits // m + (1 if b < hash_bits % m else 0) for b in range(m))
        if min(widths) >= MIN_BAND_BITS and max(widths) <= 63:
            plans.append(BandPlan(distance, m, distance // m, widths))
    return min(plans, key=lambda p: p.keys_per_image)


def largest_servable_distance(hash_bits: int = HASH_BITS) -> int:
    d = 0
    while _best_plan(d + 1, hash_bits).keys_per_image <= MAX_KEYS_PER_IMAGE:
        d += 1
    return d


def plan_bands(distance: int, hash_bits: int = HASH_BITS) -> BandPlan:
    """The band layout for ``distance``; ValueError when it cannot be searched exactly within
    MAX_KEYS_PER_IMAGE lookup keys per image."""
    if distance < 0:
        raise ValueError("ingest.phash_max_distance must be >= 0")
    best = _best_plan(distance, hash_bits)
    if best.keys_per_image > MAX_KEYS_PER_IMAGE:
        raise ValueError(
            f"ingest.phash_max_distance={distance} cannot be searched exactly with bounded work: it needs "
            f"{best.keys_per_image:,} lookup keys per image (at most {MAX_KEYS_PER_IMAGE:,}). The largest distance "
            f"served is {largest_servable_distance(hash_bits)}; at larger distances near-duplicates are hardly "
            "duplicates (two unrelated photos differ in about 128 of 256 bits)")
    return best


def band_values(phash_hex: str, widths: tuple[int, ...]) -> list[int]:
    """The hash's bands as integers, most significant band first."""
    x = int(phash_hex, 16)
    out, shift = [], sum(widths)
    for w in widths:
        shift -= w
        out.append((x >> shift) & ((1 << w) - 1))
    return out


def lookup_keys(value: int, width: int, radius: int) -> Iterator[int]:
    """Every value within Hamming distance ``radius`` of ``value`` (``width`` bits)."""
    for r in range(radius + 1):
        for bits in combinations(range(width), r):
            v = value
            for b in bits:
                v ^= 1 << b
            yield v


KEYS_SCHEMA = "image_id string, phash string, band int, key long"


def band_columns(phash, widths: tuple[int, ...]):
    """The exact band values of a hex hash column as Spark expressions (no Python worker):
    an array of (band, key) structs equal to :func:`band_values`. Each band is cut from the
    hex digits that cover it (at most 13 digits, within a signed 64-bit long), shifted and
    masked. Stored images take this path every night, so it costs a column scan, not a
    Python round trip per catalogue row."""
    from pyspark.sql import functions as F

    out, start = [], 0
    for band, w in enumerate(widths):
        end = start + w
        lo, hi = start // 4, -(-end // 4)  # hex digits [lo, hi) cover bits [start, end)
        value = F.conv(F.substring(phash, lo + 1, hi - lo), 16, 10).cast("long")
        key = F.shiftright(value, 4 * hi - end).bitwiseAND(F.lit((1 << w) - 1))
        out.append(F.struct(F.lit(band).alias("band"), key.alias("key")))
        start = end
    return F.array(*out)


def keys_fn(widths: tuple[int, ...], radius: int):
    """mapInPandas function: (image_id, phash) rows to (image_id, phash, band, key) rows; with
    ``radius`` 0 the exact band values (stored images), else every key within the radius."""
    widths = tuple(int(w) for w in widths)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            for image_id, phash in zip(pdf["image_id"], pdf["phash"]):
                if phash is None:
                    continue
                for band, (value, w) in enumerate(zip(band_values(phash, widths), widths)):
                    rows.extend((image_id, phash, band, k) for k in lookup_keys(value, w, radius))
            yield pd.DataFrame(rows, columns=["image_id", "phash", "band", "key"])

    return run
