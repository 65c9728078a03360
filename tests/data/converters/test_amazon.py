"""Amazon reviews (2014 loose JSON / 2018 JSON) + metadata + VBPR .b features -> dataset layout."""

import gzip
import shutil

import numpy as np
import pytest

from tfrec_fashion.data.converters import CONVERTERS, amazon
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError

REVIEWS_2014 = "amazon_2014/reviews_Clothing_Shoes_and_Jewelry_5.json"
META_2014 = "amazon_2014/meta_Clothing_Shoes_and_Jewelry.json"


@pytest.fixture
def features_2014(tmp_path, write_features, feature_vector):
    """Vectors for three reviewed items (not B0000C321X) plus one unreviewed asin."""
    return write_features(tmp_path / "image_features_Clothing_Shoes_and_Jewelry.b", [
        (b"0000031887", feature_vector(0)), (b"B000UNUSED", feature_vector(9)),
        (b"B00004T3SN", feature_vector(1)), (b"B00007GDFV", feature_vector(2))])


def test_2014_reviews_metadata_and_features_round_trip(fixtures, features_2014, tmp_path,
                                                       feature_vector):
    out = tmp_path / "amazon"
    CONVERTERS["amazon"](fixtures / REVIEWS_2014, fixtures / META_2014, features_2014, out)
    data = FashionDataset.load(out)

    assert data.users.ids.tolist() == ["A1KLRMWW2FWPL4", "A2G5TCU2WDFZ65", "A3AB45PJ3Q2ZGV"]
    assert data.items.ids.tolist() == ["0000031887", "B00004T3SN", "B00007GDFV"]
    assert data.items.category.tolist() == ["Active Skirts", "Jeans", "Sandals"]
    assert data.items.attributes["brand"].tolist() == ["Boutique Cutie", "", "Skechers"]
    assert data.items.attributes["category_path"][1] == \
        "Clothing, Shoes & Jewelry > Men > Clothing > Jeans"
    assert data.items.attributes["image_url"][0] == \
        "http://ecx.images-amazon.com/images/I/314qZjYe%2BYL._SY300_.jpg"
    assert data.items.titles.tolist() == [
        "Ballet Dress-Up Fairy Tutu", "Levi's Men's 505 Regular Fit Jean", ""]
    # Reviews of B0000C321X (no feature vector) are dropped with the user left without any;
    # the repeated review of 0000031887 by A2G5... keeps the earlier one (time and rating).
    t = data.interactions
    assert data.users.ids[t.user].tolist() == [
        "A1KLRMWW2FWPL4", "A2G5TCU2WDFZ65", "A1KLRMWW2FWPL4", "A3AB45PJ3Q2ZGV"]
    assert data.items.ids[t.item].tolist() == ["0000031887", "0000031887", "B00004T3SN",
                                               "B00007GDFV"]
    assert t.timestamp.tolist() == [1297468800, 1290000000, 1300000000, 1310000000]
    assert data.ratings.value.tolist() == [5.0, 3.0, 4.0, 2.0]
    assert data.metadata["rating_range"] == [1.0, 5.0]
    assert data.items.features.dtype == np.float32
    np.testing.assert_array_equal(
        data.items.features, np.stack([feature_vector(0), feature_vector(1), feature_vector(2)]))
    assert data.metadata["skipped"] == {"items_without_features": 1,
                                        "reviews_of_items_without_features": 2,
                                        "users_left_without_reviews": 1}
    stats = data.metadata["stats"]
    assert stats["duplicate_reviews_merged"] == 1
    assert stats["metadata_records_of_unreviewed_items"] == 1
    assert stats["items_without_metadata"] == 1
    assert stats["feature_unused_records"] == 1 and stats["feature_records"] == 4


def test_missing_features_zeros_keeps_every_item(fixtures, features_2014, tmp_path):
    out = tmp_path / "amazon"
    amazon.convert(fixtures / REVIEWS_2014, output_dir=out, metadata_path=fixtures / META_2014,
                   features_path=features_2014, missing_features="zeros")
    data = FashionDataset.load(out)
    assert data.items.ids.tolist() == ["0000031887", "B00004T3SN", "B00007GDFV", "B0000C321X"]
    assert data.items.category.tolist()[3] == "unknown"
    assert data.items.attributes["has_feature"].tolist() == [1, 1, 1, 0]
    assert not data.items.features[3].any()
    assert data.n_users == 4 and len(data.interactions) == 6


