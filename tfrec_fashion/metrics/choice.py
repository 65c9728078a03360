"""Accuracy of choosing the right item: fill-in-the-blank (PAN) and triplets (complete the look).

Ties never count as a full win: a tie is scored as the expected accuracy under a uniformly random
tie-break (1 / number tied for FITB, 1/2 for a triplet).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tfrec_fashion.metrics import _checks


def fitb_accuracy(scores: ArrayLike, answer_index: ArrayLike) -> float:
    """Fill-in-the-blank accuracy: the right choice must score highest among the candidates.

    Args:
        scores: float [n_questions, n_choices], the model's score of each candidate. NaN rejected.
        answer_index: int [n_questions], column of the right candidate, in [0, n_choices).

    Returns:
        Mean over questions of 1 / (number of choices tied at the top) when the answer is among
        them, else 0. NaN with a ``RuntimeWarning`` when there are no questions.
    """
    scores = _checks.as_float_array(scores, "scores", 2, "[n_questions, n_choices]")
    if scores.shape[1] == 0:
        raise ValueError("`scores` must have at least one choice. Received: n_choices=0")
    answers = np.asarray(answer_index)
    if answers.shape != scores.shape[:1]:
        raise ValueError(
            f"`answer_index` must have shape [n_questions]=({scores.shape[0]},). "
            f"Received: answer_index.shape={answers.shape}"
        )
    if answers.size and (
        not np.issubdtype(answers.dtype, np.integer)
        or answers.min() < 0
        or answers.max() >= scores.shape[1]
    ):
        raise ValueError(
            f"`answer_index` must hold integers in [0, n_choices={scores.shape[1]}). "
            f"Received: dtype={answers.dtype}, range [{answers.min()}, {answers.max()}]"
        )
    at_top = scores == scores.max(axis=1, keepdims=True)
    answer_at_top = at_top[np.arange(len(answers)), answers]
    values = answer_at_top / at_top.sum(axis=1)
    return _checks.mean_of_defined(values, "FITB accuracy", "there are no questions")


def triplet_accuracy(sim_anchor_positive: ArrayLike, sim_anchor_negative: ArrayLike) -> float:
    """Fraction of triplets with sim(anchor, positive) > sim(anchor, negative); a tie counts 1/2.

    Args:
        sim_anchor_positive: float [n_triplets]. NaN rejected.
        sim_anchor_negative: float [n_triplets]. NaN rejected.

    Returns:
        The accuracy; NaN with a ``RuntimeWarning`` when there are no triplets.
    """
    positive = _checks.as_float_array(sim_anchor_positive, "sim_anchor_positive", 1, "[n_triplets]")
    negative = _checks.as_float_array(sim_anchor_negative, "sim_anchor_negative", 1, "[n_triplets]")
    _checks.check_same_shape(positive, "sim_anchor_positive", negative, "sim_anchor_negative")
    values = (positive > negative) + 0.5 * (positive == negative)
    return _checks.mean_of_defined(values, "triplet accuracy", "there are no triplets")
