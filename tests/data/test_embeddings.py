"""The shared embeddings file (Partial Dual and StyNet write it, PSA-Net reads it)."""

import json
import os

import numpy as np
import pytest

from tfrec_fashion.data.embeddings import CustomerEmbeddings
from tfrec_fashion.errors import DataError, MissingDataError


def _embeddings(**overrides) -> CustomerEmbeddings:
    rng = np.random.default_rng(0)
    fields = dict(user_ids=["u0", "u1", "u2"], user_vectors=rng.normal(size=(3, 4)),
                  item_ids=["i0", "i1"], item_vectors=rng.normal(size=(2, 4)),
                  metadata={"model": "partial_dual", "score": "dot", "offset": 0.5})
    fields.update(overrides)
    return CustomerEmbeddings(**fields)


def test_round_trip_keeps_ids_vectors_and_metadata(tmp_path):
    original = _embeddings()
    path = original.save(tmp_path / "run" / "embeddings.npz")
    loaded = CustomerEmbeddings.load(tmp_path / "run")  # a run directory works too
    np.testing.assert_array_equal(loaded.user_ids, ["u0", "u1", "u2"])
    np.testing.assert_array_equal(loaded.user_vectors, original.user_vectors)
    np.testing.assert_array_equal(loaded.item_vectors, original.item_vectors)
    assert loaded.metadata == {"model": "partial_dual", "score": "dot", "offset": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["embeddings.npz"]  # no temporary left


def test_lookup_by_id_gives_the_mean_vector_to_unknown_customers():
    embeddings = _embeddings()
    vectors, known = embeddings.user_vectors_for(["u2", "new-customer", "u0"])
    np.testing.assert_array_equal(known, [True, False, True])
    np.testing.assert_allclose(vectors[0], embeddings.user_vectors[2])
    np.testing.assert_allclose(vectors[1], embeddings.user_vectors.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(vectors[2], embeddings.user_vectors[0])
    items, known_items = embeddings.item_vectors_for(["i1"])
    assert known_items.tolist() == [True]
    np.testing.assert_allclose(items[0], embeddings.item_vectors[1])


@pytest.mark.parametrize("overrides, message", [
    ({"user_ids": ["u0", "u0", "u2"]}, "user id 'u0' appears 2 times"),
    ({"user_vectors": np.full((3, 4), np.nan)}, "not finite"),
    ({"user_vectors": np.zeros((2, 4))}, "one row per id"),
    ({"item_vectors": np.zeros((2, 3))}, "equal sizes"),
])
def test_bad_content_is_refused_with_the_problem_named(overrides, message):
    with pytest.raises(DataError, match=message):
        _embeddings(**overrides)


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(MissingDataError, match="no embeddings file"):
        CustomerEmbeddings.load(tmp_path / "nothing.npz")
    truncated = tmp_path / "truncated.npz"
    _embeddings().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(DataError, match="unreadable embeddings file"):
        CustomerEmbeddings.load(truncated)
    other = tmp_path / "other.npz"
    np.savez(other, user_ids=np.array(["u"]), metadata=np.array(json.dumps({})))
    with pytest.raises(DataError, match="lacks"):
        CustomerEmbeddings.load(other)


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = _embeddings().save(tmp_path / "embeddings.npz")
    before = path.read_bytes()

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _embeddings(metadata={"model": "stynet", "score": "dot"}).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings.npz"]


def test_folded_in_customers_are_appended_and_round_trip(tmp_path):
    original = _embeddings()
    new_vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    grown = original.with_users(["new-a", "new-b"], new_vectors)
    np.testing.assert_array_equal(grown.user_ids, ["u0", "u1", "u2", "new-a", "new-b"])
    np.testing.assert_array_equal(grown.user_vectors[:3], original.user_vectors)
    assert len(original.user_ids) == 3  # a copy: the original is unchanged
    assert grown.metadata["added_users"] == 2
    loaded = CustomerEmbeddings.load(grown.save(tmp_path / "embeddings.npz"))
    vectors, known = loaded.user_vectors_for(["new-b", "u1"])
    np.testing.assert_array_equal(known, [True, True])
    np.testing.assert_array_equal(vectors[0], new_vectors[1])
    np.testing.assert_array_equal(loaded.item_vectors, original.item_vectors)
    one = loaded.with_users(["new-c"], np.ones(4))  # one customer, one vector
    assert one.user_ids[-1] == "new-c" and one.metadata["added_users"] == 3


@pytest.mark.parametrize("ids, vectors, message", [
    (["u1"], np.zeros((1, 4)), "customer id 'u1' is already in the embeddings"),
    (["n", "n"], np.zeros((2, 4)), "user id 'n' appears 2 times"),
    (["n"], np.zeros((1, 3)), "one vector of size d=4 per id"),
    (["n"], np.full((1, 4), np.inf), "the user vector of 'n' is not finite"),
])
def test_adding_a_duplicate_or_malformed_customer_is_refused(ids, vectors, message):
    with pytest.raises(DataError, match=message):
        _embeddings().with_users(ids, vectors)
