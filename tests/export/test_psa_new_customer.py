"""PSA-Net for a new customer (issue 24): the compatibility head's ``complete_pair_new_customer``
and ``score_pairs_new_customer`` take a customer's E_c in place of their id, so the first outfit
of a customer who is not in the embeddings file is personal. As a user drives it: Partial Dual
trained first, PSA-Net on its embeddings, both exported; a new customer's votes folded in by
the Partial Dual run's own query (``psa_net.new_customer_embeddings``, the Python path, and its
served ``recommend_new_customer``'s ``query``), then PSA-Net's pairs for that E_c in a fresh
process without project code, equal to the Python path (``PsaNetRecipe.pair_scores`` with
``customer_embeddings``); a known customer's own E_c answers exactly as their id; two new
customers get different partners, the unknown id the mean customer's; bad vectors and votes
INVALID_ARGUMENT naming them, over our gRPC server with the official client too; exports whose
scorer reads no customer keep exactly the head's signatures (``test_compatibility_head.py``)."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tfrec_fashion.config import from_dict
from tfrec_fashion.data.embeddings import CustomerEmbeddings
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.recipes.psa_net import new_customer_embeddings, upstream_new_customer
from tfrec_fashion.training.run_config import RunConfig
from tfrec_fashion_export.runs import export_run
from tfrec_fashion_serving import client, contract, testing
from tfrec_fashion_serving.servable import read_signature_defs

# A tiny planted world; the test is of the served path, not of PSA-Net's quality.
WORLD = {"name": "synthetic", "seed": 3, "n_users": 60, "n_items": 80, "n_time_epochs": 1,
         "ratings_per_user": 30, "pair_ratings_per_user": 40, "image_size": 16}
PARTIAL_DUAL = {"name": "partial_dual", "C": 5.0, "max_iterations": 60, "centering": "global"}
PSA_NET = {"name": "psa_net", "feature_source": "attributes", "representation_dim": 8}
TRAIN = {"epochs": 4, "batch_size": 128, "learning_rate": 0.01, "verbose": 0}
SCORE, COMPLETE = (contract.SCORE_PAIRS_NEW_CUSTOMER.name,
                   contract.COMPLETE_PAIR_NEW_CUSTOMER.name)


def _train(run_dir, model, **train_config):
    return train(from_dict(RunConfig, {"run_dir": str(run_dir), "seed": 0, "data": WORLD,
                                       "model": model, "train": {**TRAIN, **train_config}}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("psa_new")
    upstream = _train(root / "partial_dual", PARTIAL_DUAL)
    psa = _train(root / "psa_net", {**PSA_NET, "customer_embeddings": str(upstream.run_dir)})
    export_run(upstream.run_dir, root / "base", "partial_dual")
    export_run(psa.run_dir, root / "base", "psa_net")
    return upstream, psa, root / "base"


def _newcomers(run, n_votes=8):
    """Two new customers' votes: opposite votes on the same items (their tastes differ)."""
    rng = np.random.default_rng(7)
    ids, (low, high) = run.dataset.items.ids, run.recipe.rating_range
    items = rng.choice(len(ids), n_votes, replace=False)
    votes = rng.choice([low, high], n_votes)
    return [[(ids[i], float(v)) for i, v in zip(items, votes)],
            [(ids[i], float(low + high - v)) for i, v in zip(items, votes)]]


def _tops_and_bottoms(psa, n=4):
    category = psa.dataset.items.category
    return np.flatnonzero(category == "top")[:n], np.flatnonzero(category == "bottom")[:n]


def _python_partners(psa, embedding, top, k):
    """The Python path's best k bottoms of a top for the customer with E_c ``embedding``."""
    bottoms = np.flatnonzero(psa.dataset.items.category == "bottom")
    scores = psa.recipe.pair_scores(psa.model, None, np.full(len(bottoms), top), bottoms,
                                    customer_embeddings=np.tile(embedding, (len(bottoms), 1)))
    order = np.argsort(-scores, kind="stable")[:k]
    return psa.dataset.items.ids[bottoms[order]], scores[order]


