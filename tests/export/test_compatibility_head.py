"""The compatibility head as a user drives it: train the minimal pair model (PairCompatibility)
through the harness, export the run directory, and call ``score_pairs`` / ``complete_pair`` in a
fresh process without project code (the head's fresh-process helper) and over our gRPC server:
the answers are the Keras model's, the SignatureDefs are the contract's, bad requests are
INVALID_ARGUMENT, warm-up records replay."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export import writer
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

WORLD = {"name": "synthetic", "seed": 0, "n_users": 100, "n_items": 200, "n_time_epochs": 1,
         "mean_interactions_per_user": 12.0, "image_size": 16, "pair_ratings_per_user": 40}
MODEL = {"name": "pair_compatibility", "feature_source": "attributes", "embedding_dim": 8}
TRAIN = {"epochs": 10, "batch_size": 128, "learning_rate": 0.01, "verbose": 0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    config = from_dict(RunConfig, {"model": MODEL, "data": WORLD, "train": TRAIN, "seed": 0,
                                   "run_dir": str(root / "run")})
    return train(config)


@pytest.fixture(scope="module")
def version(run, tmp_path_factory):
    return export_run(run.run_dir, tmp_path_factory.mktemp("base"))


def _keras_scores(run, item_rows, partner_rows):
    features = run.recipe.features
    return run.model.pair_scores(features[item_rows], features[partner_rows]).numpy()


def _expected_partners(run, item_row, k, excluded_rows=()):
    """The model's own top-k partners of one item: every item of the complementary
    categories but the item and the excluded, by the Keras model's score."""
    category = run.dataset.items.category
    partners = run.recipe.evaluation.complements()[str(category[item_row])]
    allowed = np.flatnonzero(np.isin(category, partners))
    allowed = allowed[~np.isin(allowed, [item_row, *excluded_rows])]
    scores = _keras_scores(run, np.full(len(allowed), item_row), allowed)
    order = np.argsort(-scores, kind="stable")[:k]
    return allowed[order], scores[order]


def test_the_run_writes_compatibility_parts_and_the_export_follows_the_contract(run, version):
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert info["head"] == "compatibility" and info["model"] == "pair_compatibility"
    assert info["complements"] == {"bottom": ["top"], "top": ["bottom"]}
    defs = read_signature_defs(str(version))
    for signature in contract.COMPATIBILITY.signatures:
        assert contract.differences(signature, defs[signature.name]) == []
    assert contract.differences(contract.COMPLETE_PAIR, defs[contract.SERVING_DEFAULT]) == []
    # A scorer that reads no customer takes no customer vector: no *_new_customer signatures.
    assert contract.SCORE_PAIRS_NEW_CUSTOMER.name not in defs
    assert contract.COMPLETE_PAIR_NEW_CUSTOMER.name not in defs


def test_a_fresh_process_gets_the_keras_models_answers(run, version, assert_close):
    ids = run.dataset.items.ids
    category = run.dataset.items.category
    tops = np.flatnonzero(category == "top")[:3]
    bottoms = np.flatnonzero(category == "bottom")[:3]
    users = [run.dataset.users.ids[0], run.dataset.users.ids[1], "someone-new"]
    excluded = _expected_partners(run, tops[0], 1)[0]  # the best partner, excluded on row 0
    requests = {
        "score_pairs": {"user_id": contract.string_array(users),
                        "item_id": contract.string_array(ids[tops]),
                        "partner_id": contract.string_array(ids[bottoms])},
        "complete_pair": {"user_id": contract.string_array(users),
                          "item_id": contract.string_array(ids[[tops[0], bottoms[1], tops[2]]]),
                          "k": np.array([5, 3, 4], np.int32),
                          "category": contract.string_array(["", "", ""]),
                          "exclude_item_ids": contract.string_array(
                              [[ids[excluded[0]]], [""], [""]])},
    }
    answers, imported = testing.answers_in_fresh_process(str(version), requests)
    assert imported == []  # TensorFlow alone: no tfrec_fashion, no TFRS
    pairs = answers["score_pairs"]
    # The served scorer is the Keras model's function in a graph: a few ulps per layer.
    assert_close(pairs["scores"], _keras_scores(run, tops, bottoms), ulps=64)
    np.testing.assert_array_equal(pairs["cold_start"], [False, False, True])
    completed = answers["complete_pair"]
    assert completed["item_ids"].shape == (3, 5)
    for row, (item_row, k, exclude) in enumerate(((tops[0], 5, excluded),
                                                  (bottoms[1], 3, ()), (tops[2], 4, ()))):
        expected_rows, expected_scores = _expected_partners(run, item_row, k, exclude)
        got = completed["item_ids"][row].astype(str)
        np.testing.assert_array_equal(got[:k], ids[expected_rows], err_msg=f"row {row}")
        assert (got[k:] == "").all() and np.isneginf(completed["scores"][row, k:]).all()
        assert_close(completed["scores"][row, :k], expected_scores, ulps=64)
    # Not personalised: an unknown customer gets the same partners as a known one.
    np.testing.assert_array_equal(completed["cold_start"], [False, False, True])


