"""PAN as a user runs it: ``tfrec-fashion train`` on a tiny planted world with outfits, the
outfit protocol's metrics in metrics.json beside the oracle, the global oracle and random; the
export through the outfit head answers ``score_outfit`` and ``fill_in_the_blank`` in a fresh
process as the Keras model does; our server answers TF Serving's own client, and a wrong slot or
an unknown item is INVALID_ARGUMENT naming it; the end-to-end CNN backbone trains and exports."""

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.cli import main
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import load_run, train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_serving import client, contract, testing

SEED = 2
WORLD = {"name": "synthetic", "seed": SEED, "n_users": 80, "n_items": 150, "n_time_epochs": 1,
         "outfits_per_user": 10, "image_size": 32}
MODEL = {"name": "pan", "code_bits": 16, "embedding_dim": 16}
TRAIN = {"epochs": 3, "batch_size": 64, "learning_rate": 0.01, "verbose": 0,
         "monitor": "val_auc", "monitor_mode": "max"}


def _config(run_dir, **model):
    return from_dict(RunConfig, {"run_dir": str(run_dir), "seed": SEED, "data": WORLD,
                                 "model": {**MODEL, **model}, "train": TRAIN})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(_config(tmp_path_factory.mktemp("pan") / "run"))


@pytest.fixture(scope="module")
def version(run, tmp_path_factory):
    return export_run(run.run_dir, tmp_path_factory.mktemp("base"))


def _keras_scores(run, users, outfits):
    return run.model({"user": np.asarray(users, np.int32),
                      "outfit": np.asarray(outfits, np.int32)}).numpy()


def test_metrics_are_the_outfit_protocols_beside_its_reference_rows(run):
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "outfits"
    for row in ("", "oracle_", "global_oracle_", "random_"):
        for key in ("fitb", "auc", "ndcg"):
            assert 0.0 <= metrics[f"{row}test_{key}"] <= 1.0, (row, key)
    assert metrics["oracle_test_fitb"] > metrics["random_test_fitb"] + 0.3
    assert "val_auc" in (run.run_dir / "logs" / "training.csv").read_text()


def test_the_export_answers_in_a_fresh_process_as_the_keras_model(run, version, assert_close):
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert info["head"] == "outfit" and info["slots"] == ["top", "bottom", "shoes"]
    outfits = run.recipe.evaluation.split.test.items[:3]
    users = [0, 1, -1]
    ids = run.dataset.items.ids
    user_ids = [*run.dataset.users.ids[:2], "someone-new"]
    blanked = ids[outfits].copy()
    blanked[:, 1] = ""
    answers, imported = testing.answers_in_fresh_process(str(version), {
        "score_outfit": {"user_id": contract.string_array(user_ids),
                         "item_ids": contract.string_array(ids[outfits])},
        "fill_in_the_blank": {"user_id": contract.string_array(user_ids[:1]),
                              "item_ids": contract.string_array(blanked[:1]),
                              "blank_slot": contract.string_array(["bottom"]),
                              "k": np.array([4], np.int32),
                              "exclude_item_ids": contract.string_array([[""]])}})
    assert imported == []
    expected = _keras_scores(run, users, outfits)
    # The scorer is the Keras model's graph on the same content; sign codes make it exact
    # unless a pre-code sits at a rounding error from 0.
    assert_close(answers["score_outfit"]["scores"], expected, ulps=64,
                 scale=np.abs(expected).max())
    np.testing.assert_array_equal(answers["score_outfit"]["cold_start"], [False, False, True])
    bottoms = np.flatnonzero(run.dataset.items.category == "bottom")
    candidates = np.repeat(outfits[:1], len(bottoms), axis=0)
    candidates[:, 1] = bottoms
    scores = _keras_scores(run, np.zeros(len(bottoms)), candidates)
    filled = answers["fill_in_the_blank"]
    top = np.sort(scores)[::-1][:4]
    assert_close(filled["scores"][0], top, ulps=64, scale=np.abs(top).max())
    rows = [list(ids).index(i) for i in filled["item_ids"][0].astype(str)]
    assert set(run.dataset.items.category[rows]) == {"bottom"}


