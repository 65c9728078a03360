"""The recipes' side of the implicit-feedback protocol (``evaluation.implicit``).

Every model trained on implicit feedback (two-tower, BPR-MF, VBPR, TVBPR, I-VBPR, DVBPR) is
evaluated by ``evaluation.implicit.ImplicitEvaluation`` (leave-one-out split by time, per-user
AUC on all and cold items, RAND / PopRank / VisRank and the oracle). This adapter builds it in
``prepare``, hands it the model's vectors, and logs the validation AUC every epoch
(``val_auc``) so the harness keeps the best epoch by it. A recipe on it only says how to read its
model's vectors: ``user_vectors(model)`` and ``item_vectors(model, epoch)``.
"""

from __future__ import annotations

import abc

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.splits import ImplicitSplit
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.recipes.base import Recipe


class ImplicitRankingRecipe(Recipe):
    """A recipe evaluated by the implicit protocol.

    Subclasses build the model and its training data and say how to read the model's vectors:
    ``user_vectors(model)`` [n_users, d] and ``item_vectors(model, epoch)`` [n_items, d].
    ``n_time_epochs`` > 1 makes held-out items scored at their own time epoch.

    Attributes set by ``prepare``:
        dataset: the dataset.
        evaluation: the protocol's ``ImplicitEvaluation`` on it.
        split: its ``ImplicitSplit`` (the training interactions the model learns from).
    """

    protocol = "implicit"
    n_time_epochs: int = 1

    def prepare(self, dataset: FashionDataset) -> None:
        self.dataset = dataset
        self.evaluation = self.protocol_evaluation(dataset)
        self.split: ImplicitSplit = self.evaluation.split
        self.prepare_inputs(dataset)

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        """Hook: derive the model's inputs (features, images) from the dataset."""

    @abc.abstractmethod
    def user_vectors(self, model) -> np.ndarray:
        """float [n_users, d]."""

    @abc.abstractmethod
    def item_vectors(self, model, epoch: int | None = None) -> np.ndarray:
        """float [n_items, d] at time epoch ``epoch`` (None: the last, "now")."""

    def train_epoch_matrix(self) -> scipy.sparse.csr_matrix:
        """int32 [n_users, n_items] CSR: the time epoch of every training interaction."""
        return self.evaluation.train_epoch_matrix(self.n_time_epochs)

    def auc(self, model, split: str = "test", cold: bool = False) -> float:
        """The model's mean per-user AUC on the held-out ``split`` items."""
        return self.evaluation.auc(self.user_vectors(model),
                                   lambda epoch: self.item_vectors(model, epoch), split, cold,
                                   self.n_time_epochs)

    def callbacks(self, model) -> list:
        return [EpochMetrics(lambda m: {"auc": self.auc(m, "validation")})]

    def evaluate(self, model) -> dict[str, float]:
        """test_auc and cold_test_auc of the model, then the baselines' and oracle's."""
        return self.evaluation.metrics(self.user_vectors(model),
                                       lambda epoch: self.item_vectors(model, epoch),
                                       self.n_time_epochs)
