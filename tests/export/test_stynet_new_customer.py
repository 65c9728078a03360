"""A new customer served from their survey answers and first votes (issue 24): StyNet runs export
the retrieval head's ``recommend_new_customer`` with the contract's optional survey inputs, the
customer tower's feature path in the graph. As a user drives it: the signature follows the
contract (Partial Dual's keeps exactly its own, ``test_new_customer.py``); a fresh process
without project code (nor TFRS) answers as the Python path (``StyNetRecipe.new_customer_query``,
the tower in Keras, scored and ranked in NumPy) for rows of survey and votes, votes alone, survey
alone and neither (the mean customer, ``cold_start``); bad answers, items and votes
INVALID_ARGUMENT naming them; the warm-up replays it; our gRPC server answers the official client
and the command line; data without a survey gives exactly Partial Dual's inputs.
Helpers (calling the signature, checking an answer) are ``test_new_customer.py``'s."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tests.export.test_new_customer import _check_answer
from tfrec_fashion.config import from_dict
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion.training.serving_parts import load_parts
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

# The synthetic world's survey (favourite_colour, cares_most_about) and item attributes; a small
# model, one epoch (a few seconds): the test is of the served path, not of StyNet's quality.
WORLD = {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 80, "n_time_epochs": 2,
         "mean_interactions_per_user": 10.0, "ratings_per_user": 30}
MODEL = {"name": "stynet", "embedding_dim": 8, "id_embedding_dim": 4, "feature_embedding_dim": 4,
         "hidden_units": 8, "history_length": 6, "use_visual_features": False}
SIGNATURE = contract.RECOMMEND_NEW_CUSTOMER.name


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(from_dict(RunConfig, {
        "run_dir": str(tmp_path_factory.mktemp("stynet_new") / "run"), "seed": 0,
        "data": WORLD, "model": MODEL, "train": {"epochs": 1, "batch_size": 256,
                                                 "verbose": 0}}))


@pytest.fixture(scope="module")
def base(run, tmp_path_factory):
    base = tmp_path_factory.mktemp("stynet_exports")
    export_run(run.run_dir, base, "stynet")
    return base


def _every_input(inputs):
    """``inputs`` with the signature's defaults (optional survey inputs included) for those
    left out."""
    signature = contract.RECOMMEND_NEW_CUSTOMER
    return {tensor.name: np.asarray(inputs[tensor.name]) if tensor.name in inputs
            else tensor.default_tensor().numpy()
            for tensor in (*signature.inputs, *signature.optional_inputs)}


def _call(model, inputs):
    signature = model.signatures[SIGNATURE]
    specs = signature.structured_input_signature[1]
    answer = signature(**{name: tf.constant(value, specs[name].dtype)
                          for name, value in _every_input(inputs).items()})
    return {name: value.numpy() for name, value in answer.items()}


def _customers(run):
    """(survey, votes) rows: both (more votes than history_length: the first 6 are read),
    votes alone, survey alone (one answer, one question unanswered), neither."""
    rng = np.random.default_rng(5)
    ids, (low, high) = run.dataset.items.ids, run.recipe.rating_range
    colours = run.recipe.user_vocabularies["favourite_colour"]
    votes = [(ids[item], float(rng.choice([low, high])))
             for item in rng.choice(len(ids), 9, replace=False)]
    survey = {"favourite_colour": str(colours[2]), "cares_most_about": "pattern"}
    return [(survey, votes), ({}, votes[:3]), ({"favourite_colour": str(colours[5])}, []),
            ({}, [])]


def _python_answer(run, customers, k, exclude_voted=True):
    """The Python path: ``StyNetRecipe.new_customer_query`` (the Keras tower; neither votes nor
    answers: the mean known customer) scored against the item tower's vectors in NumPy."""
    recipe, model = run.recipe, run.model
    index = {item: row for row, item in enumerate(run.dataset.items.ids)}
    items = recipe.item_vectors(model)
    ids = run.dataset.items.ids
    answer = {"query": [], "scores": [], "item_ids": [], "cold_start": []}
    for survey, votes in customers:
        query, cold = recipe.new_customer_query(model, survey,
                                                [(index[item], vote) for item, vote in votes])
        scores = (items.astype(np.float64) @ query.astype(np.float64))
        allowed = ~np.isin(ids, [item for item, _ in votes] if exclude_voted else [])
        masked = np.where(allowed, scores, -np.inf)
        top = np.argsort(-masked, kind="stable")[:k]
        answer["query"].append(query)
        answer["scores"].append(masked[top])
        answer["item_ids"].append(ids[top])
        answer["cold_start"].append(cold)
    return {name: np.array(value) for name, value in answer.items()}, items


def _inputs(customers, k=10, **kwargs):
    return contract.new_customer_inputs([votes for _, votes in customers], k,
                                        survey=[survey for survey, _ in customers], **kwargs)


