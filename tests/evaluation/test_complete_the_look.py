"""The complete-the-look protocol (paper 004): held-out triplets drawn from held-out outfits only,
triplet accuracy and the outfit score by mean pair cosine against NumPy, the oracle's triplet
accuracy against ``true_outfit_score`` directly, the random row near chance (and not a tie),
similar-item precision@k against a brute-force loop, the embedding spread's known values, the
registry entry and the table. On ``SyntheticWorldConfig.tiny(seed=0, outfits_per_user=10)``."""

import numpy as np
import pytest

from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world, true_outfit_score
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.complete_the_look import (CompleteTheLookEvaluation,
                                                        CompleteTheLookTable,
                                                        cosine_outfit_score, embedding_spread)
from tfrec_fashion.evaluation.protocols import get_protocol


@pytest.fixture(scope="module")
def world():
    return make_world(SyntheticWorldConfig.tiny(seed=0, outfits_per_user=10))


@pytest.fixture(scope="module")
def evaluation(world):
    return CompleteTheLookEvaluation(world, seed=0)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def anchors_and_candidates(questions):
    """(a, p, n) item arrays back from the {a, p} / {a, n} outfit pairs."""
    shared = (questions.positive >= 0) & (questions.positive == questions.negative)
    rows = np.arange(len(shared))
    anchor_slot = np.argmax(shared, 1)
    other_slot = np.argmax((questions.positive >= 0) & ~shared, 1)
    return (questions.positive[rows, anchor_slot], questions.positive[rows, other_slot],
            questions.negative[rows, other_slot])


def test_held_out_triplets_come_from_held_out_outfits_by_the_samplers_rules(world, evaluation):
    category = np.asarray(world.items.category)
    train = {(u, *row) for u, row in zip(evaluation.split.train.user,
                                          evaluation.split.train.items)}
    for split in ("validation", "test"):
        outfits = getattr(evaluation.split, split)
        anchor, positive, negative = anchors_and_candidates(evaluation.triplets[split])
        assert len(anchor) == 3 * len(outfits)
        for a, p, n, user in zip(anchor, positive, negative, evaluation.triplets[split].user):
            owners = [(u, row) for u, row in zip(outfits.user, outfits.items)
                      if a in row and p in row]
            assert owners and user == owners[0][0]  # a and p: one held-out outfit, its user
            assert category[a] != category[p] and category[n] == category[p]
            assert not any(a in row and n in row for _, row in owners)
            assert any(n in row for row in outfits.items)  # n: from another held-out outfit
        assert not train & {(u, *row) for u, row in zip(outfits.user, outfits.items)}


def test_triplet_accuracy_and_the_outfit_score_against_numpy(world, evaluation):
    vectors = np.random.default_rng(1).normal(size=(world.n_items, 4))
    score = cosine_outfit_score(vectors)
    u = unit(vectors)
    outfits = np.array([[0, 1, 2], [3, -1, 5], [-1, -1, 7]])
    expected = [(u[0] @ u[1] + u[0] @ u[2] + u[1] @ u[2]) / 3, u[3] @ u[5], 0.0]
    np.testing.assert_allclose(score(np.zeros(3, int), outfits), expected, rtol=1e-12)

    anchor, positive, negative = anchors_and_candidates(evaluation.triplets["test"])
    right = (u[anchor] * u[positive]).sum(1) > (u[anchor] * u[negative]).sum(1)
    metrics = evaluation.metrics(score, "test")
    assert metrics["triplet_accuracy"] == pytest.approx(right.mean())
    assert metrics["fitb"] == evaluation.outfits.metrics(score, "test")["fitb"]


