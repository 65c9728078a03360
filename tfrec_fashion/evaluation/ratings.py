"""The explicit-rating protocol of the models that learn customer embeddings (paper 000, section
3.1): Partial Dual and StyNet, trained on "love it or leave it" votes or 1..5 ratings.

- **Split**: each customer's ratings at random, 80% train, 10% validation, 10% test
  (``data.splits.split_ratings_by_user``, seeded by the run's seed); every customer keeps at
  least one training rating.
- **Numbers**: RMSE and MAE of the predicted rating on the held-out ratings, predictions
  clipped to the dataset's rating range. For +-1 votes also the ROC AUC of the predictions
  pooled over customers (``test_auc``) and averaged per customer (``test_customer_auc``, PSA-Net
  section 6's customer-level AUC): do the embeddings predict held-out votes?
- **Rows beside the model**: global mean, user + item biases and plain matrix factorisation
  (``evaluation.rating_baselines``, regularisation tuned on validation), each with its fit
  time; on a planted world, the oracle (the true score, for the AUCs).

The protocol takes the model's predictions from the caller (``predict(user, item)``, a function
a recipe builds from its model), never a model.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Ratings
from tfrec_fashion.data.splits import RatingSplit, split_ratings_by_user
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.rating_baselines import rmse, tuned_baselines
from tfrec_fashion.metrics import customer_level_metrics, overall_metrics

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)

#: (int user indices [n], int item indices [n]) -> predicted ratings [n] on the dataset's scale.
Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


class RatingEvaluation:
    """Per-customer random split of explicit ratings; RMSE / MAE (and vote AUCs) of a model
    given by its predictions, and of the baselines and the oracle.

    Args:
        dataset: a dataset with explicit ratings.
        seed: the run's seed (the split, the baselines).
        model_name: the model being evaluated, named when the dataset cannot serve it.

    Attributes:
        split: the ``data.splits.RatingSplit`` (train / validation / test ratings).
        rating_range: (low, high) of the scale: ``metadata["rating_range"]`` or the training
            ratings' own.
        binary: whether every rating is a +-1 vote (then the AUCs are reported too).

    Example:
        evaluation = RatingEvaluation(dataset, seed=0)
        metrics = evaluation.metrics(lambda user, item: fitted.predict(user, item))
        metrics["test_rmse"], metrics["biases_test_rmse"]
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "model"):
        if dataset.ratings is None or len(dataset.ratings) == 0:
            raise DataError(f"model {model_name} learns from explicit ratings; "
                            f"dataset {dataset.name!r} has none (use data: synthetic with "
                            "ratings_per_user > 0, movielens_100k, or a folder with "
                            "ratings.csv)")
        self.dataset = dataset
        self.seed = seed
        self.split: RatingSplit = split_ratings_by_user(dataset.ratings, SPLIT_FRACTIONS,
                                                        seed=seed)
        train_values = self.split.train.value
        low, high = dataset.metadata.get("rating_range",
                                         (float(train_values.min()), float(train_values.max())))
        self.rating_range = (float(low), float(high))
        self.binary = bool(np.isin(dataset.ratings.value, (-1.0, 1.0)).all())
        self._baselines: dict[str, float] | None = None

    def clipped(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, *self.rating_range)

    # ------------------------------------------------------------------ the model's numbers
    def rating_metrics(self, predicted: np.ndarray, ratings: Ratings, prefix: str
                       ) -> dict[str, float]:
        """``{prefix}rmse``, ``{prefix}mae`` and, for +-1 votes, ``{prefix}auc`` (pooled) and
        ``{prefix}customer_auc`` (customer average) of raw scores ``predicted`` [n]."""
        value = ratings.value.astype(np.float64)
        clipped = self.clipped(np.asarray(predicted, np.float64))
        metrics = {f"{prefix}rmse": rmse(clipped, value),
                   f"{prefix}mae": float(np.mean(np.abs(clipped - value)))}
        if self.binary:
            metrics.update(vote_aucs(predicted, ratings, prefix))
        return metrics

    def split_metrics(self, predict: Predict, split: str, prefix: str) -> dict[str, float]:
        """``rating_metrics`` of ``predict`` on the held-out ``split`` ("validation", "test")."""
        ratings = getattr(self.split, split)
        return self.rating_metrics(predict(ratings.user, ratings.item), ratings, prefix)

    def metrics(self, predict: Predict) -> dict[str, float]:
        """The model's test and validation numbers, then the baselines' (and oracle's)."""
        return {**self.split_metrics(predict, "test", "test_"),
                **self.split_metrics(predict, "validation", "val_"),
                **self.baseline_metrics()}

    # ------------------------------------------------------------------ rows beside the model
    def baseline_metrics(self) -> dict[str, float]:
        """``<baseline>_test_rmse`` (and ``_test_auc``, ``_seconds``, ``_l2``) for
        global_mean, biases and mf; ``oracle_test_auc`` on planted worlds with votes."""
        if self._baselines is not None:
            return self._baselines
        split, n_users, n_items = self.split, self.dataset.n_users, self.dataset.n_items
        metrics: dict[str, float] = {}
        for name, (fitted, facts) in tuned_baselines(
                split.train, split.validation, n_users, n_items, seed=self.seed).items():
            predicted = fitted.predict(split.test.user, split.test.item)
            metrics.update(self.rating_metrics(predicted, split.test, f"{name}_test_"))
            metrics[f"{name}_seconds"] = round(facts["seconds"], 3)
        truth = (self.dataset.truth or {}).get("user_item_score")
        if truth is not None and self.binary:
            # Votes are sign(score - the user's median score + noise): rank by that margin.
            margin = truth - np.median(truth, axis=1, keepdims=True)
            metrics.update(vote_aucs(margin[split.test.user, split.test.item], split.test,
                                     "oracle_test_"))
        self._baselines = metrics
        return metrics


def vote_aucs(scores: np.ndarray, ratings: Ratings, prefix: str) -> dict[str, float]:
    """Pooled and customer-averaged ROC AUC of ``scores`` [n] against +-1 ``ratings.value``."""
    labels = np.where(ratings.value > 0, 1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # customers with one class are skipped
        per_customer = customer_level_metrics(ratings.user, scores, labels)
    return {f"{prefix}auc": float(overall_metrics(scores, labels)["roc_auc"]),
            f"{prefix}customer_auc": float(per_customer["roc_auc"])}