def test_fill_in_the_blank_by_hamming_ranking_rescores_the_nearest_codes(run, tmp_path, capsys,
                                                                        assert_close):
    """index="hamming": the customer's codes of the blank slot's items nearest to sign(q) (ties
    by lower row) are the candidates, scored exactly as the Keras model scores them."""
    version = export_run(run.run_dir, tmp_path, index="hamming", index_params={"rerank": 10})
    index = json.loads((version / contract.DESCRIPTION_FILE).read_text())["index"]
    assert index["kind"] == "hamming" and "per request" in index["codes"]
    assert "fill_in_the_blank recall@10 against exact scores" in capsys.readouterr().out
    model, ids = run.model, run.dataset.items.ids
    outfit = run.recipe.evaluation.split.test.items[0]
    answers, _ = testing.answers_in_fresh_process(str(version), {"fill_in_the_blank": {
        "user_id": contract.string_array(run.dataset.users.ids[:1]),
        "item_ids": contract.string_array([ids[outfit]]),
        "blank_slot": contract.string_array(["bottom"]), "k": np.array([10], np.int32),
        "exclude_item_ids": contract.string_array([[""]])}})
    bottoms = np.flatnonzero(run.dataset.items.category == "bottom")
    bottoms = bottoms[bottoms != outfit[1]]
    users = np.zeros(len(bottoms), np.int32)
    user_codes, outfit_codes = model.codes_from(
        model.user_vectors_for([0]), tf.gather(model._item_content.get(model.name), [outfit]),
        [[0, 1, 2]])
    query = model.blank_query(user_codes, outfit_codes, [1]).numpy()[0]
    distances = (model.item_codes(users, bottoms).numpy() > 0).astype(int) != (query > 0)
    nearest = bottoms[np.argsort(distances.sum(1), kind="stable")[:10]]
    candidates = np.repeat(outfit[None], len(nearest), axis=0)
    candidates[:, 1] = nearest
    scores = _keras_scores(run, users[:len(nearest)], candidates)
    order = np.argsort(-scores, kind="stable")
    filled = answers["fill_in_the_blank"]
    assert_close(filled["scores"][0], scores[order], ulps=64, scale=np.abs(scores).max())
    assert set(filled["item_ids"][0].astype(str)) == set(ids[nearest])


def test_our_server_answers_the_official_client_and_names_bad_outfits(run, version):
    from tfrec_fashion_serving.server import start_server

    ids = run.dataset.items.ids
    outfit = run.recipe.evaluation.split.test.items[0]
    with start_server(str(version.parent.parent / "models.config"), port=0) as server:
        server.wait_until_available("pan", timeout=120)
        target = f"127.0.0.1:{server.port}"
        answer = client.predict(target, "pan", {
            "user_id": contract.string_array([run.dataset.users.ids[0]]),
            "item_ids": contract.string_array([ids[outfit]])}, signature="score_outfit")
        np.testing.assert_allclose(answer["scores"], _keras_scores(run, [0], [outfit]),
                                   rtol=1e-5, atol=1e-6)
        for items, message in ((ids[outfit[[1, 0, 2]]], "a slot its category does not fill"),
                               ([ids[outfit[0]], "no-such-item", ids[outfit[2]]],
                                "score_outfit: unknown item id")):
            with pytest.raises(grpc.RpcError) as error:
                client.predict(target, "pan", {
                    "user_id": contract.string_array([run.dataset.users.ids[0]]),
                    "item_ids": contract.string_array([list(items)])}, signature="score_outfit")
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in error.value.details()


def test_the_cnn_backbone_trains_end_to_end_and_exports(tmp_path, capsys):
    config = tmp_path / "pan.yaml"
    config.write_text(json.dumps({"run_dir": str(tmp_path / "run"), "seed": SEED,
                                  "data": WORLD, "train": {**TRAIN, "epochs": 1},
                                  "model": {**MODEL, "backbone": "gap_cnn", "text": True}}))
    assert main(["train", str(config)]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["test_fitb"])
    version = export_run(tmp_path / "run", tmp_path / "base")
    assert json.loads((version / contract.DESCRIPTION_FILE).read_text())["backbone"] == "gap_cnn"
    _, recipe, model = load_run(tmp_path / "run")
    outfits = recipe.evaluation.split.test.items[:2]
    served = tf.saved_model.load(str(version)).signatures["score_outfit"](
        user_id=tf.constant(list(recipe.dataset.users.ids[:2])),
        item_ids=tf.constant(recipe.dataset.items.ids[outfits]))
    np.testing.assert_allclose(served["scores"].numpy(),
                               model({"user": np.arange(2, dtype=np.int32),
                                      "outfit": outfits.astype(np.int32)}).numpy(),
                               rtol=1e-5, atol=1e-6)