def test_personalised_exports_add_the_new_customer_signatures_by_the_contract(runs):
    _, psa, base = runs
    version = base / "psa_net" / "1"
    defs = read_signature_defs(str(version))
    for signature in (*contract.COMPATIBILITY.signatures, contract.SCORE_PAIRS_NEW_CUSTOMER,
                      contract.COMPLETE_PAIR_NEW_CUSTOMER):
        assert contract.differences(signature, defs[signature.name]) == [], signature.name
    # The head's own signatures keep exactly their inputs.
    assert set(defs["score_pairs"].inputs) == {"user_id", "item_id", "partner_id"}
    assert "attention_weights" in defs[SCORE].outputs
    info = json.loads((version / contract.DESCRIPTION_FILE).read_text())
    assert "recommend_new_customer query" in info["customer_vectors"]


def test_a_fresh_process_answers_a_new_customer_as_the_python_path(runs, assert_close):
    upstream, psa, base = runs
    fold_in = upstream_new_customer(psa.recipe.model_config.customer_embeddings)
    first, second = new_customer_embeddings(fold_in, _newcomers(upstream))
    # The upstream's own file and the Python path's E_c space: a known customer's row.
    file = CustomerEmbeddings.load(upstream.run_dir)
    own = file.user_vectors_for([psa.dataset.users.ids[0]])[0][0]
    mean = psa.recipe.file_embeddings.mean(axis=0)
    ids = psa.dataset.items.ids
    tops, bottoms = _tops_and_bottoms(psa)
    top, k = tops[0], 6
    embeddings = np.stack([own, first, second])
    requests = {
        SCORE: {"customer_embedding": embeddings,
                "item_id": contract.string_array(ids[tops[:3]]),
                "partner_id": contract.string_array(ids[bottoms[:3]])},
        COMPLETE: {"customer_embedding": embeddings,
                   "item_id": contract.string_array([ids[top]]),  # batch size 1 broadcasts
                   "k": np.full(3, k, np.int32), "category": contract.string_array([""] * 3),
                   "exclude_item_ids": contract.string_array([[""]] * 3)},
        "complete_pair": {"user_id": contract.string_array([psa.dataset.users.ids[0],
                                                            "someone-new"]),
                          "item_id": contract.string_array([ids[top]] * 2),
                          "k": np.full(2, k, np.int32), "category": contract.string_array([""] * 2),
                          "exclude_item_ids": contract.string_array([[""]] * 2)},
    }
    answers, imported = testing.answers_in_fresh_process(str(base / "psa_net" / "1"), requests)
    assert imported == []  # TensorFlow alone
    by_id, embedded = answers["complete_pair"], answers[COMPLETE]
    assert set(embedded) == {"item_ids", "scores"}  # no cold_start: a given customer
    # A known customer's own E_c is their id, exactly.
    np.testing.assert_array_equal(embedded["item_ids"][0], by_id["item_ids"][0])
    np.testing.assert_array_equal(embedded["scores"][0], by_id["scores"][0])
    np.testing.assert_array_equal(by_id["cold_start"], [False, True])
    # Served = the Python path: the Keras model on the standardised E_c, items' X once.
    for row, embedding in enumerate(embeddings):
        expected_ids, expected_scores = _python_partners(psa, embedding, top, k)
        np.testing.assert_array_equal(embedded["item_ids"][row].astype(str), expected_ids,
                                      err_msg=f"row {row}")
        assert_close(embedded["scores"][row], expected_scores, ulps=256,
                     scale=np.abs(expected_scores).max(), err_msg=f"row {row}")
    pairs = answers[SCORE]
    expected = psa.recipe.pair_scores(psa.model, None, tops[:3], bottoms[:3],
                                      customer_embeddings=embeddings)
    assert_close(pairs["scores"], expected, ulps=256, scale=np.abs(expected).max())
    # The unknown id is the mean customer; each new customer their own, apart from it and from
    # each other: personal from their first outfit.
    mean_ids, mean_scores = _python_partners(psa, mean, top, k)
    assert_close(by_id["scores"][1], mean_scores, ulps=256, scale=np.abs(mean_scores).max())
    np.testing.assert_array_equal(by_id["item_ids"][1].astype(str), mean_ids)
    # Bounds: half the smallest margin over world seeds 3-7 (weights 0.060-0.15, the two
    # newcomers' best scores 0.0063-0.040 apart, the first's 0.0019-0.044 from the mean's).
    weights = pairs["attention_weights"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(weights[1] - weights[2]).max() > 0.03, weights
    assert np.abs(embedded["scores"][1] - embedded["scores"][2]).max() > 3e-3, embedded
    assert np.abs(embedded["scores"][1] - by_id["scores"][1]).max() > 9e-4, (embedded, by_id)


def test_the_python_path_refuses_bad_votes_vectors_and_sources(runs, tmp_path):
    upstream, psa, _ = runs
    fold_in = upstream_new_customer(upstream.run_dir / "embeddings.npz")  # the file names it
    ids = upstream.dataset.items.ids
    with pytest.raises(tf.errors.InvalidArgumentError, match="no-such-item"):
        new_customer_embeddings(fold_in, [[("no-such-item", 1.0)]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the rating range"):
        new_customer_embeddings(fold_in, [[(ids[0], 3.5)]])
    with pytest.raises(ValueError, match="reads no survey"):
        new_customer_embeddings(fold_in, [[(ids[0], 1.0)]], [{"favourite_colour": "navy"}])
    tops, bottoms = _tops_and_bottoms(psa, 2)
    dim = psa.model.customer_dim
    for bad in (np.zeros((2, dim + 1)), np.full((2, dim), np.nan)):
        with pytest.raises(ValueError, match="customer_embeddings must be finite float"):
            psa.recipe.pair_scores(psa.model, None, tops, bottoms, customer_embeddings=bad)
    CustomerEmbeddings.load(upstream.run_dir).save(tmp_path / "copy.npz")  # no run beside it
    with pytest.raises(ConfigError, match="copy.npz: not a finished Partial Dual or StyNet"):
        upstream_new_customer(tmp_path / "copy.npz")


BAD = {
    "wrong size": (lambda dim: np.zeros((1, dim + 2), np.float32),
                   "customer_embedding has] [{width}] [columns; the customer vectors of this model "
                   "have {dim}"),
    "not finite": (lambda dim: np.array([[0.0] * (dim - 1) + [np.inf]] * 2, np.float32),
                   "not finite (NaN or inf) in row(s)] [0 1]"),
    "batch": (lambda dim: np.zeros((3, dim), np.float32),
              "item_id must have batch size 1 or that of customer_embedding"),
}


def test_our_server_chains_the_upstream_fold_in_and_refuses_bad_vectors(runs, assert_close):
    """The served path end to end: Partial Dual's ``recommend_new_customer`` folds the newcomer
    in (its ``query``), PSA-Net's ``complete_pair_new_customer`` completes their outfit, over
    gRPC with TF Serving's stubs; INVALID_ARGUMENT naming a bad vector or vote."""
    from tfrec_fashion_serving.server import start_server

    upstream, psa, base = runs
    newcomers = _newcomers(upstream)
    ids, dim = psa.dataset.items.ids, psa.model.customer_dim
    tops, bottoms = _tops_and_bottoms(psa, 2)
    with start_server(str(base / "models.config"), port=0) as server:
        for name in ("partial_dual", "psa_net"):
            server.wait_until_available(name, timeout=120)
        target = f"127.0.0.1:{server.port}"
        query = client.recommend_new_customer(target, "partial_dual", newcomers)["query"]
        answer = client.predict(target, "psa_net", {
            "customer_embedding": query,
            "item_id": contract.string_array([ids[tops[0]]] * 2)}, signature=COMPLETE)
        for row, embedding in enumerate(query):
            expected_ids, expected_scores = _python_partners(psa, embedding, tops[0],
                                                             contract.DEFAULT_K)
            np.testing.assert_array_equal(answer["item_ids"][row].astype(str), expected_ids)
            assert_close(answer["scores"][row], expected_scores, ulps=256,
                         scale=np.abs(expected_scores).max())
        # The Python path folds in as the served upstream does.
        folded = new_customer_embeddings(upstream_new_customer(upstream.run_dir), newcomers)
        assert_close(query, folded, ulps=16, scale=np.abs(folded).max())
        for case, (make, message) in BAD.items():
            embedding = make(dim)
            with pytest.raises(grpc.RpcError) as error:
                client.predict(target, "psa_net", {
                    "customer_embedding": embedding,
                    "item_id": contract.string_array([ids[tops[0]]] * 2),
                    "partner_id": contract.string_array([ids[bottoms[0]]] * 2)},
                    signature=SCORE)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
            assert message.format(width=embedding.shape[1], dim=dim) in error.value.details(), \
                (case, error.value.details())
        with pytest.raises(grpc.RpcError) as error:  # the upstream checks the votes
            client.recommend_new_customer(target, "partial_dual", [[(ids[0], 7.0)]])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "outside the rating range" in error.value.details()


def test_a_stynet_upstream_folds_survey_answers_and_votes_in(tmp_path, assert_close):
    """From StyNet (section 7.2.1's other source), ``new_customer_embeddings`` passes survey
    answers beside the votes and gives the customer tower's E_c as the Keras path does
    (``StyNetRecipe.new_customer_query``): votes and an answer, an answer alone (not the cold
    start), neither (the cold start). PSA-Net scores any E_c alike (the Partial Dual tests)."""
    stynet = _train(tmp_path / "stynet", {
        "name": "stynet", "embedding_dim": 8, "id_embedding_dim": 4, "feature_embedding_dim": 4,
        "hidden_units": 8, "history_length": 6, "use_visual_features": False}, epochs=1)
    colours = stynet.recipe.user_vocabularies["favourite_colour"]
    first, second = _newcomers(stynet)
    customers = [({"favourite_colour": str(colours[0])}, first),
                 ({"favourite_colour": str(colours[-1])}, second),
                 ({"favourite_colour": str(colours[0])}, []), ({}, [])]
    embeddings = new_customer_embeddings(upstream_new_customer(stynet.run_dir),
                                         [votes for _, votes in customers],
                                         [survey for survey, _ in customers])
    index = {item: row for row, item in enumerate(stynet.dataset.items.ids)}
    for row, (survey, votes) in enumerate(customers):
        expected, cold = stynet.recipe.new_customer_query(
            stynet.model, survey, [(index[item], vote) for item, vote in votes])
        assert cold == (row == 3)
        assert_close(embeddings[row], expected, ulps=64, scale=np.abs(expected).max(),
                     err_msg=f"row {row}")
    with pytest.raises(tf.errors.InvalidArgumentError, match="favourite_colour=mauve"):
        new_customer_embeddings(upstream_new_customer(stynet.run_dir), [[]],
                                [{"favourite_colour": "mauve"}])


def test_warmup_replays_the_new_customer_signatures(runs):
    """TF Serving replays the warm-up records at load: the *_new_customer signatures have theirs
    (the first customer's vector and the mean one), so their first request pays no tracing."""
    _, _, base = runs
    assert sorted(testing.replay_warmup(base / "psa_net" / "1")) == sorted(
        ["complete_pair", "score_pairs", COMPLETE, SCORE])


def test_runs_from_before_the_new_customer_signatures_keep_the_signatures_they_had(runs):
    """A PSA-Net run trained before issue 24 holds standardised customer vectors beside a
    scorer that does not standardise (no info["customer_vectors"]): an upstream query would be
    scored in the wrong space, so its export has no *_new_customer signatures."""
    from tfrec_fashion.training.serving_parts import load_parts
    from tfrec_fashion_export.compatibility import CompatibilityModule

    _, psa, _ = runs
    parts = load_parts(psa.run_dir)
    assert {SCORE, COMPLETE} <= set(CompatibilityModule(parts).signatures())
    del parts.info["customer_vectors"]
    signatures = CompatibilityModule(parts).signatures()
    assert SCORE not in signatures and COMPLETE not in signatures
    assert {s.name for s in contract.COMPATIBILITY.signatures} <= set(signatures)
