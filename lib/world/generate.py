"""generate_world: a seeded synthetic flash-sale travel market.

Hotels show photos of their surroundings and interiors; flash sales (about a week)
offer a hotel, reusing its photos (exact duplicates, or re-encoded/resized near
duplicates when a hotel comes back); users have a hidden taste over scene themes, a
budget and an activity level, and visit and buy only sales open that day, drawn
from taste (what the pictures show), price fit, stars, photo quality and a
per-sale popularity effect. The pictures therefore carry signal that the
recommenders can find, as in the seeds' market.

Every random draw comes from a generator seeded by (world seed, entity, id), so the
output does not depend on partitioning: same seed, same tables and same bytes.
Catalogue-sized things (hotels, sales) are made on the driver; images, users,
visits and purchases are made in the workers (``mapInPandas``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vistarank import tables as T
from vistarank.config import Config, is_uri
from vistarank.world import catalog as C

log = logging.getLogger(__name__)

# stream ids for seeding: (seed, STREAM, id)
_HOTEL, _SALE, _PHOTO, _VARIANT, _USER, _VISIT = 1, 2, 3, 4, 5, 6


def local_image_root(cfg: Config) -> str:
    """Where the generator writes image files: a local or FUSE path (dbfs:/ maps to /dbfs)."""
    root = cfg.images_root()
    if root.startswith("dbfs:/"):
        return "/dbfs/" + root[len("dbfs:/"):].lstrip("/")
    if root.startswith("file:"):
        return root[len("file:"):]
    if is_uri(root):
        raise ValueError(f"generate_world writes image files to a local or FUSE-mounted path, not {root!r}; "
                         "set ingest.source to such a path")
    return os.path.abspath(root)


def _weighted(rng: np.random.Generator, weights: dict[str, float], size: int) -> list[str]:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return [keys[i] for i in rng.choice(len(keys), size=size, p=p / p.sum())]


def make_hotels(cfg: Config) -> pd.DataFrame:
    """Hotels with a destination, stars, a base price and a photo set (category per photo)."""
    dims = cfg.world.dims()
    rows = []
    for h in range(dims.n_hotels):
        rng = np.random.default_rng([cfg.world.seed, _HOTEL, h])
        dest, country, region, dtype = C.DESTINATIONS[int(rng.integers(len(C.DESTINATIONS)))]
        stars = int(rng.choice([2, 3, 4, 5], p=[0.15, 0.4, 0.33, 0.12]))
        factor = {"city": 1.2, "spa": 1.1, "mountain": 1.15, "desert": 1.3}.get(dtype, 1.0)
        base_price = round(float((40 + 45 * stars) * factor * rng.lognormal(0, 0.25)), 2)
        n_photos = dims.images_per_sale_max + 2
        n_out = max(1, int(round(n_photos * rng.uniform(0.35, 0.6))))
        photos = (_weighted(rng, C.DESTINATION_TYPES[dtype], n_out)
                  + _weighted(rng, C.INTERIOR_WEIGHTS, n_photos - n_out))
        rng.shuffle(photos)
        name = f"{rng.choice(C.HOTEL_PREFIX)} {rng.choice(C.HOTEL_ROOT)} {dest}"
        rows.append(dict(hotel_num=h, hotel_id=f"H{h:05d}", hotel=name, destination=dest, country=country,
                         region=region, destination_type=dtype, stars=stars, base_price=base_price,
                         photos=photos))
    return pd.DataFrame(rows)


def make_sales(cfg: Config, hotels: pd.DataFrame) -> pd.DataFrame:
    """Flash sales: a hotel, about a week open, 3-15 of its photos, a discounted price."""
    w, dims = cfg.world, cfg.world.dims()
    rows = []
    seen_hotel: dict[int, int] = {}
    for s in range(dims.n_sales):
        rng = np.random.default_rng([w.seed, _SALE, s])
        h = int(rng.integers(len(hotels))) if s >= len(hotels) else s
        hotel = hotels.iloc[h]
        repeat = seen_hotel.get(h, 0)
        seen_hotel[h] = repeat + 1
        days = int(rng.integers(w.sale_days_min, w.sale_days_max + 1))
        open_offset = int(rng.integers(-w.sale_days_max + 1, dims.n_days))
        open_date = w.start_date + dt.timedelta(days=open_offset)
        n_img = int(rng.integers(dims.images_per_sale_min, dims.images_per_sale_max + 1))
        idx = sorted(rng.choice(len(hotel.photos), size=min(n_img, len(hotel.photos)), replace=False).tolist())
        cats = [hotel.photos[i] for i in idx]
        words = []
        for c in dict.fromkeys(cats):
            words.extend(C.CATEGORY_WORDS[c][: 1 + int(rng.integers(2))])
        desc = (f"{hotel.stars}-star {hotel.destination_type} hotel in {hotel.destination}, {hotel.country}: "
                + ", ".join(words[:8]) + ".")
        price = round(float(hotel.base_price * rng.uniform(0.5, 0.8)), 2)
        rows.append(dict(sale_num=s, sale_id=f"S{s:05d}", hotel_num=int(hotel.hotel_num), hotel_id=hotel.hotel_id,
                         hotel=hotel.hotel, destination=hotel.destination, country=hotel.country,
                         region=hotel.region, destination_type=hotel.destination_type, stars=int(hotel.stars),
                         price=price, open_date=open_date, close_date=open_date + dt.timedelta(days=days - 1),
                         description=desc, n_images=len(idx), photo_idx=json.dumps(idx),
                         categories=json.dumps(cats), repeat=repeat))
    return pd.DataFrame(rows)


def sale_theme_vectors(sales: pd.DataFrame) -> np.ndarray:
    """Hidden: each sale's share of taste themes among its photos (rows sum to 1 or 0)."""
    out = np.zeros((len(sales), len(C.TASTE_THEMES)))
    for i, cats in enumerate(sales["categories"]):
        for c in json.loads(cats):
            theme = C.CATEGORIES[c][0]
            if theme in C.TASTE_THEMES:
                out[i, C.TASTE_THEMES.index(theme)] += 1
    sums = out.sum(axis=1, keepdims=True)
    return np.divide(out, sums, out=np.zeros_like(out), where=sums > 0)


