"""Polyvore Outfits (Vasileva et al. 2018 release) -> items, outfits by slot, questions, triplets."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tfrec_fashion.data.converters import CONVERTERS, polyvore_outfits
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError

RELEASE = "polyvore_outfits/polyvore_outfits"


def test_round_trip(fixtures, tmp_path):
    CONVERTERS["polyvore_outfits"](fixtures / RELEASE, tmp_path / "out")
    out = tmp_path / "out"
    data = FashionDataset.load(out, load_images=True)

    assert data.n_users == 0 and data.triplets is None
    assert data.items.ids.tolist() == [str(i) for i in range(1001, 1011)]  # 9999: in no outfit
    assert data.items.category.tolist() == ["top", "bottom", "shoes", "jewellery", "jewellery",
                                            "top", "bottom", "shoes", "bags", "shoes"]
    attributes = data.items.attributes
    assert attributes["semantic_category"].tolist()[:4] == ["tops", "bottoms", "shoes", "jewellery"]
    assert attributes["fine_category"].tolist()[:4] == ["Tops", "Jeans", "Sneakers", "Necklaces"]
    assert attributes["category_id"].tolist()[:4] == [11, 27, 41, 106]  # numeric column on load
    assert attributes["url_name"][4] == "silver hoop earrings"
    assert data.items.titles.tolist()[3:5] == ["Gold necklace", ""]
    source = np.asarray(Image.open(fixtures / RELEASE / "images/1009.jpg").convert("RGB"))
    np.testing.assert_array_equal(data.items.images[8], source)

    outfits = data.outfits
    assert outfits.slots == ("top", "bottom", "shoes", "bags", "jewellery", "jewellery_2")
    assert outfits.ids.tolist() == ["210750761", "199244701", "111111111", "222222222",
                                    "333333333"]
    assert outfits.user.tolist() == [-1] * 5
    ids = lambda row: [data.items.ids[i] if i >= 0 else "" for i in row]
    assert [ids(row) for row in outfits.items] == [
        ["1001", "1002", "1003", "", "1004", "1005"], ["1006", "1007", "1008", "", "", ""],
        ["", "1002", "", "1009", "", ""], ["1006", "1007", "1010", "", "", ""],
        ["1001", "", "1003", "", "", ""]]
    with (out / "outfit_splits.csv").open() as handle:
        assert [r["split"] for r in csv.DictReader(handle)] == [
            "train", "train", "valid", "test", "test"]
    assert json.loads((out / "fitb.json").read_text()) == [
        {"split": "test", "question": ["1006", "1007"], "answers": ["1003", "1010"],
         "answer": 1, "blank_position": 3}]
    assert json.loads((out / "compatibility.json").read_text()) == [
        {"split": "test", "label": 1, "items": ["1006", "1007", "1010"]},
        {"split": "test", "label": 0, "items": ["1006", "1003"]}]


def test_triplets_follow_the_complete_the_look_rule(fixtures, tmp_path):
    polyvore_outfits.convert(fixtures / RELEASE, tmp_path / "out", images="none", triplets=True)
    data = FashionDataset.load(tmp_path / "out")
    ids = data.items.ids
    triplets = list(zip(ids[data.triplets.anchor], ids[data.triplets.positive],
                        ids[data.triplets.negative]))
    # Train outfits only; each negative is the sole item of the positive's category outside
    # the anchor's outfit; jewellery positives have none (both jewellery items share an outfit).
    assert triplets == [("1001", "1002", "1007"), ("1001", "1003", "1008"),
                        ("1002", "1003", "1008"), ("1006", "1007", "1002"),
                        ("1006", "1008", "1003"), ("1007", "1008", "1003")]
    assert data.metadata["skipped"] == {"triplet_pairs_without_negative": 6}


def test_one_split(fixtures, tmp_path):
    polyvore_outfits.convert(fixtures / RELEASE, tmp_path / "out", images="none",
                             splits=("train",))
    data = FashionDataset.load(tmp_path / "out")
    assert data.outfits.ids.tolist() == ["210750761", "199244701"]
    assert not (tmp_path / "out" / "fitb.json").exists()
    with pytest.raises(ValueError, match="containing `triplet_splits`"):
        polyvore_outfits.convert(fixtures / RELEASE, tmp_path / "x", splits=("test",),
                                 triplets=True)


def _edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value, indent=1))


@pytest.mark.parametrize("file, change, message", [
    ("nondisjoint/train.json", lambda v: v[1]["items"].append({"item_id": "4242", "index": 4}),
     r"train\.json, outfit 1 \(set_id 199244701\): item '4242' has no semantic_category"),
    ("nondisjoint/test.json", lambda v: v[0]["items"][0].pop("index"),
     r"test\.json, outfit 0 \(set_id 222222222\): item should be"),
    ("nondisjoint/fill_in_blank_test.json", lambda v: v[0]["answers"].append("222222222_9"),
     r"fill_in_blank_test\.json, question 0: unknown item '222222222_9'"),
    ("nondisjoint/valid.json", lambda v: v.append(v[0]),
     r"set_id\(s\) \['111111111'\] appear in more than one outfit"),
])
def test_malformed_json_names_file_and_record(copy_fixture, tmp_path, file, change, message):
    release = copy_fixture("polyvore_outfits") / "polyvore_outfits"
    _edit_json(release / file, change)
    with pytest.raises(DataError, match=message):
        polyvore_outfits.convert(release, tmp_path / "out", images="none")


@pytest.mark.parametrize("file, text, message", [
    ("nondisjoint/compatibility_test.txt", "1 222222222_1 222222222_2\n2 222222222_1\n",
     r"compatibility_test\.txt, line 2: expected '<0\|1> <set_id>_<index> \.\.\.'"),
    ("nondisjoint/compatibility_test.txt", "1 222222222_1 210750761_1\n",
     r"compatibility_test\.txt, line 1: unknown item '210750761_1'"),
    ("nondisjoint/train.json", '[\n {"set_id": "1",\n  "items": [}\n]\n',
     r"train\.json, line 3: not valid JSON"),
    ("categories.csv", "11,Tops\n", r"categories\.csv, line 1: expected category_id,name"),
])
def test_malformed_text_names_file_and_line(copy_fixture, tmp_path, file, text, message):
    release = copy_fixture("polyvore_outfits") / "polyvore_outfits"
    (release / file).write_text(text)
    with pytest.raises(DataError, match=message):
        polyvore_outfits.convert(release, tmp_path / "out", images="none")
