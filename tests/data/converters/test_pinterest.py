"""Pinterest Shop The Look (JSON lines + category file) and Complete The Look (TSV) -> dataset."""

import csv
import json

import numpy as np
import pytest

from tfrec_fashion.data.converters import CONVERTERS, pinterest
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.images import read_image
from tfrec_fashion.errors import DataError

P1, P2, P3, P4, P5 = ("c3a84a5b9866c30390366168c00e29bf", "90d5c6dc0663662f949d3fbb12802ff5",
                      "a37599c11e0a732bfd75b899d19e6b66", "7c55f47754df8cce2586da7e68a7cd39",
                      "018a5631de33999e751dbd521816e63c")
S1, S2, S3 = ("4d7cc167db2c230118fa18106e0a9301", "ed8dc2ebd28d8bf0d9e411cba13c8841",
              "4e6b7f5aab7333fea350ae8183750cef")
A, B, C = ("a17aa812997c0c4aeff8565b3e315e8b", "9869c4ecbfd917fbe71d37527cb34b07",
           "7cb252466f7ae0b0c12fe9e5b83140d5")


def _triplet_ids(data):
    ids = data.items.ids
    t = data.triplets
    return list(zip(ids[t.anchor], ids[t.positive], ids[t.negative]))


# ----------------------------------------------------------------------------- Shop The Look
def test_stl_round_trip(fixtures, tmp_path):
    stl = fixtures / "pinterest_stl"
    CONVERTERS["pinterest"](stl / "fashion.json", stl / "fashion-cat.json", stl / "images",
                            tmp_path / "out")
    out = tmp_path / "out"
    data = FashionDataset.load(out, load_images=True)

    assert data.items.ids.tolist() == [P1, P2, P3, P4, P5]
    assert data.items.category.tolist() == ["Shoes", "Pants", "Shirts & Tops", "Shoes",
                                            "Shirts & Tops"]
    a = data.items.attributes
    assert a["category_path"][1] == "Apparel & Accessories|Clothing|Pants"
    assert a["image_url"][0] == f"http://i.pinimg.com/400x/c3/a8/4a/{P1}.jpg"
    # P2 appears in scenes 1 and 2: its attributes hold the box of its first scene.
    assert a["scene"].tolist() == [S1, S1, S1, S2, S3]
    np.testing.assert_array_equal(
        np.stack([a[f"bbox_{s}"] for s in ("left", "top", "right", "bottom")], 1)[:2],
        np.array([[0.1, 0.2, 0.5, 0.9], [0.434097, 0.859363, 0.560254, 1.0]], np.float32))
    assert data.items.images.shape == (5, 8, 8, 3)
    assert data.outfits.ids.tolist() == [S1, S2, S3]
    assert data.outfits.slots == ("Pants", "Shirts & Tops", "Shoes")
    assert data.outfits.items.tolist() == [[1, 2, 0], [1, -1, 3], [-1, 4, -1]]
    # Pants exist only in scenes holding P2, so pairs with a Pants positive have no negative.
    assert _triplet_ids(data) == [(P1, P3, P5), (P2, P3, P5)]
    assert data.metadata["skipped"] == {"repeated_scene_product_lines": 1,
                                        "triplet_pairs_without_negative": 2}
    with (out / "scene_products.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["scene"], r["product"]) for r in rows] == [
        (S1, P1), (S1, P2), (S1, P3), (S2, P4), (S2, P2), (S3, P5)]
    assert rows[4]["left"] == "0.3" and rows[4]["bottom"] == "0.9"


def test_stl_lines_may_carry_their_own_category(tmp_path):
    path = tmp_path / "fashion.json"
    path.write_text(
        f'{{"product": "{P1}", "scene": "{S1}", "bbox": [0, 0, 1, 1], "category": "Shoes"}}\n'
        f'{{"product": "{P2}", "scene": "{S1}", "bbox": [0, 0, 1, 1], "category": "Pants"}}\n')
    pinterest.convert_stl(path, tmp_path / "out", triplets=False)
    data = FashionDataset.load(tmp_path / "out")
    assert data.items.category.tolist() == ["Shoes", "Pants"] and data.triplets is None


def test_triplet_rules_hold_on_a_random_catalogue(tmp_path):
    rng = np.random.default_rng(3)
    categories = ["Shoes", "Pants", "Bags", "Hats"]
    lines, cats = [], {}
    for scene in range(40):
        for product in rng.choice(60, size=rng.integers(2, 5), replace=False):
            cats[f"p{product:031d}"] = f"Apparel|{categories[product % 4]}"
            lines.append(json.dumps({"product": f"p{product:031d}", "scene": f"s{scene:031d}",
                                     "bbox": [0.1, 0.1, 0.9, 0.9]}))
    (tmp_path / "fashion.json").write_text("\n".join(lines) + "\n")
    (tmp_path / "fashion-cat.json").write_text(json.dumps(cats))
    sources = (tmp_path / "fashion.json", tmp_path / "fashion-cat.json")
    first = pinterest.convert(*sources, tmp_path / "a", seed=7)
    again = pinterest.convert(*sources, tmp_path / "b", seed=7)
    other = pinterest.convert(*sources, tmp_path / "c", seed=8)
    assert _triplet_ids(first) == _triplet_ids(again) != _triplet_ids(other)
    members = {o: set(row[row >= 0]) for o, row in enumerate(first.outfits.items)}
    category = first.items.category
    assert len(first.triplets) > 100
    for a, p, n in zip(first.triplets.anchor, first.triplets.positive, first.triplets.negative):
        shared = [o for o, m in members.items() if a in m and p in m]
        assert shared, "anchor and positive come from one scene"
        assert category[a] != category[p] and category[n] == category[p]
        assert all(n not in members[o] for o in shared)


