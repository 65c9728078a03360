"""Recipe for the ``models.vbpr.VBPR`` family: BPR-MF, VBPR, TVBPR and I-VBPR.

All four train on BPR triplets (u, i, j) redrawn every epoch (``data.pipelines.bpr_dataset``;
TVBPR's carry the time epoch of the positive) and are evaluated by the shared implicit protocol
(``implicit.py``). They differ only in the item features f_i (``model.feature_source``):

- BPR-MF: none.
- VBPR / TVBPR: "dataset" (``items.features``: a converter's pretrained CNN features, a world's
  simulated ones) or "efficientnet" (EfficientNet-Lite0 with real ImageNet weights, 1280-d
  average-pooled, computed once from the item images at ``model.image_size``).
- I-VBPR: "attributes", the one-hot interpretable attributes (``data.features``).

The feature builders are shared with every model that reads item content
(``layers.item_content``).
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.pipelines import bpr_dataset
from tfrec_fashion.data.samplers import BprTripletSampler
from tfrec_fashion.layers.item_content import (efficientnet_backbone, feature_scaling,
                                               item_features)
from tfrec_fashion.models.vbpr import VBPR
from tfrec_fashion.training.model_configs import VBPRConfig, model_arguments
from tfrec_fashion.training.recipes.base import ItemEmbedder
from tfrec_fashion.training.recipes.implicit import ImplicitRankingRecipe


class VBPRRecipe(ImplicitRankingRecipe):
    """Trains ``VBPR`` with model.fit: BPR-MF for a ``BPRMFConfig``, VBPR / TVBPR / I-VBPR for
    a ``VBPRConfig`` (its presets)."""

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.features = self.feature_names = self.feature_scaling = None
        self.n_time_epochs = 1
        if isinstance(config, VBPRConfig):  # VBPR, TVBPR, I-VBPR; BPR-MF has no item content
            self.n_time_epochs = config.n_time_epochs
            raw, self.feature_names = item_features(
                dataset, config.feature_source, config.attributes, config.image_size,
                standardize=False)
            # Kept so that an exported embed_item applies the same scaling to a new item.
            self.feature_scaling = (feature_scaling(raw) if config.standardize
                                    else (np.zeros(raw.shape[1], np.float32),
                                          np.ones(raw.shape[1], np.float32)))
            mean, scale = self.feature_scaling
            self.features = ((raw - mean) / scale).astype(np.float32)

    def build_model(self) -> VBPR:
        config = self.model_config
        features = {} if self.features is None else {"item_features": self.features}
        return VBPR(self.dataset.n_users, self.dataset.n_items, name=config.name,
                    **model_arguments(config), **features)

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        epochs = self.train_epoch_matrix() if self.n_time_epochs > 1 else None
        sampler = BprTripletSampler(self.split.train_matrix, seed=self.seed, epochs=epochs)
        return bpr_dataset(sampler, self.train_config.batch_size,
                           self.train_config.steps_per_epoch, seed=self.seed), None

    def user_vectors(self, model: VBPR) -> np.ndarray:
        return model.user_vectors().numpy()

    def item_vectors(self, model: VBPR, epoch: int | None = None) -> np.ndarray:
        return model.item_vectors(epoch).numpy()

    def item_embedder(self, model: VBPR) -> ItemEmbedder | None:
        """Raw features (or, for EfficientNet features, the image) -> the item's row at the
        last time epoch; None for BPR-MF, which knows items by id only."""
        if not model.has_visual:
            return None
        mean, scale = (tf.constant(v, tf.float32) for v in self.feature_scaling)
        if self.model_config.feature_source != "efficientnet":
            return ItemEmbedder(
                "features", tf.TensorSpec([None, model.feature_dim], tf.float32, "features"),
                lambda features: model.embed_items((features - mean) / scale), model.variables)
        size = self.model_config.image_size
        backbone = efficientnet_backbone(size)

        def embed(images: tf.Tensor) -> tf.Tensor:
            return model.embed_items((backbone(images * 255.0, training=False) - mean) / scale)

        return ItemEmbedder("image", tf.TensorSpec([None, size, size, 3], tf.float32, "image"),
                            embed, [*backbone.variables, *model.variables])

