"""Recipe for ``TwoTowerRetrieval``: in-batch softmax on the training interactions of the
leave-one-out split, evaluated by the shared implicit-feedback protocol (``implicit.py``)."""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.models.two_tower import TwoTowerRetrieval
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.implicit import ImplicitRankingRecipe


class TwoTowerRecipe(ImplicitRankingRecipe):
    """Trains ``TwoTowerRetrieval`` on (user, item) training pairs with logQ correction."""

    def build_model(self) -> tf.keras.Model:
        config = self.model_config
        return TwoTowerRetrieval(self.dataset.n_users, self.dataset.n_items,
                                 **model_arguments(config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        train = self.split.train
        counts = self.split.train_counts
        pairs = tf.data.Dataset.from_tensor_slices(
            {"user": train.user.astype(np.int32), "item": train.item.astype(np.int32),
             "item_probability": (counts[train.item] / counts.sum()).astype(np.float32)})
        batches = (pairs.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
                   .batch(self.train_config.batch_size).prefetch(tf.data.AUTOTUNE))
        return batches, None

    def user_vectors(self, model: TwoTowerRetrieval) -> np.ndarray:
        return model.user_vectors().numpy()

    def item_vectors(self, model: TwoTowerRetrieval, epoch: int | None = None) -> np.ndarray:
        return model.item_vectors().numpy()