def test_the_signature_takes_the_optional_survey_inputs_by_the_contract(base, run):
    version = base / "stynet" / "1"
    signature_defs = read_signature_defs(str(version))
    assert contract.differences(contract.RECOMMEND_NEW_CUSTOMER, signature_defs[SIGNATURE]) == []
    assert {"survey_questions", "survey_answers"} <= set(signature_defs[SIGNATURE].inputs)
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    survey = info["new_customer"]["survey"]
    assert list(survey) == list(run.recipe.user_vocabularies)
    assert survey["cares_most_about"] == ["colour", "length", "pattern"]
    # The contract refuses half the optional inputs.
    broken = type(signature_defs[SIGNATURE])()
    broken.CopyFrom(signature_defs[SIGNATURE])
    del broken.inputs["survey_answers"]
    assert any("all or none" in line
               for line in contract.differences(contract.RECOMMEND_NEW_CUSTOMER, broken))


def test_a_fresh_process_answers_as_the_python_path(base, run, assert_close):
    customers = _customers(run)
    answers, imported = testing.answers_in_fresh_process(
        str(base / "stynet" / "1"), {SIGNATURE: _every_input(_inputs(customers))})
    assert imported == []  # neither tfrec_fashion nor tensorflow_recommenders
    got = answers[SIGNATURE]
    expected, items = _python_answer(run, customers, 10)
    _check_answer(got, expected, items, assert_close, "fresh process")
    np.testing.assert_array_equal(got["cold_start"], [False, False, False, True])
    np.testing.assert_array_equal(expected["cold_start"], [False, False, False, True])
    # Neither votes nor answers: recommend's unknown customer, the mean known one.
    parts = load_parts(run.run_dir)
    assert_close(got["query"][3], parts.cold_start_query)
    # The survey changes the answer (the feature path reads it), votes too.
    assert np.abs(got["query"][0] - got["query"][1]).max() > 1e-4
    assert np.abs(got["query"][2] - got["query"][3]).max() > 1e-4


def test_survey_broadcast_padding_and_kept_votes(base, run, assert_close):
    model = tf.saved_model.load(str(base / "stynet" / "1"))
    customers = _customers(run)
    survey, votes = customers[0]
    # One survey for every row (batch size 1) equals it repeated; "" pads questions and votes.
    shared = _call(model, contract.new_customer_inputs([votes, votes[:2]], 5, survey=survey))
    per_row = _call(model, contract.new_customer_inputs([votes, votes[:2]], 5,
                                                        survey=[survey, survey]))
    np.testing.assert_array_equal(shared["item_ids"], per_row["item_ids"])
    padded = _call(model, {"voted_item_ids": [[votes[0][0], "", votes[1][0]]],
                           "votes": [[votes[0][1], 42.0, votes[1][1]]],
                           "survey_questions": [["", "favourite_colour"]],
                           "survey_answers": [["ignored", survey["favourite_colour"]]]})
    packed = _call(model, contract.new_customer_inputs(
        [votes[:2]], survey={"favourite_colour": survey["favourite_colour"]}))
    assert_close(padded["query"], packed["query"], ulps=8)
    # exclude_voted=False keeps the voted items, as the Python path ranks them.
    kept = _call(model, _inputs(customers, 80, exclude_voted=False))
    expected, items = _python_answer(run, customers, 80, exclude_voted=False)
    _check_answer(kept, expected, items, assert_close, "exclude_voted=False")
    # An answer "" is no answer: with no votes, the cold start.
    blank = _call(model, contract.new_customer_inputs([[]], survey={"favourite_colour": ""}))
    assert blank["cold_start"].tolist() == [True]


