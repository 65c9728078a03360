"""Recipe for the ``models.vbpr.VBPR`` family: BPR-MF, VBPR, TVBPR and I-VBPR.

All four train on BPR triplets (u, i, j) redrawn every epoch (``data.pipelines.bpr_dataset``;
TVBPR's carry the time epoch of the positive) and are evaluated by the shared implicit protocol
(``implicit.py``). They differ only in the item features f_i (``model.feature_source``):

- BPR-MF: none.
- VBPR / TVBPR: "dataset" (``items.features``: a converter's pretrained CNN features, a world's
  simulated ones) or "efficientnet" (EfficientNet-Lite0 with real ImageNet weights, 1280-d
  average-pooled, computed once from the item images at ``model.image_size``).
- I-VBPR: "attributes", the one-hot interpretable attributes (``data.features``).
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.features import attribute_onehot
from tfrec_fashion.data.pipelines import bpr_dataset, image_table
from tfrec_fashion.data.samplers import BprTripletSampler
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.models.vbpr import VBPR
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import ItemEmbedder, register_recipe
from tfrec_fashion.training.recipes.implicit import ImplicitRankingRecipe

_EFFICIENTNET_BATCH = 64


@register_recipe("bpr_mf")
@register_recipe("vbpr")
@register_recipe("tvbpr")
@register_recipe("ivbpr")
class VBPRRecipe(ImplicitRankingRecipe):
    """Trains ``VBPR`` (BPR-MF when the config has no ``feature_source``) with model.fit."""

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        self.n_time_epochs = getattr(config, "n_time_epochs", 1)
        source = getattr(config, "feature_source", None)
        self.features = self.feature_names = self.feature_scaling = None
        if source is not None:
            raw, self.feature_names = item_features(
                dataset, source, getattr(config, "attributes", None), config.image_size,
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


def item_features(dataset: FashionDataset, source: str, attributes: list[str] | None = None,
                  image_size: int = 96, standardize: bool = True
                  ) -> tuple[np.ndarray, list[str]]:
    """The item features f_i of ``source`` and their names: (float32 [n_items, F], F names).

    Standardised columns (zero mean, unit variance over the items; constant columns left at 0)
    keep E's scale comparable across sources. Interpretable attributes are standardised too:
    names still say what each column is, and the one-hot structure is kept (one affine map per
    column).
    """
    items = dataset.items
    if source == "dataset":
        if items.features is None:
            raise ConfigError(f"model.feature_source: dataset {dataset.name!r} has no item "
                              "features; use 'efficientnet' (from its images) or 'attributes'")
        features = np.asarray(items.features, np.float32)
        names = [f"feature_{k}" for k in range(features.shape[1])]
    elif source == "attributes":
        features, names = attribute_onehot(items, attributes)
    elif source == "efficientnet":
        features = efficientnet_features(dataset, image_size)
        names = [f"efficientnet_{k}" for k in range(features.shape[1])]
    else:
        raise ConfigError(f"model.feature_source: unknown source {source!r}")
    if not np.isfinite(features).all():
        raise ConfigError(f"model.feature_source: dataset {dataset.name!r} has non-finite "
                          "item features")
    if standardize:
        mean, scale = feature_scaling(features)
        features = (features - mean) / scale
    return features.astype(np.float32), names


def feature_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale (the standard deviation; 1 for a constant column), float32 [F]
    each: standardised features are (f - mean) / scale."""
    std = features.std(axis=0)
    return (features.mean(axis=0).astype(np.float32),
            np.where(std > 0, std, 1.0).astype(np.float32))


def efficientnet_features(dataset: FashionDataset, image_size: int) -> np.ndarray:
    """EfficientNet-Lite0 (real ImageNet weights) average-pooled features: [n_items, 1280]."""
    images = item_images(dataset, image_size)
    backbone = efficientnet_backbone(image_size)
    # The port takes RGB in [0, 255], as keras.applications models do.
    return np.concatenate([backbone(images[start:start + _EFFICIENTNET_BATCH] * 255.0,
                                    training=False).numpy()
                           for start in range(0, len(images), _EFFICIENTNET_BATCH)])


def efficientnet_backbone(image_size: int) -> tf.keras.Model:
    """EfficientNet-Lite0 with the real ImageNet weights, average-pooled: RGB [0, 255] images
    [B, s, s, 3] -> [B, 1280]."""
    from tfrec_fashion.layers.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(input_shape=(image_size, image_size, 3), include_top=False,
                              pooling="avg")


def item_images(dataset: FashionDataset, image_size: int | None = None) -> tf.Tensor:
    """Every item's image, float32 [n_items, s, s, 3] in [0, 1], resized to ``image_size``."""
    if dataset.items.images is None:
        raise ConfigError(f"dataset {dataset.name!r} has no images in memory; for a saved "
                          "dataset set `data.load_images: true`")
    size = None if image_size is None else (image_size, image_size)
    return image_table(dataset.items, size)