def test_the_oracle_is_the_planted_outfit_score_and_random_is_chance(world, evaluation):
    questions = evaluation.triplets["test"]
    rows = evaluation.rows(np.ones((world.n_items, 3)))
    oracle = evaluation.metrics(rows["oracle"], "test")
    positive = true_outfit_score(world, questions.user, questions.positive)
    negative = true_outfit_score(world, questions.user, questions.negative)
    expected = (positive > negative).mean() + 0.5 * (positive == negative).mean()
    assert oracle["triplet_accuracy"] == pytest.approx(expected)
    random = evaluation.metrics(rows["random"], "test")
    assert 0.35 < random["triplet_accuracy"] < 0.65 and random["triplet_accuracy"] != 0.5
    assert 0.1 < random["fitb"] < 0.4
    # Constant vectors tie everything: exactly 1/2 and 1/4.
    constant = evaluation.metrics(rows["similar_as_complementary"], "test")
    assert constant["triplet_accuracy"] == 0.5 and constant["fitb"] == 0.25
    assert oracle["triplet_accuracy"] > random["triplet_accuracy"] + 0.15


def test_similar_precision_at_k_against_a_brute_force_loop(world, evaluation):
    vectors = np.random.default_rng(3).normal(size=(world.n_items, 5))
    category = np.asarray(world.items.category)
    colour = np.asarray(world.items.attributes["colour"])
    per_query, perfect = [], []
    for i in range(world.n_items):
        others = [j for j in range(world.n_items) if j != i and category[j] == category[i]]
        cosines = [unit(vectors)[i] @ unit(vectors)[j] for j in others]
        top = [others[j] for j in np.argsort(cosines)[::-1][:10]]
        per_query.append(np.mean([colour[j] == colour[i] for j in top]))
        perfect.append(min(10, sum(colour[j] == colour[i] for j in others)) / 10)
    assert evaluation.precision_at_k(vectors) == pytest.approx(np.mean(per_query))
    assert evaluation.precision_at_k(None) == pytest.approx(np.mean(perfect))
    with pytest.raises(DataError, match=r"similar items are judged by the attributes "
                                        r"\['class_name'\]; dataset .* has no \['class_name'\]"):
        CompleteTheLookEvaluation(world, similar_attributes=("class_name",))


def test_embedding_spread_known_values():
    assert embedding_spread(np.ones((5, 3))) == pytest.approx({"mean_cosine": 1.0,
                                                               "cosine_std": 0.0})
    spread = embedding_spread(np.eye(4), "style_")
    assert spread == {"style_mean_cosine": 0.0, "style_cosine_std": 0.0}
    # Two opposite pairs: cosines 1 (x2), -1 (x2) and 0 (x8) over the 12 ordered pairs.
    spread = embedding_spread(np.array([[1.0, 0], [1, 0], [0, 1], [0, -1]]))
    assert spread["mean_cosine"] == pytest.approx(0.0)
    assert spread["cosine_std"] == pytest.approx(np.sqrt(4 / 12))


def test_evaluate_reports_every_row_and_the_table_shows_them(world, evaluation):
    vectors = np.random.default_rng(4).normal(size=(world.n_items, 8))
    metrics = evaluation.evaluate(vectors, vectors[:, :4])
    for prefix in ("", "similar_as_complementary_", "random_", "oracle_", "global_oracle_"):
        for key in ("triplet_accuracy", "fitb", "outfit_auc"):
            assert 0.0 <= metrics[f"{prefix}test_{key}"] <= 1.0
    for prefix in ("", "style_", "pixels_", "random_", "oracle_"):
        assert 0.0 <= metrics[f"{prefix}similar_precision_at_10"] <= 1.0
    protocol = get_protocol("complete_the_look")
    assert protocol.evaluation_class() is CompleteTheLookEvaluation
    table = protocol.table("tiny", {"Model": metrics, "Other": metrics}, proposed="Model",
                           reference="Other")
    assert isinstance(table, CompleteTheLookTable)
    text = table.format_markdown()
    for row in ("Random", "Similar as complementary", "Global oracle", "Oracle (planted truth)",
                "| Model |", "Raw pixels cosine", "Style embedding (Other)"):
        assert row in text, row
    assert table.rows["Model"]["style_mean_cosine"] == metrics["style_mean_cosine"]
