"""The implicit-feedback protocol of the ranking models (VBPR, DVBPR, I-VBPR papers).

Every model trained on implicit feedback (two-tower, BPR-MF, VBPR, TVBPR, I-VBPR, DVBPR) is
evaluated the same way, so the protocol lives here once:

- **Split**: per user the latest interaction is the test item T_u, the one before it the
  validation item V_u, the rest are training P_u (``data.splits.leave_one_out``, by time).
- **AUC**: per-user AUC (DVBPR eq. 3 / I-VBPR eq. 3-4): each held-out item against every item
  the user never interacted with, averaged over users. "Cold" (DVBPR Table III) restricts the
  held-out item and the negatives to items with fewer than 5 training interactions.
- **Best epoch**: the recipe logs the validation AUC every epoch (``val_auc``), so the harness
  keeps the epoch with the best validation AUC.
- **Rows beside the model**: RAND, PopRank, VisRank (when the items have pretrained features)
  and, on a planted world, the oracle: the true scores at the last time epoch ("now").

Scores are always inner products ``user_vectors @ item_vectors(epoch).T``, the form a retrieval
index serves; the protocol takes those arrays from the caller (a recipe reads them off its
model), never a model. Temporal models (TVBPR) score a held-out item at the time epoch it
happened in (``time_epochs`` over the training span; later times count as the last epoch).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np
import scipy.sparse

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.splits import ImplicitSplit, leave_one_out, time_epochs
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.baselines import baseline_vectors
from tfrec_fashion.metrics import per_user_auc_values, per_user_auc_values_from_embeddings

#: epoch -> float [n_items, d], the items' vectors at that time epoch (None: the last, "now").
ItemVectors = Callable[[Optional[int]], np.ndarray]


class ImplicitEvaluation:
    """Leave-one-out split of a dataset's interactions; per-user AUC on all and cold items of
    a model given by its vectors, and of the baselines and the oracle.

    Args:
        dataset: a dataset with implicit interactions.
        seed: the run's seed (the split's ties, the random baseline).
        model_name: the model being evaluated, named when the dataset cannot serve it.

    Attributes:
        split: the ``data.splits.ImplicitSplit`` (train / validation / test and their matrices).
        time_span: (first, last) training timestamp, the span time epochs divide.

    Example:
        evaluation = ImplicitEvaluation(dataset, seed=0)
        metrics = evaluation.metrics(users, lambda epoch: items)  # users [U, d], items [I, d]
        metrics["test_auc"], metrics["cold_test_auc"], metrics["popularity_test_auc"]
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "model"):
        if dataset.interactions is None or len(dataset.interactions) == 0:
            hint = ("; it has ratings: set data.min_rating to take the ratings >= it as "
                    "implicit feedback, e.g. --set data.min_rating=4"
                    if dataset.ratings is not None and len(dataset.ratings) else "")
            raise DataError(f"model {model_name} needs implicit interactions; "
                            f"dataset {dataset.name!r} has none{hint}")
        self.dataset = dataset
        self.seed = seed
        self.split: ImplicitSplit = leave_one_out(dataset.interactions, dataset.n_users,
                                                  dataset.n_items, by="time", seed=seed)
        train_time = self.split.train.timestamp
        self.time_span = (int(train_time.min()), int(train_time.max()))
        self._baselines: dict[str, float] | None = None

    # ------------------------------------------------------------------ time
    def epochs_of(self, timestamp: np.ndarray, n_time_epochs: int = 1) -> np.ndarray:
        """The time epoch of each timestamp (all 0 for a static model)."""
        return time_epochs(timestamp, n_time_epochs, self.time_span)

    def train_epoch_matrix(self, n_time_epochs: int) -> scipy.sparse.csr_matrix:
        """int32 [n_users, n_items] CSR: the time epoch of every training interaction."""
        train = self.split.train
        return scipy.sparse.csr_matrix(
            (self.epochs_of(train.timestamp, n_time_epochs), (train.user, train.item)),
            shape=(self.split.n_users, self.split.n_items), dtype=np.int32)

    # ------------------------------------------------------------------ the model's numbers
    def auc_values(self, user_vectors: np.ndarray, item_vectors: ItemVectors,
                   split: str = "test", cold: bool = False, n_time_epochs: int = 1
                   ) -> np.ndarray:
        """Per-user AUC [n_users] on the held-out ``split`` items (NaN where undefined).

        Args:
            user_vectors: float [n_users, d].
            item_vectors: epoch -> float [n_items, d] (called with None when
                ``n_time_epochs`` is 1).
            split: "validation" or "test".
            cold: only cold items, as held-out items and as negatives.
            n_time_epochs: T > 1 scores each user's held-out item at its own time epoch.
        """
        held_out = getattr(self.split, split)
        positives = getattr(self.split, f"{split}_matrix")
        exclude = self.split.exclude_matrix(split)
        mask = self.split.cold_items if cold else None
        if n_time_epochs == 1:
            return per_user_auc_values_from_embeddings(user_vectors, item_vectors(None),
                                                       positives, exclude, mask)
        # One held-out item per user: score each user's row with the items of its epoch.
        user_epoch = np.full(self.split.n_users, n_time_epochs - 1)
        user_epoch[held_out.user] = self.epochs_of(held_out.timestamp, n_time_epochs)
        values = np.full(self.split.n_users, np.nan)
        for epoch in np.unique(user_epoch):
            rows = np.flatnonzero(user_epoch == epoch)
            values[rows] = per_user_auc_values_from_embeddings(
                user_vectors[rows], item_vectors(int(epoch)), positives[rows], exclude[rows],
                mask)
        return values

    def auc(self, user_vectors: np.ndarray, item_vectors: ItemVectors, split: str = "test",
            cold: bool = False, n_time_epochs: int = 1) -> float:
        """Mean of ``auc_values`` over the users where it is defined."""
        return _mean(self.auc_values(user_vectors, item_vectors, split, cold, n_time_epochs))

    def metrics(self, user_vectors: np.ndarray, item_vectors: ItemVectors,
                n_time_epochs: int = 1) -> dict[str, float]:
        """test_auc and cold_test_auc of the model, then the baselines' and oracle's."""
        return {"test_auc": self.auc(user_vectors, item_vectors, "test",
                                     n_time_epochs=n_time_epochs),
                "cold_test_auc": self.auc(user_vectors, item_vectors, "test", cold=True,
                                          n_time_epochs=n_time_epochs),
                **self.baseline_metrics()}

    # ------------------------------------------------------------------ rows beside the model
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
