"""The csv and parquet converters of a user's own log: columns by name, implicit or explicit,
Unix or ISO times, one-line errors naming file, line and column, nothing written on failure."""

import sys

import numpy as np
import pytest

from tfrec_fashion.data.converters import CONVERTERS
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import ConfigError, DataError, MissingDataError

ORDERS = ("customer;sku;qty;ordered_at\n"
          "c2;SKU-9;1;2024-03-01T10:00:00\n"
          "c1;SKU-9;2;1709290000\n"
          "c1;SKU-1;1;2024-03-02 08:00:00\n"
          "\n"
          "c1;SKU-9;1;2024-03-03T00:00:00Z\n")


def test_csv_log_becomes_implicit_interactions(tmp_path):
    source = tmp_path / "orders.csv"
    source.write_text(ORDERS)
    dataset = CONVERTERS["csv"](source, tmp_path / "out", user_col="customer", item_col="sku",
                                timestamp_col="ordered_at", sep=";")
    saved = FashionDataset.load(tmp_path / "out")
    assert saved.counts() == dataset.counts() == {"users": 2, "items": 2, "interactions": 4}
    assert saved.ratings is None and saved.name == "orders"
    np.testing.assert_array_equal(saved.users.ids[saved.interactions.user], ["c2", "c1", "c1", "c1"])
    np.testing.assert_array_equal(saved.interactions.timestamp,
                                  [1709287200, 1709290000, 1709366400, 1709424000])
    assert saved.metadata["columns"] == {"user": "customer", "item": "sku",
                                         "timestamp": "ordered_at"}


def test_csv_ratings_with_range_and_row_order_times(tmp_path):
    source = tmp_path / "stars.tsv"
    source.write_text("u\ti\tstars\n1\ta\t4.5\n1\tb\t1\n2\ta\t3\n")
    CONVERTERS["csv"](source, tmp_path / "out", user_col="u", item_col="i", rating_col="stars",
                      sep="tab", rating_range=(0.5, 5))
    saved = FashionDataset.load(tmp_path / "out")
    assert saved.metadata["rating_range"] == [0.5, 5.0]
    np.testing.assert_array_equal(saved.ratings.value, [4.5, 1, 3])
    assert saved.ratings.timestamp is None and saved.interactions is None
    CONVERTERS["csv"](source, tmp_path / "out2", user_col="u", item_col="i", rating_col="stars",
                      sep="\\t")
    assert FashionDataset.load(tmp_path / "out2").metadata["rating_range"] == [1.0, 4.5]


@pytest.mark.parametrize("text, options, error, message", [
    ("", {}, DataError, r"x.csv: empty file; expected a header row"),
    ("user_id,item_id\n", {}, DataError, r"x.csv: no rows after the header"),
    ("user_id,sku\n1,2\n", {}, DataError,
     r"x.csv, line 1: missing column\(s\) 'item_id' \(--item-col\); the header has "
     r"\['user_id', 'sku'\]"),
    ("user_id;item_id\n1;2\n", {}, DataError,
     r"missing column\(s\) 'user_id' \(--user-col\), 'item_id' \(--item-col\).*is the "
     r"separator 'semicolon'\? \(--sep\)"),
    ("user_id,item_id,r\n1,2,4\n1,3,good\n", {"rating_col": "r"}, DataError,
     r"x.csv, line 3: r 'good' is not a number"),
    ("user_id,item_id,r\n1,2,4\n1,3,6\n", {"rating_col": "r", "rating_range": (1, 5)}, DataError,
     r"x.csv, line 3: r '6' is outside 1..5"),
    ("user_id,item_id,r\n1,2,4\n1,2,5\n", {"rating_col": "r"}, DataError,
     r"x.csv, line 3: repeats the \(user, item\) pair of line 2"),
    ("user_id,item_id,t\n1,2,5\n1,3,soon\n", {"timestamp_col": "t"}, DataError,
     r"x.csv, line 3: t 'soon' is neither Unix seconds nor an ISO 8601 date"),
    ("user_id,item_id\n1,2\n,3\n", {}, DataError, r"x.csv, line 3: empty user_id"),
    ("user_id,item_id\n1,2\n1,2,3\n", {}, DataError, r"x.csv, line 3: 3 fields, the header has 2"),
    ("user_id,item_id\n1,2\n", {"sep": "::"}, ConfigError, r"the separator must be one character"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, text, options, error, message):
    source = tmp_path / "x.csv"
    source.write_text(text)
    with pytest.raises(error, match=message) as info:
        CONVERTERS["csv"](source, tmp_path / "out", **options)
    assert "\n" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_parquet_log_with_a_timestamp_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"user": ["u1", "u2", "u1"], "item": [7, 8, 8],
                      "rating": [5.0, 3.0, 4.0],
                      "when": pa.array(np.array([10, 20, 30], "datetime64[s]"))})
    pq.write_table(table, tmp_path / "log.parquet")
    CONVERTERS["parquet"](tmp_path / "log.parquet", tmp_path / "out", user_col="user",
                          item_col="item", rating_col="rating", timestamp_col="when")
    saved = FashionDataset.load(tmp_path / "out")
    np.testing.assert_array_equal(saved.items.ids, ["7", "8"])
    np.testing.assert_array_equal(saved.ratings.timestamp, [10, 20, 30])
    assert saved.metadata["rating_range"] == [3.0, 5.0]
    pq.write_table(pa.table({"user": ["u1", "u2"], "item": ["x", "y"], "rating": [4.0, None]}),
                   tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet, row 2: rating is empty \(null\)"):
        CONVERTERS["parquet"](tmp_path / "bad.parquet", tmp_path / "o2", user_col="user",
                              item_col="item", rating_col="rating")
    with pytest.raises(DataError, match=r"bad.parquet: missing column\(s\) 'user_id'"):
        CONVERTERS["parquet"](tmp_path / "bad.parquet", tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


def test_parquet_without_pyarrow_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "log.parquet").write_bytes(b"PAR1")
    with pytest.raises(MissingDataError, match=r"needs the pyarrow package: pip install "
                                               r"'tfrec-fashion\[parquet\]'"):
        CONVERTERS["parquet"](tmp_path / "log.parquet", tmp_path / "out")
