"""The recipes' side of the explicit-rating protocol (``evaluation.ratings``).

The models that learn customer embeddings from ratings (Partial Dual, StyNet) are evaluated by
``evaluation.ratings.RatingEvaluation`` (per-customer 80/10/10 split, RMSE / MAE and, for +-1
votes, pooled and per-customer AUC, beside global mean, biases and MF). This adapter builds it
in ``prepare``, hands it the model's predictions, logs the validation numbers every epoch
(``val_rmse``, ``val_auc``, ...), and writes the shared embeddings file: ``embeddings(model)``
gives the ``data.embeddings.CustomerEmbeddings`` (customer and item vectors keyed by id) that
the harness saves as ``embeddings.npz``.
"""

from __future__ import annotations

import abc

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.embeddings import CustomerEmbeddings
from tfrec_fashion.data.splits import RatingSplit
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.recipes.base import Recipe


class RatingRecipe(Recipe):
    """A recipe evaluated by the rating protocol, with an embeddings file.

    Subclasses build and train the model and say how it predicts: ``predict(model, user,
    item)`` -> ratings on the dataset's scale, and ``user_vectors(model)`` /
    ``item_vectors(model)`` for the embeddings file (and the export's retrieval index).

    Attributes set by ``prepare``:
        dataset: the dataset.
        evaluation: the protocol's ``RatingEvaluation`` on it.
        split: its ``RatingSplit`` (the training ratings the model learns from).
        rating_range: (low, high) of the rating scale.
    """

    protocol = "ratings"
    #: what ``embeddings()`` writes as ``metadata["score"]`` (see ``data.embeddings``).
    score_rule = "dot"

    def prepare(self, dataset: FashionDataset) -> None:
        self.dataset = dataset
        self.evaluation = self.protocol_evaluation(dataset)
        self.split: RatingSplit = self.evaluation.split
        self.rating_range = self.evaluation.rating_range
        self.prepare_inputs(dataset)

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        """Hook: derive the model's inputs (features, histories) from the dataset."""

    @abc.abstractmethod
    def predict(self, model, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Predicted ratings [n] (dataset scale) for int index arrays [n]."""

    @abc.abstractmethod
    def user_vectors(self, model) -> np.ndarray:
        """float [n_users, d]: the customer embeddings E_c."""

    @abc.abstractmethod
    def item_vectors(self, model) -> np.ndarray:
        """float [n_items, d]: the item embeddings."""

    def callbacks(self, model) -> list:
        return [EpochMetrics(lambda m: self.evaluation.split_metrics(
            lambda user, item: self.predict(m, user, item), "validation", ""))]

    def evaluate(self, model) -> dict[str, float]:
        """The model's test and validation numbers, then the baselines' (and oracle's)."""
        return self.evaluation.metrics(lambda user, item: self.predict(model, user, item))

    def embeddings(self, model, **metadata) -> CustomerEmbeddings:
        """The shared embeddings file's content for a trained ``model``."""
        return CustomerEmbeddings(
            user_ids=self.dataset.users.ids, user_vectors=self.user_vectors(model),
            item_ids=self.dataset.items.ids, item_vectors=self.item_vectors(model),
            metadata={"model": self.model_config.name, "dataset": self.dataset.name,
                      "score": self.score_rule, **metadata})