# ------------------------------------------------------------------------ images (workers)
def _render_images_fn(seed: int, root: str, min_side: int, max_side: int, near_dup_rate: float,
                      degraded_rate: float):
    """mapInPandas function: render every photo of each sale, write the JPEG, yield truth rows."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from PIL import Image

        from vistarank.udfs.render import degrade, encode_jpeg, render_scene

        for pdf in batches:
            rows = []
            for sale in pdf.itertuples(index=False):
                folder = os.path.join(root, sale.sale_id)
                os.makedirs(folder, exist_ok=True)
                for k, (pidx, cat) in enumerate(zip(json.loads(sale.photo_idx), json.loads(sale.categories))):
                    prng = np.random.default_rng([seed, _PHOTO, sale.hotel_num, pidx])
                    long_side = int(prng.integers(max(min_side, int(max_side * 0.6)), max_side + 1))
                    aspect = float(prng.uniform(1.0, 1.6))
                    wh = (long_side, max(min_side, int(long_side / aspect)))
                    if prng.random() < 0.2:  # portrait
                        wh = (wh[1], wh[0])
                    img = render_scene(cat, prng, *wh, C.sample_elements(cat, prng))
                    img, aesthetic, degradation = degrade(img, prng, degraded_rate)
                    quality = int(prng.integers(80, 94))
                    variant = "original"
                    vrng = np.random.default_rng([seed, _VARIANT, sale.sale_num, k])
                    if sale.repeat > 0 and vrng.random() < near_dup_rate:
                        if vrng.random() < 0.5:
                            variant = "reencoded"
                            quality = int(vrng.integers(60, 78))
                        else:
                            variant = "resized"
                            f = float(vrng.uniform(0.6, 0.85))
                            img = img.resize((max(min_side, int(img.width * f)), max(min_side, int(img.height * f))),
                                             Image.BILINEAR)
                    path = os.path.join(folder, f"{sale.sale_id}_{k:02d}.jpg")
                    data = encode_jpeg(img, quality)
                    with open(path, "wb") as fh:
                        fh.write(data)
                    theme, area = C.CATEGORIES[cat]
                    rows.append(dict(sale_id=sale.sale_id, uri="file:" + path,
                                     photo_key=f"{sale.hotel_id}/{pidx}", category=cat, theme=theme, area=area,
                                     aesthetic=round(aesthetic, 3), degradation=degradation, variant=variant))
            yield pd.DataFrame(rows, columns=T.TRUTH_IMAGES.columns)

    return fn


# ------------------------------------------------------------------------ users and behaviour (workers)
def _users_fn(seed: int, start: dt.date):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            for u in pdf["id"].tolist():
                rng = np.random.default_rng([seed, _USER, u])
                taste = rng.dirichlet(np.full(len(C.TASTE_THEMES), 0.4))
                rows.append(dict(
                    user_num=u, user_id=f"U{u:06d}",
                    home_region=C.HOME_REGIONS[int(rng.integers(len(C.HOME_REGIONS)))],
                    signup_date=start - dt.timedelta(days=int(rng.integers(1, 1500))),
                    taste=json.dumps(taste.round(4).tolist()),
                    budget=round(float(rng.lognormal(np.log(110), 0.45)), 2),
                    activity=round(float(rng.beta(1.3, 6.0)), 4)))
            yield pd.DataFrame(rows)
    return fn


USER_GEN_SCHEMA = ("user_num long, user_id string, home_region string, signup_date date, taste string, "
                   "budget double, activity double")
BEHAVIOUR_SCHEMA = ("kind string, user_id string, sale_id string, ts timestamp, day date, amount double")


def sale_arrays(sales: pd.DataFrame, cfg: Config) -> dict:
    """What the behaviour simulation needs of the catalogue (small: one row per sale)."""
    rng = np.random.default_rng([cfg.world.seed, _SALE, 10**9])  # popularity stream
    start = cfg.world.start_date
    return dict(
        sale_id=sales["sale_id"].to_numpy(),
        open=np.array([(d - start).days for d in sales["open_date"]]),
        close=np.array([(d - start).days for d in sales["close_date"]]),
        price=sales["price"].to_numpy(dtype=float),
        stars=sales["stars"].to_numpy(dtype=float),
        theme=sale_theme_vectors(sales),
        popularity=rng.normal(0, 0.6, len(sales)),
        quality=sales["quality"].to_numpy(dtype=float),
    )


def _behaviour_fn(bc_sales, seed: int, start: dt.date, n_days: int, visits_per_day: float,
                  purchase_rate: float):
    """mapInPandas: each user's visits and purchases, only of sales open that day."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        s = bc_sales.value
        base = pd.Timestamp(start)
        for pdf in batches:
            out = []
            for u in pdf.itertuples(index=False):
                rng = np.random.default_rng([seed, _VISIT, u.user_num])
                taste = np.array(json.loads(u.taste))
                util = (4.0 * s["theme"] @ taste - 1.2 * np.abs(np.log(s["price"] / u.budget))
                        + 0.25 * (s["stars"] - 3) + 0.5 * s["quality"] + s["popularity"])
                bought: set[int] = set()
                active = np.flatnonzero(rng.random(n_days) < u.activity)
                for day in active:
                    open_idx = np.flatnonzero((s["open"] <= day) & (s["close"] >= day))
                    if len(open_idx) == 0:
                        continue
                    k = min(len(open_idx), 1 + int(rng.poisson(visits_per_day)))
                    p = np.exp(util[open_idx] - util[open_idx].max())
                    chosen = rng.choice(open_idx, size=k, replace=False, p=p / p.sum())
                    day_ts = base + pd.Timedelta(days=int(day))
                    secs = np.sort(rng.integers(6 * 3600, 24 * 3600, size=k))
                    for j, sec in zip(chosen, secs):
                        ts = day_ts + pd.Timedelta(seconds=int(sec))
                        out.append(("visit", u.user_id, s["sale_id"][j], ts, day_ts.date(), None))
                        p_buy = purchase_rate * 2.0 / (1.0 + np.exp(-(util[j] - 1.5)))
                        if j not in bought and rng.random() < p_buy:
                            bought.add(j)
                            nights = int(rng.integers(2, 6))
                            out.append(("purchase", u.user_id, s["sale_id"][j],
                                        ts + pd.Timedelta(seconds=int(rng.integers(60, 1800))), day_ts.date(),
                                        round(float(s["price"][j] * nights), 2)))
            yield pd.DataFrame(out, columns=["kind", "user_id", "sale_id", "ts", "day", "amount"])

    return fn


