"""The outfit head as a user drives it, on a toy outfit scorer whose answers NumPy gives: export
``OutfitParts`` through the head's entry, then ``score_outfit`` and ``fill_in_the_blank`` in a
fresh process without project code, the parts round trip through a run directory, bad requests
INVALID_ARGUMENT naming the problem (in-graph and over our gRPC server with TF Serving's own
stubs), the SignatureDefs the contract's and the warm-up records replaying."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.training.serving_parts import (OutfitParts, OutfitScorer, load_parts,
                                                  save_parts)
from tfrec_fashion_export.writer import export_parts
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

SLOTS = ["top", "bottom", "shoes"]
N_PER_SLOT, F, E = 7, 4, 3


class ToyOutfitModel(tf.Module):
    """score = sum over slot pairs of <x_i, x_j> + sum_s <u, x_s W>: personal and pairwise."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.random.default_rng(1).normal(size=(F, E)).astype(np.float32))

    @tf.function
    def score(self, user, items):
        pairs = tf.einsum("bsf,btf->bst", items, items)
        upper = tf.linalg.band_part(pairs, 0, -1) - tf.linalg.band_part(pairs, 0, 0)
        personal = tf.einsum("bsf,fe,be->b", items, self.w, user)
        return tf.reduce_sum(upper, axis=[1, 2]) + personal

    def numpy_score(self, user, items):
        pairs = np.einsum("bsf,btf->bst", items, items)
        upper = np.triu(pairs, 1).sum(axis=(1, 2))
        return upper + np.einsum("bsf,fe,be->b", items, self.w.numpy(), user)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    model = ToyOutfitModel()
    categories = np.repeat(SLOTS, N_PER_SLOT)
    parts = OutfitParts(
        user_ids=np.array(["u0", "u1"]), user_vectors=rng.normal(size=(2, E)),
        item_ids=np.array([f"i{n:02d}" for n in range(len(categories))]),
        item_categories=categories, item_vectors=rng.normal(size=(len(categories), F)),
        slots=SLOTS, scorer=OutfitScorer(E, F, len(SLOTS), model.score, model.variables),
        info={"model": "toy_outfits"})
    return model, parts


@pytest.fixture(scope="module")
def version(toy, tmp_path_factory):
    _, parts = toy
    return export_parts(parts, tmp_path_factory.mktemp("base"), "toy_outfits")


def _rows(parts, ids):
    return [list(parts.item_ids).index(i) for i in ids]


def test_the_export_follows_the_contract_and_describes_its_slots(version):
    defs = read_signature_defs(str(version))
    for signature in contract.OUTFIT.signatures:
        assert contract.differences(signature, defs[signature.name]) == []
    assert contract.differences(contract.FILL_IN_THE_BLANK,
                                defs[contract.SERVING_DEFAULT]) == []
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert info["head"] == "outfit" and info["slots"] == SLOTS