def test_2018_gzipped_strict_json(fixtures, tmp_path):
    sources = []
    for name in ("Clothing_Shoes_and_Jewelry_5.json", "meta_Clothing_Shoes_and_Jewelry.json"):
        target = tmp_path / f"{name}.gz"
        with (fixtures / "amazon_2018" / name).open("rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        sources.append(target)
    data = amazon.convert(*sources, tmp_path / "out")
    loaded = FashionDataset.load(tmp_path / "out")
    assert loaded.name == data.name == "amazon_Clothing_Shoes_and_Jewelry_5"
    assert loaded.items.ids.tolist() == ["0700026657", "B00005A0Y6"]
    assert loaded.items.category.tolist() == ["Blouses & Button-Down Shirts", "Boots"]
    assert loaded.items.titles.tolist() == ["Cuff Roll Blouse", "Work Boot"]  # first record kept
    assert loaded.items.attributes["image_url"].tolist() == [
        "https://images-na.ssl-images-amazon.com/images/I/41aBlouse._SS40_.jpg", ""]
    assert loaded.users.ids.tolist() == ["A1HP7NVNPFMA4N", "A1JB7HFWHRYHT7"]
    assert loaded.interactions.timestamp.tolist() == [1445040000, 1408924800, 1450000000]
    assert loaded.ratings.value.tolist() == [5.0, 4.0, 3.0]
    assert loaded.items.features is None and not (tmp_path / "out" / "item_features.npy").exists()
    assert loaded.metadata["stats"]["duplicate_metadata_records"] == 1


def _corrupt(tmp_path, fixtures, line: int, text: str):
    lines = (fixtures / REVIEWS_2014).read_text().splitlines()
    lines[line - 1] = text
    path = tmp_path / "reviews_bad.json"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, text, message", [
    (2, '{"reviewerID": "A2G5TCU2WDFZ65", "asin": ', r"reviews_bad\.json, line 2: neither JSON"),
    (3, '{"reviewerID": "A1", "asin": "B00004T3SN", "overall": 4.0}',
     r"reviews_bad\.json, line 3: missing field\(s\) \['unixReviewTime'\]"),
    (4, '{"reviewerID": "A1", "asin": "B1", "overall": 6.0, "unixReviewTime": 1}',
     r"reviews_bad\.json, line 4: overall 6\.0 is outside \[1\.0, 5\.0\]"),
    (1, '{"reviewerID": "A1", "asin": "B1", "overall": "five", "unixReviewTime": 1}',
     r"reviews_bad\.json, line 1: overall 'five' is not a number"),
    (5, "['a', 'list']", r"reviews_bad\.json, line 5: expected an object"),
])
def test_malformed_reviews_name_file_and_line(fixtures, tmp_path, line, text, message):
    path = _corrupt(tmp_path, fixtures, line, text)
    with pytest.raises(DataError, match=message):
        amazon.convert(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_malformed_metadata_names_file_and_line(fixtures, tmp_path):
    meta = tmp_path / "meta_bad.json"
    meta.write_text("{'asin': '0000031887', 'categories': 'Clothing'}\n")
    with pytest.raises(DataError, match=r"meta_bad\.json, line 1: 'categories' should be"):
        amazon.convert(fixtures / REVIEWS_2014, meta, tmp_path / "out")


def test_truncated_feature_record_names_record_and_offset(fixtures, tmp_path, write_features,
                                                          feature_vector):
    path = write_features(tmp_path / "image_features_X.b", [(b"0000031887", feature_vector(0))])
    with path.open("ab") as handle:
        handle.write(b"B00004T3SN" + feature_vector(1).tobytes()[:100])
    with pytest.raises(DataError, match=r"image_features_X\.b, record 1 \(byte 16394\): "
                                        r"truncated, 110 of 16394 bytes"):
        amazon.convert(fixtures / REVIEWS_2014, path, tmp_path / "out")


def test_repeated_feature_id_with_another_vector_is_an_error(fixtures, tmp_path, write_features,
                                                             feature_vector):
    path = write_features(tmp_path / "f.b", [(b"0000031887", feature_vector(0)),
                                             (b"0000031887", feature_vector(5))])
    with pytest.raises(DataError, match=r"f\.b, record 1: item '0000031887' appears again"):
        amazon.convert(fixtures / REVIEWS_2014, path, tmp_path / "out")


def test_output_folder_must_be_new_or_empty(fixtures, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "triplets.csv").write_text("stale")
    with pytest.raises(DataError, match="exists and is not empty"):
        amazon.convert(fixtures / REVIEWS_2014, tmp_path / "out")


def test_bad_option_says_what_was_received(fixtures, tmp_path):
    with pytest.raises(ValueError, match="Received: missing_features='mean'"):
        amazon.convert(fixtures / REVIEWS_2014, tmp_path / "out", missing_features="mean")
