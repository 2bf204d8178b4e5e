import os

import pytest

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from vistarank import io
from vistarank import tables as T
from vistarank.jobs import generate_world
from vistarank.world import catalog as C
from conftest import make_cfg

SMALL = ["world.sizes.tiny.n_sales=8", "world.sizes.tiny.n_hotels=6", "world.sizes.tiny.n_users=25",
         "world.sizes.tiny.n_days=5", "world.sizes.tiny.images_per_sale_max=4"]


def _world(spark, root, *extra):
    cfg = make_cfg(str(root), *SMALL, *extra)
    generate_world.run(spark, cfg)
    return cfg


def _images(cfg):
    base = os.path.join(cfg.lakehouse.root, "raw", "images")
    out = {}
    for d, _, files in os.walk(base):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), base)] = fh.read()
    return out


def _tables(spark, cfg):
    return {t.name: io.read(spark, cfg, t, allow_truth=True).drop("uri")
            for t in (T.SALES, T.USERS, T.VISITS, T.PURCHASES, T.TRUTH_IMAGES, T.TRUTH_USERS)}


@pytest.mark.pipeline
def test_same_seed_same_world_different_seed_different_world(spark, tmp_path):
    a = _world(spark, tmp_path / "a")
    b = _world(spark, tmp_path / "b")
    c = _world(spark, tmp_path / "c", "world.seed=43")
    ta, tb, tc = _tables(spark, a), _tables(spark, b), _tables(spark, c)
    for name in ta:
        assertDataFrameEqual(ta[name], tb[name])
    assert _images(a) == _images(b)
    assert ta["sales"].orderBy("sale_id").collect() != tc["sales"].orderBy("sale_id").collect()
    assert _images(a) != _images(c)


@pytest.mark.pipeline
def test_rerun_is_idempotent(spark, tmp_path):
    cfg = _world(spark, tmp_path / "w")
    before = {n: df.count() for n, df in _tables(spark, cfg).items()}
    files = _images(cfg)
    generate_world.run(spark, cfg)
    assert {n: df.count() for n, df in _tables(spark, cfg).items()} == before
    assert _images(cfg) == files


def test_visits_and_purchases_only_of_open_sales(spark, tiny_world):
    cfg = tiny_world
    sales = io.read(spark, cfg, T.SALES)
    for table, day in ((T.VISITS, "visit_date"), (T.PURCHASES, "purchase_date")):
        df = io.read(spark, cfg, table).join(sales, "sale_id")
        assert df.count() > 0
        assert df.where((F.col(day) < F.col("open_date")) | (F.col(day) > F.col("close_date"))).count() == 0
    # a purchase follows a visit of the same sale by the same user on that day
    v = io.read(spark, cfg, T.VISITS).select("user_id", "sale_id", F.col("visit_date").alias("purchase_date"))
    p = io.read(spark, cfg, T.PURCHASES)
    assert p.join(v, ["user_id", "sale_id", "purchase_date"], "left_anti").count() == 0


def test_world_shape(spark, tiny_world):
    cfg = tiny_world
    dims = cfg.world.dims()
    sales = io.read(spark, cfg, T.SALES)
    assert sales.count() == dims.n_sales
    assert sales.where((F.col("n_images") < dims.images_per_sale_min) |
                       (F.col("n_images") > dims.images_per_sale_max)).count() == 0
    days = sales.select(F.datediff("close_date", "open_date") + 1).collect()
    assert all(cfg.world.sale_days_min <= d[0] <= cfg.world.sale_days_max for d in days)
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    assert truth.count() == sales.agg(F.sum("n_images")).first()[0]
    assert set(r.category for r in truth.select("category").distinct().collect()) <= set(C.CATEGORY_NAMES)
    # every file named in the truth exists; hotels that come back reuse their photos
    for r in truth.select("uri").collect():
        assert os.path.exists(r.uri[len("file:"):])
    assert truth.groupBy("photo_key").count().where("count > 1").count() > 0
    assert truth.where("aesthetic < 6").count() > 0  # degraded photos exist
    areas = {r.area for r in truth.select("area").distinct().collect()} - {None}
    assert areas <= set(C.AREAS)


def test_every_table_is_documented():
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "tables.md")) as fh:
        doc = fh.read()
    for table in T.ALL_TABLES.values():
        assert f"## {table.name}" in doc, f"docs/tables.md lacks {table.name}"
        section = doc.split(f"## {table.name}", 1)[1].split("\n## ", 1)[0]
        for col in table.columns:
            assert f"`{col}`" in section, f"docs/tables.md: {table.name}.{col} undocumented"


