import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from vistarank import io
from vistarank import tables as T
from conftest import make_cfg


def _sales(spark, ids, price=100.0):
    rows = [(i, "H1", "Hotel", "Nice", "France", "south", "seaside", 4, price, dt.date(2026, 9, 1),
             dt.date(2026, 9, 7), "d", 3) for i in ids]
    return spark.createDataFrame(rows, T.SALES.schema)


def test_insert_new_is_idempotent(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    assert io.insert_new(_sales(spark, ["a", "b"]), cfg, T.SALES) == 2
    assert io.insert_new(_sales(spark, ["a", "b"]), cfg, T.SALES) == 0  # rerun: nothing twice
    assert io.insert_new(_sales(spark, ["b", "c"]), cfg, T.SALES) == 1
    got = io.read(spark, cfg, T.SALES).select("sale_id")
    assertDataFrameEqual(got, spark.createDataFrame([("a",), ("b",), ("c",)], "sale_id string"))


def test_overwrite_twice_duplicates_nothing_and_time_travel(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    io.write(_sales(spark, ["a", "b"]), cfg, T.SALES)
    io.write(_sales(spark, ["a", "b"], price=50.0), cfg, T.SALES)
    assert io.read(spark, cfg, T.SALES).count() == 2
    assert {r.price for r in io.read(spark, cfg, T.SALES).collect()} == {50.0}
    assert {r.price for r in io.read(spark, cfg, T.SALES, version=0).collect()} == {100.0}


def test_replace_where_replaces_one_partition_exactly(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    day = lambda d: dt.date(2026, 9, d)  # noqa: E731
    rows = [("u1", "s1", dt.datetime(2026, 9, 1, 10), day(1)), ("u1", "s2", dt.datetime(2026, 9, 2, 10), day(2))]
    io.write(spark.createDataFrame(rows, T.VISITS.schema), cfg, T.VISITS)
    new = [("u9", "s9", dt.datetime(2026, 9, 2, 11), day(2))]
    for _ in range(2):  # a rerun of the same date changes nothing more
        io.write(spark.createDataFrame(new, T.VISITS.schema), cfg, T.VISITS,
                 replace_where="visit_date = '2026-09-02'")
    got = sorted((r.user_id, r.sale_id) for r in io.read(spark, cfg, T.VISITS).collect())
    assert got == [("u1", "s1"), ("u9", "s9")]


def test_conform_names_missing_columns(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    with pytest.raises(io.SchemaError, match=r"sales: missing columns \['hotel_id'"):
        io.write(_sales(spark, ["a"]).drop("hotel_id"), cfg, T.SALES)


def test_truth_tables_are_hidden_from_models(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    with pytest.raises(PermissionError, match="hidden truth"):
        io.read(spark, cfg, T.TRUTH_USERS)


def test_missing_table_is_a_clear_error(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run the stage that writes it"):
        io.read(spark, cfg, T.IMAGES)
