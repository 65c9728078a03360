"""The outfit protocol (PAN Tables 1-2): the per-user split, FITB questions that are fixed and
fair, per-user AUC and NDCG (a hand-computed NDCG), the oracle far above the random row on the
planted world, a perfect and a constant score's known values, the validation numbers for the
training logs, and the protocol's registry entry and table. Numbers on
``SyntheticWorldConfig.tiny(seed=s, outfits_per_user=10)`` beside each threshold."""

import dataclasses

import numpy as np
import pytest

from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.outfits import (CandidateLists, OutfitEvaluation, OutfitTable,
                                              ndcg_per_user)
from tfrec_fashion.evaluation.protocols import get_protocol


def world_of(seed: int, **overrides):
    return make_world(SyntheticWorldConfig.tiny(seed=seed, outfits_per_user=10, **overrides))


@pytest.fixture(scope="module")
def world():
    return world_of(0)


@pytest.fixture(scope="module")
def evaluation(world):
    return OutfitEvaluation(world, seed=0)


def keys(user, items):
    return {(int(u), *map(int, row)) for u, row in zip(user, items)}


def constant(user, outfits):
    return np.zeros(len(user))


def test_every_user_keeps_training_outfits_and_the_splits_are_disjoint_and_seeded(world,
                                                                                  evaluation):
    split = evaluation.split
    assert (len(split.train), len(split.validation), len(split.test)) == (800, 100, 100)
    assert set(split.train.user) == set(world.outfits.user)  # everyone keeps training outfits
    ids = [set(part.ids) for part in (split.train, split.validation, split.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(world.outfits.ids)
    assert split.test.items.shape == (100, 3) and split.test.slots == ("top", "bottom", "shoes")
    again, other = OutfitEvaluation(world, seed=0), OutfitEvaluation(world, seed=1)
    np.testing.assert_array_equal(again.split.test.ids, split.test.ids)
    assert set(other.split.test.ids) != set(split.test.ids)


def test_fitb_questions_are_fixed_and_fair(world, evaluation):
    category = np.asarray(world.items.category)
    owned = keys(world.outfits.user, world.outfits.items)
    for name in ("validation", "test"):
        questions, held_out = evaluation.questions[name], getattr(evaluation.split, name)
        n = len(held_out)
        assert questions.choices.shape == (n, 4, 3)
        blanked = questions.choices[np.arange(n), :, questions.blank]  # [n, 4] the candidates
        truth = held_out.items[np.arange(n), questions.blank]
        assert (blanked == truth[:, None]).sum(1).tolist() == [1] * n  # the true one, once
        assert (blanked[np.arange(n), questions.answer] == truth).all()
        assert (np.sort(blanked, 1)[:, 1:] != np.sort(blanked, 1)[:, :-1]).all()  # distinct
        slots = np.array(held_out.slots)[questions.blank]
        assert (category[blanked] == slots[:, None]).all()  # all of the blank's category
        for column in range(4):  # the other slots are the outfit's own
            kept = np.arange(3)[None, :] != questions.blank[:, None]
            assert (questions.choices[:, column][kept] == held_out.items[kept]).all()
        # A distractor never completes another outfit the user owns.
        completed = [keys(questions.user, questions.choices[:, c]) & owned for c in range(4)]
        assert sum(len(found) for found in completed) == n
        assert 2 <= len(set(questions.blank)) and 3 <= len(set(questions.answer))  # random
    again = OutfitEvaluation(world, seed=0).questions["test"]
    np.testing.assert_array_equal(again.choices, evaluation.questions["test"].choices)
    np.testing.assert_array_equal(again.answer, evaluation.questions["test"].answer)


def test_candidate_lists_hold_each_users_outfits_against_four_random_outfits(world, evaluation):
    lists, test = evaluation.lists["test"], evaluation.split.test
    assert len(lists.user) == 5 * len(test) and lists.label.sum() == len(test)
    assert keys(lists.user[lists.label == 1], lists.items[lists.label == 1]) \
        == keys(test.user, test.items)
    negatives = keys(lists.user[lists.label == 0], lists.items[lists.label == 0])
    assert not negatives & keys(world.outfits.user, world.outfits.items)
    category = np.asarray(world.items.category)[lists.items]
    assert (category == np.array(test.slots)).all()
    for row in lists.rows:  # each list is one user's
        assert len(set(lists.user[row[row >= 0]])) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_oracle_beats_random_clearly_on_the_planted_world(seed):
    results = OutfitEvaluation(world_of(seed), seed=seed).evaluate(constant)
    for split in ("validation", "test"):
        assert results[f"oracle_{split}_fitb"] > 0.65  # 0.80-0.83 on test, global 0.51-0.55
        assert results[f"oracle_{split}_auc"] > 0.9  # 0.98-1.00, global 0.84-0.88
        assert results[f"oracle_{split}_ndcg"] > 0.9
        # The average user's taste is the ceiling of a model that is not personalised.
        assert results[f"oracle_{split}_fitb"] - results[f"global_oracle_{split}_fitb"] > 0.15
        assert results[f"oracle_{split}_auc"] - results[f"global_oracle_{split}_auc"] > 0.05
        assert abs(results[f"random_{split}_fitb"] - 0.25) < 0.1  # 0.20-0.23
        assert abs(results[f"random_{split}_auc"] - 0.5) < 0.1  # 0.46-0.55


def test_a_perfect_score_gets_one_and_a_constant_one_chance_with_ties_shared(evaluation):
    held_out = keys(evaluation.split.validation.user, evaluation.split.validation.items) \
        | keys(evaluation.split.test.user, evaluation.split.test.items)

    def perfect(user, outfits):
        return np.array([float(k in held_out) for k in keys_list(user, outfits)])

    for split in ("validation", "test"):
        assert evaluation.metrics(perfect, split) == {"fitb": 1.0, "auc": 1.0, "ndcg": 1.0}
        tied = evaluation.metrics(constant, split)
        # Ties are the expected value of a random tie-break: 1/4 of each question, 1/2 of each
        # (positive, negative) pair, and NDCG spreads the one positive's gain over the 5 ranks.
        assert tied["fitb"] == 0.25 and tied["auc"] == 0.5
        assert tied["ndcg"] == pytest.approx(sum(1 / np.log2(r + 1) for r in range(1, 6)) / 5)


def keys_list(user, items):
    return [(int(u), *map(int, row)) for u, row in zip(user, items)]


def test_ndcg_against_a_hand_computed_example():
    # User 0: scores rank positive, negative, positive -> DCG 1 + 1/log2(4) = 1.5, ideal
    # 1 + 1/log2(3). User 1: its one positive second of four -> 1/log2(3). Padded to 4.
    lists = CandidateLists(user=np.array([0, 0, 0, 1, 1, 1, 1]),
                           items=np.zeros((7, 3), np.int64),
                           label=np.array([1, 0, 1, 0, 1, 0, 0]),
                           rows=np.array([[0, 1, 2, -1], [3, 4, 5, 6]]))
    scores = np.array([0.9, 0.8, 0.1, 3.0, 2.0, 1.0, -5.0])
    expected = [1.5 / (1 + 1 / np.log2(3)), 1 / np.log2(3)]
    np.testing.assert_allclose(ndcg_per_user(scores, lists), expected, rtol=1e-12)


def test_validation_numbers_reach_the_training_logs(evaluation):
    from tfrec_fashion.training.callbacks import EpochMetrics

    oracle = evaluation.rows()["oracle"]
    callback = EpochMetrics(evaluation.validation_metrics(lambda model: oracle))
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    expected = evaluation.metrics(oracle, "validation")
    assert logs == {"loss": 1.0, **{f"val_{k}": v for k, v in expected.items()}}


def test_data_without_enough_outfits_and_bad_scores_are_refused(world, evaluation):
    with pytest.raises(DataError, match="model m needs users' outfits; dataset 'synth"):
        OutfitEvaluation(dataclasses.replace(world, outfits=None), model_name="m")
    with pytest.raises(DataError, match="model m: dataset .* too few outfits per user"):
        OutfitEvaluation(make_world(SyntheticWorldConfig.tiny(seed=0)), model_name="m")
    with pytest.raises(ValueError, match="must return 400 finite floats"):
        evaluation.metrics(lambda user, outfits: np.zeros(3), "test")
    with pytest.raises(ValueError, match="split must be one of"):
        evaluation.metrics(constant, "train")


def test_the_protocol_is_registered_and_prints_pan_tables(evaluation, tmp_path):
    protocol = get_protocol("outfits")
    assert protocol.evaluation_class() is OutfitEvaluation
    run = {**evaluation.evaluate(evaluation.rows()["oracle"]), "protocol": "outfits"}
    assert set(protocol.summary_columns) <= set(run)
    assert protocol.curve_references(run) == {
        row: run[f"{row}_test_auc"] for row in ("oracle", "global_oracle", "random")}
    weaker = {**run, "test_fitb": 0.5, "test_auc": 0.6}
    table = protocol.table("tiny world", {"PAN": weaker, "FHN": run}, proposed="PAN",
                           reference="FHN")
    assert isinstance(table, OutfitTable)
    assert list(table.rows) == ["Random", "PAN", "FHN",
                                "Global oracle (the average user's planted taste)",
                                "Oracle (planted truth)"]
    text = table.format_markdown()
    assert "| method | FITB | AUC | NDCG |" in text
    assert f"| FHN | **{run['test_fitb']:.4f}** | **{run['test_auc']:.4f}** |" in text
    assert f"| Random | {run['random_test_fitb']:.4f} |" in text  # never bold
    markdown, data = table.write(tmp_path)
    assert markdown.read_text().startswith("Held-out outfits on tiny world")
    assert '"best"' in data.read_text()