@pytest.mark.pipeline
def test_a_new_world_drops_the_image_tables_of_the_old_one(spark, tmp_path):
    # the files of a regenerated world replace the old ones under the same paths; an
    # incremental ingest (by path) would otherwise keep the old files' image ids
    from vistarank.jobs import ingest_images

    cfg = _world(spark, tmp_path / "w")
    ingest_images.run(spark, cfg)
    old = {r["uri"]: r["image_id"] for r in io.read(spark, cfg, T.IMAGE_SOURCES).collect()}
    other = make_cfg(cfg.lakehouse.root, "world.seed=43")
    res = generate_world.run(spark, other)
    assert not io.exists(spark, other, T.IMAGES) and not io.exists(spark, other, T.IMAGE_SOURCES)
    assert any("dropped tables of the previous world" in n for n in res.notes)
    ingest_images.run(spark, other)
    new = {r["uri"]: r["image_id"] for r in io.read(spark, other, T.IMAGE_SOURCES).collect()}
    assert any(old.get(u) not in (None, i) for u, i in new.items())  # re-rendered files: new ids
    assert io.read(spark, other, T.IMAGES).count() == io.read(spark, other, T.IMAGE_SOURCES).select(
        "image_id").distinct().count()  # no image left over from the old world


def test_the_demo_tag_space_is_scenes_and_their_elements():
    """Over 100 tags; an element belongs to the scenes of one taste theme (or to the hotel's
    interiors); a rendered training photo is tagged with its scene and the 1 to 3 elements
    drawn over it, which the renderer can draw."""
    import numpy as np

    from vistarank.udfs.render import ELEMENT_ART
    from vistarank.vision.scene_model import render_dataset

    assert len(C.TAG_NAMES) >= 100 and len(set(C.TAG_NAMES)) == len(C.TAG_NAMES)
    assert set(C.ELEMENT_NAMES) == set(ELEMENT_ART)
    for element in C.ELEMENT_NAMES:
        themes = {C.CATEGORIES[c][0] for c, pool in C.ELEMENTS.items() if element in pool}
        assert len(themes) == 1, (element, themes)
    x, y = render_dataset(2, 32, seed=3)
    assert x.shape == (48, 32, 32, 3) and y.shape == (48, len(C.TAG_NAMES))
    n_cat = len(C.CATEGORY_NAMES)
    for i, row in enumerate(y):
        cat = C.CATEGORY_NAMES[i // 2]
        assert np.flatnonzero(row[:n_cat]).tolist() == [C.CATEGORY_NAMES.index(cat)]
        elements = [C.TAG_NAMES[j] for j in np.flatnonzero(row[n_cat:]) + n_cat]
        assert 1 <= len(elements) <= 3 and set(elements) <= set(C.ELEMENTS[cat]), (cat, elements)
    x2, y2 = render_dataset(2, 32, seed=3)
    assert (x2 == x).all() and (y2 == y).all()  # seeded


def test_sale_taste_shares_are_the_worlds_own_term(spark, tiny_world):
    """The truth table gives back the taste term the world draws visits from, for every
    sale, those of a returning hotel too (they show its photos again under the same keys)."""
    import numpy as np

    from vistarank.world import generate as G

    cfg = tiny_world
    sales = G.make_sales(cfg, G.make_hotels(cfg))
    assert sales["hotel_id"].duplicated().any()  # a hotel with more than one sale
    expected = dict(zip(sales["sale_id"], G.sale_theme_vectors(sales)))
    got = {s: np.zeros(len(C.TASTE_THEMES)) for s in expected}
    rows = G.sale_taste_shares(io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)).collect()
    for r in rows:
        got[r["sale_id"]][C.TASTE_THEMES.index(r["theme"])] = r["share"]
    assert any(v.sum() > 0 for v in expected.values())
    for s, v in expected.items():
        np.testing.assert_allclose(got[s], v, atol=1e-12, err_msg=s)


def test_a_photos_hidden_aesthetic_score_is_in_its_pixels():
    """A clean photo's score (7 to 9.5) is drawn as its light: over renders of one scene its
    colourfulness and contrast rise with it (in the old world the score was a draw no pixel
    showed, and no head could order clean photos); each degradation lowers the score by 2.7
    to 4.5 points."""
    import numpy as np
    from scipy.stats import spearmanr

    from vistarank.udfs.quality import QUALITY_FEATURES, quality_of_bytes
    from vistarank.udfs.render import compose, degrade, encode_jpeg, render_scene

    colour, contrast = QUALITY_FEATURES.index("colourfulness"), QUALITY_FEATURES.index("luma_std")
    for cat in ("beach", "bedroom", "snowy_mountain"):
        scores, stats = [], []
        for i in range(30):
            rng = np.random.default_rng([3, i])
            img, score, flaws = degrade(render_scene(cat, rng, 96, 64), rng, 0.0)
            assert flaws == "" and 7.0 <= score <= 9.5
            scores.append(score)
            stats.append(quality_of_bytes(encode_jpeg(img), 64))
        stats = np.array(stats)
        assert spearmanr(scores, stats[:, colour])[0] > 0.5, cat
        assert spearmanr(scores, stats[:, contrast])[0] > 0.3, cat
    # the same scene, dull and vivid: the vivid one is more colourful
    base = render_scene("beach", np.random.default_rng(5), 96, 64)
    dull, vivid = (quality_of_bytes(encode_jpeg(compose(base, v)), 64)[colour] for v in (0.0, 1.0))
    assert vivid > 1.5 * dull
    for i in range(20):
        rng = np.random.default_rng([4, i])
        _, score, flaws = degrade(render_scene("coast", rng, 96, 64), rng, 1.0)
        assert flaws and 1.0 <= score <= 9.5 - 2.7