# ------------------------------------------------------------------------ the stage
@dataclass
class World:
    """The demo world's DataFrames; image files are rendered when truth_images is computed."""
    sales: DataFrame
    users: DataFrame
    truth_users: DataFrame
    truth_images: DataFrame
    users_gen: DataFrame  # users with their hidden columns, input of the behaviour simulation
    sales_pdf: pd.DataFrame  # the catalogue (one row per sale), with hidden photo categories


def prepare_image_root(cfg: Config) -> str:
    """The image folder, emptied when it is the world's own (<root>/raw/images), so that a
    rerun with another seed or size leaves no stale files."""
    root = local_image_root(cfg)
    if cfg.ingest.source is None and os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    return root


def generate_world(spark: SparkSession, cfg: Config) -> World:
    """Build every demo-world DataFrame; the job writes them (truth_images first)."""
    w, dims = cfg.world, cfg.world.dims()
    hotels = make_hotels(cfg)
    sales = make_sales(cfg, hotels)
    root = prepare_image_root(cfg)
    log.info("world %s (seed %d): %d hotels, %d sales, %d users, %d days from %s; images under %s",
             w.size, w.seed, len(hotels), len(sales), dims.n_users, dims.n_days, w.start_date, root)

    sale_cols = ["sale_num", "sale_id", "hotel_num", "hotel_id", "photo_idx", "categories", "repeat"]
    sales_tasks = spark.createDataFrame(sales[sale_cols]).repartition(dims.partitions, "sale_id")
    truth_images = sales_tasks.mapInPandas(
        _render_images_fn(w.seed, root, w.image_min_side, w.image_max_side, w.near_duplicate_rate,
                          w.degraded_rate),
        schema=T.TRUTH_IMAGES.schema)

    users_gen = (spark.range(0, dims.n_users, numPartitions=dims.partitions)
                 .mapInPandas(_users_fn(w.seed, w.start_date), schema=USER_GEN_SCHEMA))
    users = users_gen.select("user_id", "home_region", "signup_date")
    truth_users = users_gen.select(
        "user_id",
        F.map_from_arrays(F.array(*[F.lit(t) for t in C.TASTE_THEMES]),
                          F.from_json("taste", "array<double>")).alias("taste"),
        "budget", "activity")

    sales_df = spark.createDataFrame(sales[[c for c in T.SALES.columns]])
    return World(sales=sales_df, users=users, truth_users=truth_users, truth_images=truth_images,
                 users_gen=users_gen, sales_pdf=sales)