BAD = {
    "unknown answer": ({"survey_questions": [["favourite_colour"]],
                        "survey_answers": [["mauve"]]}, "favourite_colour=mauve"),
    "unknown question": ({"survey_questions": [["shoe_size"]], "survey_answers": [["42"]]},
                         "shoe_size"),
    "question twice": ({"survey_questions": [["favourite_colour", "favourite_colour"]],
                        "survey_answers": [["navy", "red"]]}, "answered twice"),
    "survey shapes": ({"survey_questions": [["favourite_colour"]],
                       "survey_answers": [["navy", "red"]]}, "one answer per question"),
    "unknown item": ({"voted_item_ids": [["no-such-item", ""]]}, "no-such-item"),
    "vote above the range": ({"votes": [[1.0, 3.5]]}, "3.5"),
    "vote not finite": ({"votes": [[float("nan"), 1.0]]}, "outside the rating range"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_fail_in_the_graph_naming_the_problem(base, run, case):
    change, message = BAD[case]
    model = tf.saved_model.load(str(base / "stynet" / "1"))
    ids = run.dataset.items.ids
    inputs = {"voted_item_ids": [[ids[1], ids[2]]], "votes": [[1.0, -1.0]], **change}
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _call(model, inputs)
    assert message in str(error.value)


def test_warmup_replays_and_our_server_answers_the_official_client(base, run, assert_close,
                                                                    capsys):
    from tfrec_fashion_serving.server import start_server

    version = base / "stynet" / "1"
    assert sorted(testing.replay_warmup(version)) == sorted(
        ["recommend", "score", "user_query", SIGNATURE])
    customers = _customers(run)
    with start_server(str(base / "models.config"), port=0) as server:
        server.wait_until_available("stynet", timeout=120, version=1)
        target = f"127.0.0.1:{server.port}"
        answer = client.recommend_new_customer(
            target, "stynet", [votes for _, votes in customers], k=10,
            survey=[survey for survey, _ in customers])
        expected, items = _python_answer(run, customers, 10)
        _check_answer(answer, expected, items, assert_close, "server")
        np.testing.assert_array_equal(answer["cold_start"], [False, False, False, True])
        with pytest.raises(grpc.RpcError) as error:
            client.recommend_new_customer(target, "stynet", [[]],
                                          survey={"favourite_colour": "mauve"})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "favourite_colour=mauve" in error.value.details()
        # The command line: survey answers and votes of one new customer.
        survey, votes = customers[0]
        capsys.readouterr()
        assert client.main(["--server", target, "--model", "stynet", "--k", "3",
                            *(f"--answer={q}={a}" for q, a in survey.items()),
                            *(f"--vote={item}={vote:g}" for item, vote in votes)]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert printed[0] == f"model stynet version 1 signature {SIGNATURE}"
        expected, _ = _python_answer(run, customers[:1], 3)
        assert [line.split()[3] for line in printed[2:]] == list(expected["item_ids"][0])
        # Survey answers alone are a request too; a malformed one is a usage error.
        assert client.main(["--server", target, "--model", "stynet", "--answer",
                            f"favourite_colour={survey['favourite_colour']}"]) == 0
        with pytest.raises(SystemExit):
            client.main(["--server", target, "--model", "stynet", "--answer", "navy"])
        assert "--answer takes QUESTION=ANSWER" in capsys.readouterr().err


def test_without_a_survey_the_signature_is_the_votes_alone_on_the_star_scale(tmp_path,
                                                                             assert_close):
    """Data without survey answers (ids and 1..5 stars): StyNet's recommend_new_customer takes
    exactly Partial Dual's inputs, answers as the Python path, and refuses a vote of 6."""
    from tests.training.test_stynet import ids_and_stars
    from tfrec_fashion.training.model_configs import StyNetConfig
    from tfrec_fashion.training.recipes import get_recipe
    from tfrec_fashion.training.run_config import TrainConfig
    from tfrec_fashion_export.writer import export_parts

    dataset = ids_and_stars()
    recipe = get_recipe(StyNetConfig(use_visual_features=False, history_length=4),
                        TrainConfig(batch_size=16))
    recipe.prepare(dataset)
    model = recipe.build_model()
    model.compile("adam")
    model.fit(recipe.datasets()[0], epochs=1, verbose=0)
    parts = recipe.serving_parts(model)
    assert parts.new_customer.survey == {} and parts.new_customer.rating_range == (1.0, 5.0)
    version = export_parts(parts, tmp_path, "stars")
    signature_def = read_signature_defs(str(version))[SIGNATURE]
    assert set(signature_def.inputs) == {t.name for t in contract.RECOMMEND_NEW_CUSTOMER.inputs}
    assert contract.differences(contract.RECOMMEND_NEW_CUSTOMER, signature_def) == []
    ids = dataset.items.ids
    votes = [[(ids[0], 5.0), (ids[3], 1.0), (ids[4], 4.5)], []]
    loaded = tf.saved_model.load(str(version))
    signature = loaded.signatures[SIGNATURE]
    inputs = {tensor.name: tensor.default_tensor() for tensor in
              contract.RECOMMEND_NEW_CUSTOMER.inputs if tensor.default is not None}
    inputs.update({name: tf.constant(value) for name, value in
                   contract.new_customer_inputs(votes, 2).items()})
    answer = signature(**inputs)
    for row, customer in enumerate(votes):
        query, cold = recipe.new_customer_query(model, None, [(list(ids).index(item), vote)
                                                             for item, vote in customer])
        assert_close(answer["query"].numpy()[row], query, ulps=64,
                     scale=np.abs(query).max())
        assert answer["cold_start"].numpy()[row] == cold == (not customer)
    with pytest.raises(tf.errors.InvalidArgumentError, match="vote value"):
        signature(**{**inputs, "votes": tf.constant([[6.0, 1.0, 4.5], [0.0, 0.0, 0.0]])})
