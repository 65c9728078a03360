"""Polyvore-U (FHN / PAN release: tuples_<n>/ folders, image lists, images/291x291) -> dataset."""

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from tfrec_fashion.data.converters import CONVERTERS, polyvore_u
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError, MissingDataError

RELEASE = "polyvore_u/polyvore"


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_tuples_630_round_trip(fixtures, tmp_path):
    CONVERTERS["polyvore_u"](fixtures / RELEASE / "tuples_630", tmp_path / "out")
    out = tmp_path / "out"
    data = FashionDataset.load(out, load_images=True)

    assert data.name == "polyvore_u_630"
    assert data.users.ids.tolist() == ["0", "1"]
    assert data.items.ids.tolist() == ["top_0", "top_1", "top_2", "bottom_0", "bottom_1",
                                       "shoe_0", "shoe_1"]
    assert data.items.category.tolist() == ["top"] * 3 + ["bottom"] * 2 + ["shoes"] * 2
    names = [line for c in ("top", "bottom", "shoe") for line in
             (fixtures / RELEASE / "tuples_630" / f"image_list_{c}").read_text().split()]
    assert data.items.attributes["image_name"].tolist() == names
    for name, image in zip(names, data.items.images):
        source = np.asarray(Image.open(fixtures / RELEASE / "images/291x291" / name).convert("RGB"))
        np.testing.assert_array_equal(image, source)
    outfits = data.outfits
    assert outfits.slots == ("top", "bottom", "shoes")
    assert outfits.ids.tolist() == ["train_0", "train_1", "train_2", "test_0"]
    assert outfits.user.tolist() == [0, 0, 1, 1]
    assert data.items.ids[outfits.items].tolist() == [
        ["top_0", "bottom_1", "shoe_0"], ["top_2", "bottom_0", "shoe_1"],
        ["top_1", "bottom_1", "shoe_1"], ["top_0", "bottom_0", "shoe_0"]]
    assert [(r["outfit_id"], r["split"]) for r in _rows(out / "outfit_splits.csv")] == [
        ("train_0", "train"), ("train_1", "train"), ("train_2", "train"), ("test_0", "test")]
    assert _rows(out / "negative_outfits.csv") == [
        {"outfit_id": f"train_nega_{k}", "split": "train", "kind": "random", "user_id": u,
         "top": t, "bottom": b, "shoes": s} for k, (u, t, b, s) in enumerate([
             ("0", "top_1", "bottom_0", "shoe_0"), ("0", "top_0", "bottom_0", "shoe_1"),
             ("1", "top_2", "bottom_1", "shoe_0")])] + [
        {"outfit_id": "test_nega_hard_0", "split": "test", "kind": "hard", "user_id": "1",
         "top": "top_2", "bottom": "bottom_1", "shoes": "shoe_1"}]
    assert json.loads((out / "fitb.json").read_text()) == {
        "slots": ["top", "bottom", "shoes"],
        "questions": [{"split": "test", "user_id": "1", "answer": 0, "candidates": [
            ["top_0", "bottom_0", "shoe_0"], ["top_1", "bottom_0", "shoe_0"],
            ["top_2", "bottom_0", "shoe_0"], ["top_0", "bottom_0", "shoe_1"]]}]}
    assert set(data.metadata["extra_files"]) == {"outfit_splits.csv", "negative_outfits.csv",
                                                 "fitb.json"}


def test_variable_length_subset_from_release_folder(fixtures, tmp_path):
    polyvore_u.convert(fixtures / RELEASE, tmp_path / "out", subset="tuples_519", images="symlink")
    data = FashionDataset.load(tmp_path / "out")
    assert data.outfits.slots == ("top", "top_2", "bottom", "shoes")
    assert data.outfits.items.tolist() == [[0, 2, 4, 5], [1, -1, 3, 6]]  # -1: no second top
    assert (tmp_path / "out" / data.items.image_paths[0]).is_symlink()