def simulate_behaviour(spark: SparkSession, cfg: Config, sales: pd.DataFrame, users_gen: DataFrame,
                       sale_quality: pd.Series) -> DataFrame:
    """Visits and purchases as one DataFrame with a ``kind`` column."""
    w, dims = cfg.world, cfg.world.dims()
    sales = sales.assign(quality=sales["sale_id"].map(sale_quality).fillna(0.0).to_numpy())
    bc = spark.sparkContext.broadcast(sale_arrays(sales, cfg))
    return users_gen.mapInPandas(
        _behaviour_fn(bc, w.seed, w.start_date, dims.n_days, w.visits_per_active_day, w.purchase_rate),
        schema=BEHAVIOUR_SCHEMA)


def split_behaviour(behaviour: DataFrame) -> tuple[DataFrame, DataFrame]:
    visits = behaviour.where(F.col("kind") == "visit").select(
        "user_id", "sale_id", F.col("ts").alias("visit_ts"), F.col("day").alias("visit_date"))
    purchases = behaviour.where(F.col("kind") == "purchase").select(
        "user_id", "sale_id", F.col("ts").alias("purchase_ts"), F.col("day").alias("purchase_date"), "amount")
    return visits, purchases


def sale_photo_quality(truth_images: DataFrame) -> DataFrame:
    """Per sale: mean hidden aesthetic, centred (a good-looking sale sells better)."""
    return truth_images.groupBy("sale_id").agg(((F.avg("aesthetic") - 7.0) / 2.0).alias("quality"))


def sale_taste_shares(truth_images: DataFrame) -> DataFrame:
    """(sale_id, theme, share): each sale's share of each taste theme among its photos, the
    hidden term the world draws visits from (:func:`sale_theme_vectors`), read back from the
    truth table. A photo counts once per sale that shows it: near-duplicate files of it
    share its ``photo_key``, and a hotel's later sales show its photos again under the same
    key, so the key is unique per sale, not across the table."""
    photos = (truth_images.where(F.col("theme").isin(*C.TASTE_THEMES))
              .dropDuplicates(["sale_id", "photo_key"]))
    return (photos.groupBy("sale_id", "theme").count()
            .withColumn("share", F.col("count") / F.sum("count").over(Window.partitionBy("sale_id")))
            .drop("count"))



# ------------------------------------------------------------------------ freshness
# how photos are drawn: 2 = scenes with elements (the rich tag space); 3 = a clean photo's
# aesthetic score drawn as its light (udfs.render.compose); a lakehouse generated by another
# version is generated again
RENDER_VERSION = 3


def fingerprint(cfg: Config) -> str:
    """What the generated world depends on (its whole config section, the render version)."""
    return json.dumps({**cfg.world.model_dump(mode="json"), "render_version": RENDER_VERSION}, sort_keys=True)


def _marker(cfg: Config) -> str:
    return os.path.join(os.path.dirname(local_image_root(cfg)), "world.json")


def is_current(spark: SparkSession, cfg: Config) -> bool:
    """True when the lakehouse holds a complete world generated from this exact config."""
    from vistarank import io

    marker = _marker(cfg)
    if not os.path.exists(marker) or not all(io.exists(spark, cfg, t) for t in (T.SALES, T.VISITS, T.PURCHASES)):
        return False
    with open(marker) as fh:
        return fh.read() == fingerprint(cfg)


def forget(cfg: Config) -> None:
    if os.path.exists(_marker(cfg)):
        os.remove(_marker(cfg))


def mark_current(cfg: Config) -> None:
    with open(_marker(cfg), "w") as fh:
        fh.write(fingerprint(cfg))