@pytest.mark.parametrize("line, message", [
    (f'{{"product": "{P1}", "scene": "{S1}", "bbox": [0.1, 0.2, 0.5]', "line 2: not valid JSON"),
    (f'{{"product": "{P1}", "scene": "{S1}"}}', r"line 2: missing field\(s\) \['bbox'\]"),
    (f'{{"product": "{P1}", "scene": "{S1}", "bbox": [0.6, 0.2, 0.5, 0.9]}}',
     r"line 2: bbox \[0\.6, 0\.2, 0\.5, 0\.9\] is not a normalised \(left, top, right, bottom\)"),
    (f'{{"product": "{P1}", "scene": "{S1}", "bbox": [0, 0, 1, 1], "category": "Hats"}}',
     r"line 2: category 'Hats' of product .* disagrees with 'Apparel & Accessories\|Shoes'"),
])
def test_stl_malformed_lines_name_file_and_line(fixtures, tmp_path, line, message):
    path = tmp_path / "fashion.json"
    path.write_text((fixtures / "pinterest_stl/fashion.json").read_text().splitlines()[0] + "\n"
                    + line + "\n")
    with pytest.raises(DataError, match=r"fashion\.json, " + message):
        pinterest.convert_stl(path, fixtures / "pinterest_stl/fashion-cat.json", tmp_path / "out")


# ----------------------------------------------------------------------------- Complete The Look
def test_ctl_round_trip_with_crops_and_fitb(fixtures, tmp_path):
    ctl = fixtures / "pinterest_ctl"
    CONVERTERS["pinterest"](ctl / "raw_train.tsv", ctl / "raw_test.tsv", ctl / "fitb_test.json",
                            ctl / "images", tmp_path / "out", triplet_splits=("train",))
    out = tmp_path / "out"
    data = FashionDataset.load(out)

    assert data.items.ids.tolist() == [f"{A}_0", f"{A}_1", f"{A}_2", f"{B}_0", f"{B}_1",
                                       f"{C}_0", f"{C}_1"]
    assert data.items.category.tolist() == ["Shirts & Tops", "Pants", "Shoes", "Shirts & Tops",
                                            "Shoes", "Pants", "Shoes"]
    a = data.items.attributes
    assert a["outfit"].tolist() == [A, A, A, B, B, C, C]
    np.testing.assert_array_equal(a["bbox_x"], np.float32([0, 0.5, 0, 0.25, 0.25, 0, 0]))
    np.testing.assert_array_equal(a["bbox_height"], np.float32([0.5] * 7))
    assert data.outfits.ids.tolist() == [A, B, C]
    assert data.outfits.slots == ("Pants", "Shirts & Tops", "Shoes")
    assert data.outfits.items.tolist() == [[1, 0, 2], [-1, 3, 4], [5, -1, 6]]
    with (out / "outfit_splits.csv").open() as handle:
        assert [r["split"] for r in csv.DictReader(handle)] == ["train", "train", "test"]
    assert json.loads((out / "fitb.json").read_text()) == [
        {"question": [f"{C}_0"], "answers": [f"{C}_1", f"{A}_2"], "answer": 0}]
    assert _triplet_ids(data) == [(f"{A}_0", f"{A}_2", f"{B}_1"), (f"{A}_1", f"{A}_2", f"{B}_1"),
                                  (f"{B}_0", f"{B}_1", f"{A}_2")]
    assert data.metadata["skipped"] == {"repeated_rows": 1, "triplet_pairs_without_negative": 1}
    # Each item image is its box cut from the decoded 16x16 collage, saved losslessly (PNG).
    collage_a, collage_c = (read_image(ctl / f"images/{s}.jpg") for s in (A, C))
    np.testing.assert_array_equal(read_image(out / data.items.image_paths[0]), collage_a[:8, :8])
    np.testing.assert_array_equal(read_image(out / data.items.image_paths[1]), collage_a[:8, 8:])
    np.testing.assert_array_equal(read_image(out / data.items.image_paths[6]), collage_c[8:, :])


@pytest.mark.parametrize("text, message", [
    ("image_signature x y w h label\n", r"raw_train\.tsv, line 1: header should be"),
    (f"{' '.join(pinterest.CTL_HEADER)}\n{A}\t0.0\t0.0\t0.5\tPants\n",
     r"raw_train\.tsv, line 2: expected 6 tab-separated fields"),
    (f"{' '.join(pinterest.CTL_HEADER)}\n{A}\t0.0\t0.0\t0.5\t0.5\tPants\n{A}\t0.0\tnan?\t1\t1\tX\n",
     r"raw_train\.tsv, line 3: bounding_y 'nan\?' is not a number"),
    (f"{' '.join(pinterest.CTL_HEADER)}\n{A}\t0.75\t0.0\t0.5\t0.5\tPants\n",
     r"raw_train\.tsv, line 2: box \(x=0\.75, y=0\.0, w=0\.5, h=0\.5\) is not a normalised box"),
])
def test_ctl_malformed_lines_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "raw_train.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        pinterest.convert_ctl(path, tmp_path / "out")


def test_ctl_fitb_entry_matching_no_item(fixtures, tmp_path):
    fitb = json.loads((fixtures / "pinterest_ctl/fitb_test.json").read_text())
    fitb[0]["answers"][1]["x"] = "0.9"
    path = tmp_path / "fitb.json"
    path.write_text(json.dumps(fitb))
    with pytest.raises(DataError, match=r"fitb\.json, question 0: answers item .* matches no row"):
        pinterest.convert_ctl(fixtures / "pinterest_ctl/raw_train.tsv",
                              fixtures / "pinterest_ctl/raw_test.tsv", path, tmp_path / "out")