def test_release_folder_with_several_subsets_needs_one_named(fixtures, tmp_path):
    with pytest.raises(ValueError, match="pass subset="):
        polyvore_u.convert(fixtures / RELEASE, tmp_path / "out")


@pytest.mark.parametrize("file, text, message", [
    ("tuples_train_posi", "user,top,bottom,shoe\n0,0,1,0\n0,3,0,1\n",
     r"tuples_train_posi, line 3, column 2: top index 3 is outside \[0, 3\)"),
    ("tuples_train_posi", "user,top,bottom,shoe\n0,0,-1,0\n",
     r"tuples_train_posi, line 2, column 3: bottom index -1 .*-1 is allowed only in a repeated"),
    ("tuples_test_posi", "user,top,bottom,shoe\n1,0,x,0\n",
     r"tuples_test_posi, line 2: values should be integers"),
    ("tuples_test_posi", "user,top,bottom\n1,0,0\n",
     r"tuples_test_posi, line 1: header 'user,top,bottom' differs"),
    ("tuples_train_nega", "user,top,bottom,shoe\n0,1,0\n",
     r"tuples_train_nega, line 2: 3 values, the header has 4"),
    ("tuples_train_posi", "uid,top,bottom,shoe\n0,0,0,0\n",
     r"tuples_train_posi, line 1: header should be 'user' then categories"),
    ("fill_in_blank_test", "user,top,bottom,shoe,user,top,bottom,shoe\n1,0,0,0,0,1,0,0\n",
     r"fill_in_blank_test, line 2: candidates belong to different users"),
    ("image_list_bottom", "a.jpg\n\nb.jpg\n", r"image_list_bottom, line 2: blank line"),
])
def test_malformed_files_name_file_and_line(copy_fixture, tmp_path, file, text, message):
    tuples = copy_fixture("polyvore_u") / "polyvore" / "tuples_630"
    (tuples / file).write_text(text)
    with pytest.raises(DataError, match=message):
        polyvore_u.convert(tuples, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_files_say_what_is_missing(copy_fixture, tmp_path):
    release = copy_fixture("polyvore_u") / "polyvore"
    (release / "tuples_630" / "image_list_shoe").unlink()
    with pytest.raises(MissingDataError, match="image_list_shoe does not exist"):
        polyvore_u.convert(release / "tuples_630", tmp_path / "out")
    polyvore_u.convert(release / "tuples_519", tmp_path / "out", images="none")
    assert FashionDataset.load(tmp_path / "out").items.image_paths is None


def test_images_missing_from_the_folder_are_counted_and_the_first_named(copy_fixture, tmp_path):
    release = copy_fixture("polyvore_u") / "polyvore"
    tops = (release / "tuples_630" / "image_list_top").read_text().split()
    shoes = (release / "tuples_630" / "image_list_shoe").read_text().split()
    for name in (tops[1], shoes[0]):
        (release / "images" / "291x291" / name).unlink()
    with pytest.raises(DataError) as raised:
        polyvore_u.convert(release / "tuples_630", tmp_path / "out")
    assert str(raised.value) == (
        f"{release}: 2 of 7 images named in the image lists are missing, first "
        f"images/291x291/{tops[1]} (image_list_top, line 2); restore them or pass images='none'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", [
    lambda data: data[:len(data) // 2],  # truncated JPEG: opens, fails to decode
    lambda data: b"not an image at all",
])
def test_a_corrupt_image_is_named(copy_fixture, tmp_path, damage):
    release = copy_fixture("polyvore_u") / "polyvore"
    name = (release / "tuples_630" / "image_list_bottom").read_text().split()[1]
    image = release / "images" / "291x291" / name
    image.write_bytes(damage(image.read_bytes()))
    with pytest.raises(DataError, match=re.escape(
            f"{release}: image images/291x291/{name} (image_list_bottom, line 2) is corrupt or "
            "not an image (")):
        polyvore_u.convert(release / "tuples_630", tmp_path / "out")
    assert not (tmp_path / "out").exists()
