"""PSA-Net customer-level metrics against sklearn (ROC AUC, AUPRC) and a per-rating reference."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tfrec_fashion.metrics import (
    customer_level_metrics,
    customer_metric_table,
    metric_names,
    overall_metrics,
)


def expected_positives_in_top(scores, positive, m):
    """Expected positives among the top m under a random tie-break, one rating at a time: a
    positive with `above` strictly higher scores and `tied` equal ones (itself included) sits
    uniformly in positions above+1 .. above+tied."""
    total = 0.0
    for s, p in zip(scores, positive):
        if p:
            above = sum(other > s for other in scores)
            tied = sum(other == s for other in scores)
            total += min(max(m - above, 0), tied) / tied
    return total


def reference_metrics(scores, positive, fraction=0.5, k=10):
    n, n_pos = len(scores), int(positive.sum())
    both = 0 < n_pos < n
    recall_cut = math.ceil(fraction * n)
    return {
        "roc_auc": roc_auc_score(positive, scores) if both else math.nan,
        "auprc": average_precision_score(positive, scores) if n_pos else math.nan,
        "recall": expected_positives_in_top(scores, positive, recall_cut) / n_pos if n_pos else math.nan,
        "precision": expected_positives_in_top(scores, positive, min(k, n)) / min(k, n),
    }


def random_ratings(seed, n_customers=25):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, size=n_customers)  # many customers have fewer than 10 ratings
    customer_ids = np.repeat(np.arange(n_customers) * 7 + 3, sizes)
    rng.shuffle(customer_ids)
    scores = rng.integers(0, 4, size=len(customer_ids)).astype(float)  # many ties
    labels = np.where(rng.random(len(customer_ids)) < 0.4, 1, -1)
    return customer_ids, scores, labels


def test_hand_computed_example():
    customer_ids = np.array(["a", "a", "a", "a", "b", "b", "b", "c"])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.1, 0.3])
    labels = np.array([1, -1, 1, -1, 1, -1, -1, -1])
    table = customer_metric_table(customer_ids, scores, labels)
    np.testing.assert_array_equal(table["customer_id"], ["a", "b", "c"])
    np.testing.assert_array_equal(table["n_ratings"], [4, 3, 1])
    np.testing.assert_array_equal(table["n_positive"], [2, 1, 0])
    # a: positive 0.9 beats both negatives, 0.7 beats 0.6 -> 3/4; b: a tie (1/2) and a win -> 1.5/2.
    np.testing.assert_allclose(table["roc_auc"], [0.75, 0.75, np.nan])
    # a: (precision 1 at rank 1 + 2/3 at rank 3) / 2; b: one threshold at 0.5 with precision 1/2.
    np.testing.assert_allclose(table["auprc"], [5 / 6, 0.5, np.nan])
    # Top ceil(n/2): a keeps 0.9, 0.8 -> 1 of 2 positives; b keeps the tied pair -> 1 of 1.
    np.testing.assert_allclose(table["recall@50%"], [0.5, 1.0, np.nan])
    # Fewer than 10 ratings: all of them.
    np.testing.assert_allclose(table["precision@10"], [0.5, 1 / 3, 0.0])

    averages = customer_level_metrics(customer_ids, scores, labels)
    assert averages["roc_auc"] == pytest.approx(0.75)
    assert averages["auprc"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert averages["recall@50%"] == pytest.approx(0.75)
    assert averages["precision@10"] == pytest.approx((0.5 + 1 / 3 + 0.0) / 3)
    assert averages["n_customers"] == 3
    assert averages["n_skipped"] == {"roc_auc": 1, "auprc": 1, "recall@50%": 1, "precision@10": 0}


def test_tie_straddling_the_cut_off_is_shared_pro_rata():
    scores = np.array([0.9, 0.5, 0.5, 0.5])
    labels = np.array([-1, 1, -1, -1])
    table = customer_metric_table(np.zeros(4), scores, labels, precision_k=2)
    # Top 2 = the 0.9 and one of three tied 0.5s, one of which is positive: 1/3 expected positive.
    assert table["recall@50%"][0] == pytest.approx(1 / 3)
    assert table["precision@2"][0] == pytest.approx(1 / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction, k", [(0.5, 10), (0.3, 3)])
def test_matches_sklearn_and_reference_per_customer(seed, fraction, k):
    customer_ids, scores, labels = random_ratings(seed)
    table = customer_metric_table(customer_ids, scores, labels, recall_fraction=fraction, precision_k=k)
    names = metric_names(fraction, k)
    for row, customer in enumerate(table["customer_id"]):
        mine = customer_ids == customer
        expected = reference_metrics(scores[mine], labels[mine] == 1, fraction, k)
        got = [table[name][row] for name in names]
        np.testing.assert_allclose(got, list(expected.values()), equal_nan=True, err_msg=str(customer))


def test_customer_average_and_overall_match_their_definitions():
    customer_ids, scores, labels = random_ratings(4)
    table = customer_metric_table(customer_ids, scores, labels)
    averages = customer_level_metrics(customer_ids, scores, labels)
    for name in metric_names():
        assert averages[name] == pytest.approx(np.nanmean(table[name]))
        assert averages["n_skipped"][name] == np.isnan(table[name]).sum()
    assert averages["n_customers"] == len(np.unique(customer_ids))

    overall = overall_metrics(scores, labels)
    expected = reference_metrics(scores, labels == 1)
    np.testing.assert_allclose([overall[name] for name in metric_names()], list(expected.values()))
    assert overall["n_customers"] == 1


def test_input_order_and_label_convention_do_not_matter():
    customer_ids, scores, labels = random_ratings(5)
    order = np.random.default_rng(0).permutation(len(scores))
    base = customer_metric_table(customer_ids, scores, labels)
    for permuted_labels in (labels[order], (labels[order] == 1).astype(int), labels[order] == 1):
        other = customer_metric_table(customer_ids[order], scores[order], permuted_labels)
        for key in base:
            np.testing.assert_allclose(other[key], base[key], equal_nan=True, rtol=1e-12)


def test_metric_undefined_everywhere_warns():
    with pytest.warns(RuntimeWarning, match="roc_auc for every customer is undefined: it needs"):
        averages = customer_level_metrics([1, 1, 2], [0.1, 0.2, 0.3], [1, 1, -1])
    assert math.isnan(averages["roc_auc"])
    assert averages["n_skipped"]["roc_auc"] == 2
    assert averages["auprc"] == 1.0  # customer 1: only positives, sklearn's AP of 1

    with pytest.warns(RuntimeWarning) as caught:
        overall = overall_metrics([0.1, 0.2], [0, 0])
    undefined = {str(warning.message).split(" on the pooled")[0] for warning in caught}
    assert undefined == {"roc_auc", "auprc", "recall@50%"}
    assert [math.isnan(overall[name]) for name in metric_names()] == [True, True, True, False]


def test_empty_input_gives_empty_table():
    table = customer_metric_table([], [], [])
    assert all(len(column) == 0 for column in table.values())


@pytest.mark.parametrize(
    "arguments, message",
    [
        (([1, 2], [0.1, 0.2], [1, 2]), r"`labels` must hold \+1/-1, 1/0 or bool .*Received values: \[1, 2\]"),
        (([1, 2], [0.1, 0.2], [1, 0, 1]), r"same length. Received: 2, 2, 3"),
        (([1, 2, 3], [0.1, 0.2, 0.3], [1, 0, -1]), r"one convention"),
        (([1, 2], [0.1, np.nan], [1, 0]), r"`scores` must not contain NaN"),
        (([[1, 2]], [0.1, 0.2], [1, 0]), r"`customer_ids` must be 1-D"),
    ],
)
def test_bad_input_names_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        customer_metric_table(*arguments)


def test_bad_cut_offs():
    with pytest.raises(ValueError, match=r"`precision_k` must be positive. Received: precision_k=0"):
        customer_level_metrics([1], [0.5], [1], precision_k=0)
    with pytest.raises(ValueError, match=r"`recall_fraction` must be in \(0, 1\]. Received: recall_fraction=1.5"):
        overall_metrics([0.5], [1], recall_fraction=1.5)