def test_a_category_names_the_partners_and_bad_requests_fail_in_the_graph(run, version):
    model = tf.saved_model.load(str(version))
    ids = run.dataset.items.ids
    top = ids[np.flatnonzero(run.dataset.items.category == "top")[0]]
    shoes = ids[np.flatnonzero(run.dataset.items.category == "shoes")[0]]
    same = model.signatures["complete_pair"](
        user_id=tf.constant(["u"]), item_id=tf.constant([top]), k=tf.constant([4]),
        category=tf.constant(["top"]), exclude_item_ids=tf.zeros([1, 0], tf.string))
    rows = [list(ids).index(i) for i in same["item_ids"].numpy()[0].astype(str)]
    assert set(run.dataset.items.category[rows]) == {"top"} and top not in ids[rows]
    bad = [
        ({"item_id": ["no-such-item"]}, "unknown item id"),
        ({"category": ["hats"]}, "unknown category"),
        ({"k": [0]}, "k must be in"),
        ({"k": [len(ids) + 1]}, "k must be in"),
        ({"item_id": [shoes]}, "no complementary category"),  # pairs are tops and bottoms
    ]
    for change, message in bad:
        inputs = {"user_id": ["u"], "item_id": [top], "k": [3], "category": [""], **change}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            model.signatures["complete_pair"](
                **{key: tf.constant(value) for key, value in inputs.items()},
                exclude_item_ids=tf.zeros([1, 0], tf.string))
    bottom = ids[np.flatnonzero(run.dataset.items.category == "bottom")[0]]
    for partner, message in (("nothing", "unknown item id"),
                             (ids[np.flatnonzero(run.dataset.items.category == "top")[1]],
                              r"complementary categories \(bottom -> top; top -> bottom\); a "
                              "pair of the same category"),
                             (shoes, "complementary categories")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            model.signatures["score_pairs"](user_id=tf.constant(["u", "v"]),
                                            item_id=tf.constant([top, top]),
                                            partner_id=tf.constant([bottom, partner]))


def test_warmup_records_replay_and_our_server_answers_over_grpc(run, version):
    from tfrec_fashion_serving.server import start_server

    replayed = testing.replay_warmup(version)
    assert sorted(replayed) == ["complete_pair", "score_pairs"]
    ids = run.dataset.items.ids
    top = np.flatnonzero(run.dataset.items.category == "top")[0]
    with start_server(str(version.parent.parent / "models.config"), port=0) as server:
        server.wait_until_available("pair_compatibility", timeout=120)
        target = f"127.0.0.1:{server.port}"
        answer = client.predict(target, "pair_compatibility",
                                {"user_id": contract.string_array([run.dataset.users.ids[0]]),
                                 "item_id": contract.string_array([ids[top]])})
        expected_rows, _ = _expected_partners(run, top, contract.DEFAULT_K)
        np.testing.assert_array_equal(np.asarray(answer["item_ids"]).astype(str)[0],
                                      ids[expected_rows])  # serving_default, k's default
