"""Recipe for ``models.pair_compatibility.PairCompatibility``, the compatibility head's minimal
model: contrastive training on customers' pair votes, evaluated by the pair protocol
(``evaluation.pairs``), served through the compatibility head (``score_pairs``,
``complete_pair``).

Item content comes from ``model.feature_source`` (``layers.item_content``: the dataset's
features, the one-hot attributes or EfficientNet-Lite0), computed once and standardised; the
standardised rows are what the served scorer reads (``CompatibilityParts.item_vectors``). The
model is not personalised, so its customers' vectors are empty (E = 0): every customer, known or
not, gets the same scores, and ``cold_start`` still says who was unknown.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.evaluation.pairs import PairEvaluation
from tfrec_fashion.layers.item_content import feature_scaling, item_features
from tfrec_fashion.models.pair_compatibility import PairCompatibility
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import Recipe
from tfrec_fashion.training.serving_parts import CompatibilityParts, PairScorer


class PairCompatibilityRecipe(Recipe):
    """Trains ``PairCompatibility`` with ``fit`` on the training votes; best epoch by the
    validation votes' AUC."""

    protocol = "pairs"

    def prepare(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.dataset = dataset
        self.evaluation: PairEvaluation = self.protocol_evaluation(dataset)
        raw, _ = item_features(dataset, config.feature_source, config.attributes,
                               config.image_size, standardize=False)
        mean, scale = feature_scaling(raw)
        self.features = ((raw - mean) / scale).astype(np.float32)

    def build_model(self) -> PairCompatibility:
        return PairCompatibility(self.dataset.n_items, self.features.shape[1],
                                 item_features=self.features, name=self.model_config.name,
                                 **model_arguments(self.model_config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        train = self.evaluation.split.train
        pairs = tf.data.Dataset.from_tensor_slices({
            "item_a": train.item_a.astype(np.int32), "item_b": train.item_b.astype(np.int32),
            "label": train.label.astype(np.float32)})
        pairs = pairs.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
        if self.train_config.steps_per_epoch:
            pairs = pairs.repeat()
        return pairs.batch(self.train_config.batch_size).prefetch(tf.data.AUTOTUNE), None

    def callbacks(self, model: PairCompatibility) -> list[tf.keras.callbacks.Callback]:
        return [EpochMetrics(lambda m: self.evaluation.metrics(self._score(m), "validation"))]

    def evaluate(self, model: PairCompatibility) -> dict[str, float]:
        return self.evaluation.evaluate(self._score(model))

    def _score(self, model: PairCompatibility):
        def score(user: np.ndarray, item_a: np.ndarray, item_b: np.ndarray) -> np.ndarray:
            return model.pair_scores(self.features[item_a], self.features[item_b]).numpy()

        return score

    def serving_parts(self, model: PairCompatibility) -> CompatibilityParts:
        def score(user: tf.Tensor, item: tf.Tensor, partner: tf.Tensor) -> tf.Tensor:
            return model.pair_scores(item, partner)  # not personalised: user is [B, 0]

        dataset = self.dataset
        info = {"model": self.model_config.name, "dataset": dataset.name,
                "n_users": len(dataset.users), "n_items": dataset.n_items,
                "feature_source": self.model_config.feature_source}
        return CompatibilityParts(
            user_ids=dataset.users.ids, user_vectors=np.zeros((len(dataset.users), 0)),
            item_ids=dataset.items.ids, item_categories=dataset.items.category,
            item_vectors=self.features, complements=self.evaluation.complements(),
            scorer=PairScorer(0, self.features.shape[1], score, model.variables), info=info)
