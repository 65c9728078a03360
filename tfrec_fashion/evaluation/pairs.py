"""The pair protocol (PSA-Net, paper 000 section 6): customers' +1 / -1 votes on (top, bottom)
pairs, held out per customer, scored by a compatibility model.

- **Split**: each customer's votes at random 80 / 10 / 10 into train / validation / test
  (``data.splits.split_ratings_by_user``), so every customer keeps training votes.
- **Metrics** (section 6.1, computed by ``metrics.customer_level``): ROC AUC, AUPRC, Recall@50%
  and Precision@10 of the model's scores against the votes, once on all held-out votes pooled
  (``auc``, ``auprc``, ``recall_at_50``, ``precision_at_10``) and once per customer averaged over
  customers, each customer counting equally (``customer_auc``, ``customer_auprc``,
  ``customer_recall_at_50``, ``customer_precision_at_10``). A customer for whom a metric is
  undefined (no held-out vote of one label) is left out of that average; a metric undefined for
  every customer is left out of the results, not NaN.
- **Rows beside the model** (on a planted world): ``oracle``, the true personal pair score
  (``true_pair_score``: each customer's own subspace weights), and ``global_oracle``, the true
  score of the average customer (the mean weights): the ceiling of any model that is not
  personalised, so "personalised beats global" is measured against it.

A model is held to the protocol through a score function ``score(user, item_a, item_b)`` of
int arrays [n] -> float [n], higher = more compatible: the recipe passes it, this module never
sees a model.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, PairRatings
from tfrec_fashion.data.splits import RatingSplit, split_ratings_by_user
from tfrec_fashion.data.synthetic_truth import true_pair_score, true_subspace_compatibility
from tfrec_fashion.errors import DataError
from tfrec_fashion.metrics.customer_level import (
    customer_level_metrics,
    metric_names,
    overall_metrics,
)

PairScore = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_SPLITS = ("validation", "test")
#: ``metrics.customer_level``'s metric names -> the protocol's keys (pooled; ``customer_`` + key
#: for the customer average), e.g. ``test_recall_at_50`` and ``test_customer_recall_at_50``.
METRIC_KEYS = dict(zip(metric_names(), ("auc", "auprc", "recall_at_50", "precision_at_10")))


class PairEvaluation:
    """Splits a dataset's pair votes and holds scores to them (see the module docstring).

    Args:
        dataset: a dataset with ``pair_ratings``.
        seed: the seed of the per-customer split.
        model_name: named in errors.
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "the model"):
        pairs = dataset.pair_ratings
        if pairs is None or len(pairs) == 0:
            raise DataError(f"model {model_name} needs pair votes (pair_ratings); dataset "
                            f"{dataset.name!r} has none: use the synthetic world "
                            "(pair_ratings_per_user > 0) or a converter that reads pair votes")
        self.dataset = dataset
        self.split: RatingSplit = split_ratings_by_user(pairs, seed=seed)

    def complements(self) -> dict[str, list[str]]:
        """Category -> the categories its partners come from in the training votes, both ways
        (a top's partners are bottoms and a bottom's are tops)."""
        category = np.asarray(self.dataset.items.category).astype(str)
        train: PairRatings = self.split.train
        found: dict[str, set[str]] = {}
        for a, b in set(zip(category[train.item_a], category[train.item_b])):
            found.setdefault(a, set()).add(b)
            found.setdefault(b, set()).add(a)
        return {key: sorted(value) for key, value in sorted(found.items())}

    def metrics(self, score: PairScore, split: str = "test") -> dict[str, float]:
        """The pooled and the customer-level metrics of ``score`` on the ``split`` votes
        (``auc``, ``customer_auc``, ``auprc``, ... : the module docstring); one undefined on
        every customer or on the pooled votes is left out (a world with few votes per customer
        holds out one each, so no customer has both labels)."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}. Received: split={split!r}")
        pairs: PairRatings = getattr(self.split, split)
        scores = np.asarray(score(pairs.user, pairs.item_a, pairs.item_b), np.float64)
        with warnings.catch_warnings():  # undefined everywhere: left out, not NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            pooled = overall_metrics(scores, pairs.label)
            customer = customer_level_metrics(pairs.user, scores, pairs.label)
        results = {}
        for name, key in METRIC_KEYS.items():
            for prefix, values in (("", pooled), ("customer_", customer)):
                if np.isfinite(values[name]):
                    results[prefix + key] = float(values[name])
        return results

    def evaluate(self, score: PairScore) -> dict[str, Any]:
        """The model's test metrics (``test_auc``, ``test_customer_auc``, ``test_auprc``, ...)
        and, on a planted world, the oracles' (``oracle_test_auc``, ``global_oracle_test_auprc``,
        ...)."""
        results = {f"test_{k}": v for k, v in self.metrics(score).items()}
        for name, oracle in self.oracles().items():
            results.update({f"{name}_test_{k}": v for k, v in self.metrics(oracle).items()})
        return results

    def oracles(self) -> dict[str, PairScore]:
        """The planted world's true pair scores, personal and for the average customer; none
        for data without a planted truth."""
        truth = self.dataset.truth
        if "user_subspace_weights" not in truth:
            return {}
        mean_weights = truth["user_subspace_weights"].mean(axis=0)

        def global_score(user, item_a, item_b):
            return true_subspace_compatibility(truth, item_a, item_b) @ mean_weights

        return {"oracle": lambda user, a, b: true_pair_score(truth, user, a, b),
                "global_oracle": global_score}
