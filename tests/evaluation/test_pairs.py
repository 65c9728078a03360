"""The pair protocol's numbers: pooled and customer-level ROC AUC, AUPRC, Recall@50% and
Precision@10 of held-out pair votes equal to scikit-learn and a brute-force ranking, the same
metrics for the personal and the global oracle, and its table showing every column beside the
global oracle's row."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tfrec_fashion.data.synthetic import SyntheticWorldConfig, make_world
from tfrec_fashion.evaluation.pairs import METRIC_KEYS, PairEvaluation
from tfrec_fashion.evaluation.protocols import PROTOCOLS

KEYS = list(METRIC_KEYS.values())


@pytest.fixture(scope="module")
def evaluation():
    world = make_world(SyntheticWorldConfig.tiny(seed=2, n_users=40, n_items=60,
                                                 pair_ratings_per_user=60))
    return PairEvaluation(world, seed=2)


def noisy_oracle(evaluation):
    """The personal oracle plus noise: continuous scores (no ties), informative but imperfect."""
    oracle = evaluation.oracles()["oracle"]

    def score(user, item_a, item_b):
        noise = np.random.default_rng(len(user)).normal(size=len(user))
        return oracle(user, item_a, item_b) + noise
    return score


def brute_force(scores, positive):
    """AUC, AP, Recall@50% and Precision@10 of one group by sorting it (no ties); NaN where
    undefined (AUC without both labels, AP and recall without a positive)."""
    ranked = positive[np.argsort(-scores)]
    top = int(np.ceil(0.5 * len(ranked)))
    both = 0 < positive.sum() < len(positive)
    return {"auc": roc_auc_score(positive, scores) if both else np.nan,
            "auprc": average_precision_score(positive, scores) if positive.any() else np.nan,
            "recall_at_50": ranked[:top].sum() / ranked.sum() if positive.any() else np.nan,
            "precision_at_10": ranked[:10].mean()}


def test_pooled_and_customer_metrics_equal_sklearn_and_a_brute_force_ranking(evaluation):
    score = noisy_oracle(evaluation)
    results = evaluation.metrics(score, "test")
    test = evaluation.split.test
    scores = score(test.user, test.item_a, test.item_b)
    positive = test.label > 0
    expected = brute_force(scores, positive)
    per_customer = [brute_force(scores[test.user == u], positive[test.user == u])
                    for u in np.unique(test.user)]
    assert sum(np.isfinite(row["auc"]) for row in per_customer) > 10  # both labels held out
    for key in KEYS:
        assert results[key] == pytest.approx(expected[key], abs=1e-12), key
        average = np.nanmean([row[key] for row in per_customer])  # each customer equally
        assert results[f"customer_{key}"] == pytest.approx(average, abs=1e-12), key


def test_the_model_and_both_oracles_report_every_metric(evaluation):
    results = evaluation.evaluate(noisy_oracle(evaluation))
    for row in ("", "oracle_", "global_oracle_"):
        for key in KEYS:
            for scope in ("", "customer_"):
                name = f"{row}test_{scope}{key}"
                assert 0.0 <= results[name] <= 1.0, name
    # The personal truth ranks each customer's votes best; the noisy copy and the average
    # customer's taste do worse.
    assert results["oracle_test_customer_auc"] > results["test_customer_auc"]
    assert results["oracle_test_customer_auc"] > results["global_oracle_test_customer_auc"]
    assert results["oracle_test_customer_auprc"] > results["global_oracle_test_customer_auprc"]


def test_the_pair_table_shows_every_metric_and_the_global_oracle(evaluation, tmp_path):
    run = {"protocol": "pairs", **evaluation.evaluate(noisy_oracle(evaluation))}
    table = PROTOCOLS["pairs"].table("world", {"PSA-Net": run}, proposed="PSA-Net",
                                     reference="PSA-Net")
    assert list(table.rows) == ["PSA-Net", "Global oracle (the average customer's planted taste)"]
    assert table.rows["Global oracle (the average customer's planted taste)"][
        "test_customer_auprc"] == run["global_oracle_test_customer_auprc"]
    assert table.oracle["test_precision_at_10"] == run["oracle_test_precision_at_10"]
    header = table.format_markdown().splitlines()[2]
    for title in ("vote AUC", "customer AUC", "AUPRC", "customer AUPRC", "R@50%",
                  "customer R@50%", "P@10", "customer P@10"):
        assert f"| {title} |" in header, title
    assert "test_customer_auprc" in PROTOCOLS["pairs"].summary_columns