def test_a_fresh_process_answers_as_the_scorer_does(toy, version, assert_close):
    model, parts = toy
    outfits = [["i00", "i07", "i14"], ["i03", "i09", "i20"], ["i06", "i12", "i15"]]
    users = ["u0", "u1", "someone-new"]
    requests = {
        "score_outfit": {"user_id": contract.string_array(users),
                         "item_ids": contract.string_array(outfits)},
        "fill_in_the_blank": {"user_id": contract.string_array(users),
                              "item_ids": contract.string_array(
                                  [["i00", "", "i14"], ["i03", "i09", "x"], outfits[2]]),
                              "blank_slot": contract.string_array(["bottom", "shoes", "top"]),
                              "k": np.array([3, 2, 4], np.int32),
                              "exclude_item_ids": contract.string_array([["i08"], [""], [""]])},
    }
    answers, imported = testing.answers_in_fresh_process(str(version), requests)
    assert imported == []
    user_vectors = np.concatenate([parts.user_vectors, parts.cold_start_vector[None]])
    items = parts.item_vectors[[_rows(parts, outfit) for outfit in outfits]]
    expected = model.numpy_score(user_vectors, items)
    assert_close(answers["score_outfit"]["scores"], expected, ulps=64,
                 scale=np.abs(expected).max())
    np.testing.assert_array_equal(answers["score_outfit"]["cold_start"], [False, False, True])
    filled = answers["fill_in_the_blank"]
    for row, (outfit, column, k, excluded) in enumerate(
            ((["i00", None, "i14"], 1, 3, ["i08"]), (["i03", "i09", None], 2, 2, []),
             ([None, "i12", "i15"], 0, 4, []))):
        candidates = [n for n in range(len(parts.item_ids))
                      if parts.item_categories[n] == SLOTS[column]
                      and parts.item_ids[n] not in excluded]
        if outfit[column] is None and row == 2:
            candidates = [n for n in candidates if parts.item_ids[n] != "i06"]
        filled_outfits = []
        for n in candidates:
            rows = [n if c == column else _rows(parts, [outfit[c]])[0] for c in range(3)]
            filled_outfits.append(parts.item_vectors[rows])
        scores = model.numpy_score(np.repeat(user_vectors[row:row + 1], len(candidates), 0),
                                   np.array(filled_outfits))
        order = np.argsort(-scores, kind="stable")[:k]
        got = filled["item_ids"][row].astype(str)
        np.testing.assert_array_equal(got[:k], parts.item_ids[np.array(candidates)[order]])
        assert (got[k:] == "").all()
        assert_close(filled["scores"][row, :k], scores[order], ulps=64,
                     scale=np.abs(scores).max())


def test_the_parts_round_trip_through_a_run_directory(toy, tmp_path, assert_close):
    _, parts = toy
    save_parts(parts, tmp_path / "serving")
    back = load_parts(tmp_path)
    assert isinstance(back, OutfitParts) and back.slots == SLOTS
    assert back.slot_categories == {slot: [slot] for slot in SLOTS}
    items = tf.constant(parts.item_vectors[[[0, 7, 14]]])
    user = tf.constant(parts.user_vectors[:1])
    assert_close(back.scorer.score(user, items).numpy(), parts.scorer.score(user, items).numpy())


def test_bad_requests_fail_in_the_graph_naming_the_problem(version):
    model = tf.saved_model.load(str(version))
    good = {"user_id": ["u0"], "item_ids": [["i00", "i07", "i14"]]}
    bad_scores = [
        ({"item_ids": [["i00", "i07", "nope"]]}, "score_outfit: unknown item id"),
        ({"item_ids": [["i07", "i00", "i14"]]}, "a slot its category does not fill"),
        ({"item_ids": [["i00", "i07"]]}, "one column per slot"),
    ]
    for change, message in bad_scores:
        inputs = {**good, **change}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            model.signatures["score_outfit"](**{k: tf.constant(v) for k, v in inputs.items()})
    for change, message in (({"blank_slot": ["hat"]}, r"unknown blank_slot; the slots are "
                             r"0: top, 1: bottom, 2: shoes"), ({"k": [0]}, "k must be in")):
        inputs = {**good, "blank_slot": ["top"], "k": [3], **change}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            model.signatures["fill_in_the_blank"](
                **{k: tf.constant(v) for k, v in inputs.items()},
                exclude_item_ids=tf.zeros([1, 0], tf.string))


def test_warmup_replays_and_our_server_answers_the_official_client(version):
    from tfrec_fashion_serving.server import start_server

    replayed = testing.replay_warmup(version)
    assert sorted(replayed) == ["fill_in_the_blank", "score_outfit"]
    with start_server(str(version.parent.parent / "models.config"), port=0) as server:
        server.wait_until_available("toy_outfits", timeout=120)
        target = f"127.0.0.1:{server.port}"
        answer = client.predict(target, "toy_outfits",
                                {"user_id": contract.string_array(["u0"]),
                                 "item_ids": contract.string_array([["i00", "", "i14"]]),
                                 "blank_slot": contract.string_array(["bottom"])})
        assert answer["item_ids"].shape == (1, contract.DEFAULT_K)  # serving_default, k's default
        with pytest.raises(grpc.RpcError) as error:
            client.predict(target, "toy_outfits",
                           {"user_id": contract.string_array(["u0"]),
                            "item_ids": contract.string_array([["i07", "i00", "i14"]])},
                           signature="score_outfit")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "a slot its category does not fill" in error.value.details()
