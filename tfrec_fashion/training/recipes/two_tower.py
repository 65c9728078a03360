"""Recipe for ``TwoTowerRetrieval``: leave-one-out implicit feedback, per-user AUC.

Protocol (VBPR / DVBPR): per user the latest interaction is the test item, the one before it the
validation item; AUC over all unobserved items is logged as ``val_auc`` every epoch (the best
epoch is chosen on it) and reported on the test items with the oracle and popularity beside it.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.splits import leave_one_out
from tfrec_fashion.metrics import per_user_auc, per_user_auc_from_embeddings
from tfrec_fashion.models.two_tower import TwoTowerRetrieval
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.recipes.base import Recipe, register_recipe


@register_recipe("two_tower")
class TwoTowerRecipe(Recipe):
    """Trains ``TwoTowerRetrieval`` on the training interactions of a leave-one-out split."""

    def prepare(self, dataset: FashionDataset) -> None:
        if dataset.interactions is None:
            raise ValueError(f"model two_tower needs implicit interactions; dataset "
                             f"{dataset.name!r} has none")
        self.dataset = dataset
        self.split = leave_one_out(dataset.interactions, dataset.n_users, dataset.n_items,
                                   by="time", seed=self.seed)

    def build_model(self) -> tf.keras.Model:
        config = self.model_config
        return TwoTowerRetrieval(self.dataset.n_users, self.dataset.n_items,
                                 embedding_dim=config.embedding_dim, l2=config.l2,
                                 temperature=config.temperature)

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        train = self.split.train
        counts = self.split.train_counts
        pairs = tf.data.Dataset.from_tensor_slices(
            {"user": train.user.astype(np.int32), "item": train.item.astype(np.int32),
             "item_probability": (counts[train.item] / counts.sum()).astype(np.float32)})
        batches = (pairs.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
                   .batch(self.train_config.batch_size).prefetch(tf.data.AUTOTUNE))
        return batches, None

    def callbacks(self, model: tf.keras.Model) -> list[tf.keras.callbacks.Callback]:
        return [EpochMetrics(self._validation_metrics)]

    def _validation_metrics(self, model: TwoTowerRetrieval) -> dict[str, float]:
        split = self.split
        return {"auc": per_user_auc_from_embeddings(
            model.user_vectors().numpy(), model.item_vectors().numpy(),
            split.validation_matrix, exclude=split.exclude_matrix("validation"))}

    def evaluate(self, model: TwoTowerRetrieval) -> dict[str, float]:
        split = self.split
        exclude = split.exclude_matrix("test")
        users, items = model.user_vectors().numpy(), model.item_vectors().numpy()
        # Popularity as an inner product: every user vector is [1], item vector is [count].
        ones = np.ones((self.dataset.n_users, 1))
        counts = split.train_counts.reshape(-1, 1).astype(np.float64)
        metrics = {
            "test_auc": per_user_auc_from_embeddings(users, items, split.test_matrix, exclude),
            "popularity_test_auc": per_user_auc_from_embeddings(ones, counts, split.test_matrix,
                                                                exclude),
        }
        truth = self.dataset.truth.get("user_item_score")
        if truth is not None:
            metrics["oracle_test_auc"] = per_user_auc(truth, split.test_matrix, exclude)
        return metrics
