"""Item content: what a model that sees items (not only their ids) reads about each one.

Every model that takes item content chooses its source by config (``model.feature_source``) and
gets it here, so a backbone is a config value for every such model:

- "dataset": ``items.features`` (a converter's pretrained CNN features, a world's simulated ones).
- "attributes": the one-hot interpretable attributes (``data.features.attribute_onehot``;
  I-VBPR).
- "efficientnet": EfficientNet-Lite0 (``layers.efficientnet_lite``) with its real ImageNet
  weights, average-pooled to 1280-d, computed once from the item images at ``image_size``.

and for models that learn from pixels end to end (DVBPR) ``item_images``; a model that fine-tunes
EfficientNet's top block (PSA-Net) runs its frozen trunk once per item with ``on_item_images``. Used by the VBPR
family, StyNet and DVBPR recipes; an exported VBPR on EfficientNet features embeds a new item's
image with the same ``efficientnet_backbone``.

This is the one module of ``layers/`` that reads ``data`` (the dataset's items): it turns a
dataset into the arrays a layer or model takes.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.features import attribute_onehot
from tfrec_fashion.data.pipelines import image_table
from tfrec_fashion.errors import ConfigError

_EFFICIENTNET_BATCH = 64


def item_features(dataset: FashionDataset, source: str, attributes: list[str] | None = None,
                  image_size: int = 96, standardize: bool = True
                  ) -> tuple[np.ndarray, list[str]]:
    """The item features f_i of ``source`` and their names: (float32 [n_items, F], F names).

    Standardised columns (zero mean, unit variance over the items; constant columns left at 0)
    keep E's scale comparable across sources. Interpretable attributes are standardised too:
    names still say what each column is, and the one-hot structure is kept (one affine map per
    column).

    Args:
        dataset: the dataset whose items are described.
        source: "dataset", "attributes" or "efficientnet" (see the module docstring).
        attributes: with "attributes": the columns to encode; None = category and every
            attribute column.
        image_size: with "efficientnet": the side the images are resized to first.
        standardize: return (f - mean) / scale (``feature_scaling``) instead of raw features.
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
    return on_item_images(efficientnet_backbone(image_size), item_images(dataset, image_size))


def on_item_images(network: tf.keras.Model, images: tf.Tensor) -> np.ndarray:
    """An EfficientNet-Lite0 network (or its trunk) on images [N, s, s, 3] in [0, 1], in batches:
    float32 [N, ...] (the port takes RGB in [0, 255], as keras.applications models do)."""
    return np.concatenate([network(images[start:start + _EFFICIENTNET_BATCH] * 255.0,
                                   training=False).numpy()
                           for start in range(0, len(images), _EFFICIENTNET_BATCH)])


def efficientnet_backbone(image_size: int) -> tf.keras.Model:
    """EfficientNet-Lite0 with the real ImageNet weights, average-pooled: RGB [0, 255] images
    [B, s, s, 3] -> [B, 1280]."""
    # Looked up at call time, so a test can forbid feature extraction by replacing it.
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
