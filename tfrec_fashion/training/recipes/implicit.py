"""The shared protocol of the implicit-feedback ranking models (VBPR, DVBPR, I-VBPR papers).

Every model trained on implicit feedback (two-tower, BPR-MF, VBPR, TVBPR, I-VBPR, DVBPR) is
evaluated the same way, so the protocol lives here once:

- **Split**: per user the latest interaction is the test item T_u, the one before it the
  validation item V_u, the rest are training P_u (``data.splits.leave_one_out``, by time).
- **AUC**: per-user AUC (DVBPR eq. 3 / I-VBPR eq. 3-4): each held-out item against every item
  the user never interacted with, averaged over users. "Cold" (DVBPR Table III) restricts the
  held-out item and the negatives to items with fewer than 5 training interactions.
- **Best epoch**: ``val_auc`` is logged every epoch (``EpochMetrics``), so the harness keeps the
  epoch with the best validation AUC.
- **Rows beside the model**: RAND, PopRank, VisRank (when the items have pretrained features)
  and, on a planted world, the oracle: the true scores at the last time epoch ("now").

Scores are always inner products ``user_vectors(model) @ item_vectors(model, epoch).T``, the
form a retrieval index serves. Temporal models (TVBPR) score a held-out item at the time epoch
it happened in (``time_epochs`` over the training span; later times count as the last epoch).
"""

from __future__ import annotations

import abc
import warnings

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.splits import ImplicitSplit, leave_one_out, time_epochs
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.baselines import baseline_vectors
from tfrec_fashion.metrics import per_user_auc_values, per_user_auc_values_from_embeddings
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.recipes.base import Recipe

_SPLIT_NAMES = ("validation", "test")


class ImplicitRankingRecipe(Recipe):
    """Leave-one-out implicit feedback, per-user AUC on all and cold items, baselines, oracle.

    Subclasses build the model and its training data and say how to read the model's vectors:
    ``user_vectors(model)`` [n_users, d] and ``item_vectors(model, epoch)`` [n_items, d].
    ``n_time_epochs`` > 1 makes held-out items scored at their own time epoch.
    """

    n_time_epochs: int = 1

    def prepare(self, dataset: FashionDataset) -> None:
        if dataset.interactions is None or len(dataset.interactions) == 0:
            hint = ("; it has ratings: set data.min_rating to take the ratings >= it as "
                    "implicit feedback, e.g. --set data.min_rating=4"
                    if dataset.ratings is not None and len(dataset.ratings) else "")
            raise DataError(f"model {self.model_config.name} needs implicit interactions; "
                            f"dataset {dataset.name!r} has none{hint}")
        self.dataset = dataset
        self.split: ImplicitSplit = leave_one_out(dataset.interactions, dataset.n_users,
                                                  dataset.n_items, by="time", seed=self.seed)
        train_time = self.split.train.timestamp
        self.time_span = (int(train_time.min()), int(train_time.max()))
        self._baselines: dict[str, float] | None = None
        self.prepare_inputs(dataset)

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        """Hook: derive the model's inputs (features, images) from the dataset."""

    @abc.abstractmethod
    def user_vectors(self, model) -> np.ndarray:
        """float [n_users, d]."""

    @abc.abstractmethod
    def item_vectors(self, model, epoch: int | None = None) -> np.ndarray:
        """float [n_items, d] at time epoch ``epoch`` (None: the last, "now")."""

    # ------------------------------------------------------------------ time
    def epochs_of(self, timestamp: np.ndarray) -> np.ndarray:
        """The time epoch of each timestamp (all 0 for a static model)."""
        return time_epochs(timestamp, self.n_time_epochs, self.time_span)

    def train_epoch_matrix(self) -> scipy.sparse.csr_matrix:
        """int32 [n_users, n_items] CSR: the time epoch of every training interaction."""
        train = self.split.train
        return scipy.sparse.csr_matrix(
            (self.epochs_of(train.timestamp), (train.user, train.item)),
            shape=(self.split.n_users, self.split.n_items), dtype=np.int32)

    # ------------------------------------------------------------------ evaluation
    def auc_values(self, model, split: str = "test", cold: bool = False) -> np.ndarray:
        """Per-user AUC of ``model`` on the held-out ``split`` items (NaN where undefined)."""
        users = self.user_vectors(model)
        held_out = getattr(self.split, split)
        positives = getattr(self.split, f"{split}_matrix")
        exclude = self.split.exclude_matrix(split)
        mask = self.split.cold_items if cold else None
        if self.n_time_epochs == 1:
            return per_user_auc_values_from_embeddings(users, self.item_vectors(model),
                                                       positives, exclude, mask)
        # One held-out item per user: score each user's row with the items of its epoch.
        user_epoch = np.full(self.split.n_users, self.n_time_epochs - 1)
        user_epoch[held_out.user] = self.epochs_of(held_out.timestamp)
        values = np.full(self.split.n_users, np.nan)
        for epoch in np.unique(user_epoch):
            rows = np.flatnonzero(user_epoch == epoch)
            values[rows] = per_user_auc_values_from_embeddings(
                users[rows], self.item_vectors(model, int(epoch)), positives[rows],
                exclude[rows], mask)
        return values

    def auc(self, model, split: str = "test", cold: bool = False) -> float:
        return _mean(self.auc_values(model, split, cold))

    def callbacks(self, model) -> list:
        return [EpochMetrics(lambda m: {"auc": self.auc(m, "validation")})]

    def evaluate(self, model) -> dict[str, float]:
        """test_auc and cold_test_auc of the model, then the baselines' and oracle's."""
        return {"test_auc": self.auc(model, "test"),
                "cold_test_auc": self.auc(model, "test", cold=True),
                **self.baseline_metrics()}

    def baseline_metrics(self) -> dict[str, float]:
        """``<row>_test_auc`` and ``<row>_cold_test_auc`` for random, popularity, visrank (items
        with features) and oracle (worlds with ``truth["user_item_score"]``)."""
        if self._baselines is not None:
            return self._baselines
        split = self.split
        rows: dict[str, np.ndarray] = {}
        features = self.dataset.items.features
        for key, name in (("random", "RAND"), ("popularity", "PopRank"), ("visrank", "VisRank")):
            if name == "VisRank" and features is None:
                continue
            users, items = baseline_vectors(name, train_matrix=split.train_matrix,
                                            item_features=features, seed=self.seed)
            rows[key] = users @ items.T
        oracle = oracle_scores(self.dataset)
        if oracle is not None:
            rows["oracle"] = oracle
        metrics = {}
        for key, scores in rows.items():
            for cold, suffix in ((False, "test_auc"), (True, "cold_test_auc")):
                metrics[f"{key}_{suffix}"] = _mean(per_user_auc_values(
                    scores, split.test_matrix, split.exclude_matrix("test"),
                    split.cold_items if cold else None))
        self._baselines = metrics
        return metrics


def oracle_scores(dataset: FashionDataset) -> np.ndarray | None:
    """The planted scores at the last time epoch, or None for a dataset without truth.

    ``truth["user_item_score"]`` plus, where a world plants a per-item trend over time
    (``truth["item_trend_score"]`` [T, n_items]), that trend's last epoch.
    """
    truth = dataset.truth or {}
    scores = truth.get("user_item_score")
    if scores is None:
        return None
    trend = truth.get("item_trend_score")
    return scores if trend is None else scores + np.asarray(trend)[-1][None, :]


def _mean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
