"""DVBPR's partitioned .npy (Python 2 pickle, read with encoding="bytes") -> dataset + images."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from tfrec_fashion.data.converters import CONVERTERS, dvbpr
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def _image(colour, fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, fmt)
    return buffer.getvalue()


def _action(item, user, time):
    return {b"productid": item, b"reviewerID": user, b"unixReviewTime": time}


def _parts():
    """AmazonFashion6ImgPartitioned-style parts: 3 users, 4 items, one-hot 6-class categories."""
    train = {0: [_action(0, b"A1", 100), _action(1, b"A1", 110)], 1: [_action(2, b"B2", 200)],
             2: [_action(3, b"C3", 300)]}
    validation = {0: [_action(2, b"A1", 120)], 1: [_action(0, b"B2", 210)],
                  2: [_action(1, b"C3", 310)]}
    test = {0: [_action(3, b"A1", 130)], 1: [_action(3, b"B2", 220)], 2: [_action(0, b"C3", 320)]}
    one_hot = [[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]]
    items = {i: {b"imgs": _image(COLOURS[i], "PNG" if i == 3 else "JPEG"), b"c": one_hot[i],
                 b"asin": f"B000{i}".encode()} for i in range(4)}
    return [train, validation, test, items, 3, 4]


def test_round_trip_with_partition_and_images(tmp_path, write_python2_npy):
    parts = _parts()
    path = write_python2_npy(tmp_path / "AmazonFashion6ImgPartitioned.npy", parts)
    with pytest.raises(UnicodeError):  # a genuine Python 2 pickle: needs encoding="bytes"
        np.load(path, allow_pickle=True)
    CONVERTERS["dvbpr"](path, tmp_path / "out")
    data = FashionDataset.load(tmp_path / "out", load_images=True)

    assert data.name == "AmazonFashion6ImgPartitioned"
    assert data.users.ids.tolist() == ["0", "1", "2"]
    assert data.users.features["reviewer_id"].tolist() == ["A1", "B2", "C3"]
    assert data.items.ids.tolist() == ["0", "1", "2", "3"]
    assert data.items.category.tolist() == ["class_0", "class_3", "class_3", "class_5"]
    assert data.items.attributes["asin"].tolist() == ["B0000", "B0001", "B0002", "B0003"]
    t = data.interactions
    assert t.user.tolist() == [0, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert t.item.tolist() == [0, 1, 2, 3, 2, 0, 1, 3, 3, 0]
    assert t.timestamp.tolist() == [100, 110, 200, 300, 120, 210, 310, 130, 220, 320]
    with (tmp_path / "out" / "interaction_splits.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["split"] for r in rows] == ["train"] * 4 + ["validation"] * 3 + ["test"] * 3
    assert [(r["user_id"], r["item_id"]) for r in rows] == [
        (str(u), str(i)) for u, i in zip(t.user, t.item)]
    # Images are the stored bytes, unchanged, named by their real type.
    assert data.items.image_paths.tolist() == [
        "images/0.jpg", "images/1.jpg", "images/2.jpg", "images/3.png"]
    for i, relative in enumerate(data.items.image_paths):
        assert (tmp_path / "out" / relative).read_bytes() == parts[3][i][b"imgs"]
    assert data.items.images.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(data.items.images[3], np.full((8, 8, 3), COLOURS[3]))
    assert data.metadata["stats"] == {"train_actions": 4, "validation_actions": 3,
                                      "test_actions": 3}


def test_category_names_list_catalogue_and_no_images(tmp_path, write_python2_npy):
    parts = _parts()
    parts[3] = [parts[3][i] for i in range(4)]  # Item as a list works too
    path = write_python2_npy(tmp_path / "data.npy", parts)
    names = ["men tops", "men bottoms", "men shoes", "women tops", "women bottoms", "women shoes"]
    dvbpr.convert(path, tmp_path / "out", images="none", category_names=names)
    data = FashionDataset.load(tmp_path / "out")
    assert data.items.category.tolist() == ["men tops", "women tops", "women tops", "women shoes"]
    assert data.items.image_paths is None and not (tmp_path / "out" / "images").exists()


def _corrupted(change):
    parts = _parts()
    change(parts)
    return parts


@pytest.mark.parametrize("change, message", [
    (lambda p: p[0][1].__setitem__(0, {b"productid": 9}),
     r"data\.npy: user_train\[1\]\[0\]: productid 9 is outside \[0, itemnum=4\)"),
    (lambda p: p[2][2].__setitem__(0, {b"asin": b"B0001"}),
     r"data\.npy: user_test\[2\]\[0\]: missing b'productid'"),
    (lambda p: p[1].__setitem__(7, []),
     r"data\.npy: user_validation has user 7, outside \[0, usernum=3\)"),
    (lambda p: p[3][2].__setitem__(b"c", [0, 1, 1, 0, 0, 0]),
     r"data\.npy: Item\[2\]: category b'c' should be a one-hot vector"),
    (lambda p: p[3][1].__setitem__(b"imgs", b"\xff\xd8\xff\xe0 truncated jpeg"),
     r"data\.npy: Item\[1\]: image bytes do not decode"),
    (lambda p: p.pop(), r"data\.npy: expected the 6-part DVBPR layout"),
    (lambda p: p.__setitem__(5, 5), r"data\.npy: Item \(part 3\) should hold itemnum=5 entries"),
])
def test_malformed_records_name_file_and_record(tmp_path, write_python2_npy, change, message):
    path = write_python2_npy(tmp_path / "data.npy", _corrupted(change))
    with pytest.raises(DataError, match=message):
        dvbpr.convert(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_image_can_be_skipped_and_counted(tmp_path, write_python2_npy):
    parts = _corrupted(lambda p: p[3][1].__setitem__(b"imgs", b"not an image"))
    path = write_python2_npy(tmp_path / "data.npy", parts)
    dvbpr.convert(path, tmp_path / "out", bad_images="skip")
    data = FashionDataset.load(tmp_path / "out")
    assert data.items.image_paths.tolist() == ["images/0.jpg", "", "images/2.jpg", "images/3.png"]
    assert data.metadata["skipped"] == {"items_with_bad_images": 1}


def test_not_an_npy_file(tmp_path):
    path = tmp_path / "data.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"data\.npy: not a readable \.npy file"):
        dvbpr.convert(path, tmp_path / "out")
