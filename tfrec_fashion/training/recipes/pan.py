"""Recipe for ``models.pan.PAN`` (paper 001): personalised outfit scores trained with ``fit`` on
the outfit protocol's training outfits (``evaluation.outfits``), served through the outfit head.

- **Data**: each user's complete outfits split 80 / 10 / 10 by the protocol; ``fit`` sees the
  training outfits as positives only, {"user", "outfit"} (the model builds its negatives in the
  graph); the best epoch is chosen by the validation outfits' AUC (``val_auc``), the protocol's
  FITB and NDCG logged beside it.
- **Item feature maps** (``model.backbone``): "attributes" (each item's standardised one-hot
  attributes as a 1x1 map), "gap_cnn" (the last convolution block of ``layers.gap_cnn.GapCNN``
  on the item images, trained end to end) or "efficientnet" (EfficientNet-Lite0's P4 map with
  its ImageNet weights, frozen, computed once per item). Each item's slot is the index of its
  category among the outfits' slots; items of no slot get slot 0 and are never in an outfit.
- **Text** (``model.text``): the items' attribute words (one-hot attributes) as the text
  branch's input, for the VSE loss.
- **Serving** (``OutfitParts``): each user's f_u, each item's content flattened (the feature
  map, or the image for an end-to-end backbone: the scorer runs the user-aware attention, so an
  item has no user-free vector) and ``PAN.outfit_scores_from`` as the scorer; its binary codes
  (``OutfitCodes``: ``PAN.codes_from`` and ``PAN.blank_query``) let the export serve
  ``fill_in_the_blank`` by Hamming ranking (``index="hamming"``; user-free codes for FHN).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.outfits import OutfitEvaluation
from tfrec_fashion.layers.efficientnet_lite import PYRAMID_LAYERS
from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.layers.item_content import (efficientnet_backbone, item_features,
                                               item_images, on_item_images)
from tfrec_fashion.models.pan import PAN
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import Recipe
from tfrec_fashion.training.serving_parts import OutfitCodes, OutfitParts, OutfitScorer

_IMAGE_SIZE = {"gap_cnn": 32, "efficientnet": 64}
_EFFICIENTNET_MAP = PYRAMID_LAYERS["P4"]  # stride 16: 4x4x112 at 64 px
_SCORE_BATCH = 4096
# The end-to-end CNN's batch norm: Keras' 0.99 left the moving statistics (what validation and
# the hard-negative scoring read) far behind the weights over a few hundred steps (val AUC
# 0.50-0.53 for 5 epochs while training accuracy rose to 0.89).
BN_MOMENTUM = 0.9


class PanRecipe(Recipe):
    """Trains ``PAN`` on the outfit protocol's training outfits (module docstring).

    Attributes set by ``prepare``:
        dataset, evaluation (``OutfitEvaluation``), slots (the outfits' slot names),
        item_slots (int [n_items]), content (float [n_items, *content_shape]), text (float
        [n_items, T] or None).
    """

    protocol = "outfits"

    def prepare(self, dataset: FashionDataset) -> None:
        self.dataset = dataset
        self.evaluation: OutfitEvaluation = self.protocol_evaluation(dataset)
        self.slots = tuple(self.evaluation.split.train.slots)
        category = np.asarray(dataset.items.category).astype(str)
        self.item_slots = np.zeros(dataset.n_items, np.int32)
        for index, slot in enumerate(self.slots):
            if not (category == slot).any():
                raise DataError(f"dataset {dataset.name!r}: no item has category {slot!r}, the "
                                f"outfits' slot {index}")
            self.item_slots[category == slot] = index
        config = self.model_config
        size = config.image_size or _IMAGE_SIZE.get(config.backbone)
        if config.backbone == "attributes":
            features, _ = item_features(dataset, "attributes")
            self.content = features.reshape(len(features), 1, 1, -1)
        elif config.backbone == "gap_cnn":
            self.content = np.asarray(item_images(dataset, size), np.float32)
        else:
            network = efficientnet_backbone(size)
            trunk = tf.keras.Model(network.inputs, network.get_layer(_EFFICIENTNET_MAP).output)
            self.content = on_item_images(trunk, item_images(dataset, size))
        self.text = item_features(dataset, "attributes")[0] if config.text else None

    def build_model(self) -> PAN:
        config = self.model_config
        backbone = None
        if config.backbone == "gap_cnn":
            cnn = GapCNN(output_dim=1, image_shape=self.content.shape[1:], weight_decay=0.0)
            for layer in cnn.layers:  # moving statistics that keep up (see BN_MOMENTUM)
                if isinstance(layer, tf.keras.layers.BatchNormalization):
                    layer.momentum = BN_MOMENTUM
            last = f"relu{len(cnn.widths)}"
            backbone = tf.keras.Model(cnn.inputs, cnn.get_layer(last).output,
                                      name="gap_cnn_maps")
        return PAN(len(self.dataset.users), self.dataset.n_items, len(self.slots),
                   self.content.shape[1:], self.item_slots, backbone=backbone,
                   text_dim=0 if self.text is None else self.text.shape[1],
                   item_content=self.content, item_text=self.text, name=config.name,
                   **model_arguments(config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        train = self.evaluation.split.train
        outfits = tf.data.Dataset.from_tensor_slices({"user": train.user.astype(np.int32),
                                                      "outfit": train.items.astype(np.int32)})
        outfits = outfits.shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
        if self.train_config.steps_per_epoch:
            outfits = outfits.repeat()
        return outfits.batch(self.train_config.batch_size).prefetch(tf.data.AUTOTUNE), None

    def callbacks(self, model: PAN) -> list[tf.keras.callbacks.Callback]:
        return [EpochMetrics(self.evaluation.validation_metrics(self.outfit_score))]

    def evaluate(self, model: PAN) -> dict[str, float]:
        return self.evaluation.evaluate(self.outfit_score(model))

    def outfit_score(self, model: PAN) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The protocol's score function: (user int [n], outfits int [n, S]) -> float [n]."""
        def score(user: np.ndarray, outfits: np.ndarray) -> np.ndarray:
            return np.concatenate([
                model({"user": user[start:start + _SCORE_BATCH].astype(np.int32),
                       "outfit": outfits[start:start + _SCORE_BATCH].astype(np.int32)}).numpy()
                for start in range(0, len(user), _SCORE_BATCH)]) if len(user) else \
                np.zeros(0, np.float32)
        return score

    def serving_parts(self, model: PAN) -> OutfitParts:
        dataset, n_slots = self.dataset, len(self.slots)
        content_shape = tuple(self.content.shape[1:])
        item_dim = int(np.prod(content_shape))

        def score(user: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
            batch = tf.shape(items)[0]
            content = tf.reshape(items, [batch, n_slots, *content_shape])
            slots = tf.tile(tf.range(n_slots)[None, :], [batch, 1])
            return model.outfit_scores_from(user, content, slots)

        def item_codes(user: tf.Tensor, items: tf.Tensor, slot: tf.Tensor) -> tf.Tensor:
            content = tf.reshape(items, [-1, 1, *content_shape])
            return model.codes_from(user, content, slot[:, None])[1][:, 0]

        def query(user: tf.Tensor, items: tf.Tensor, blank: tf.Tensor) -> tf.Tensor:
            batch = tf.shape(items)[0]
            content = tf.reshape(items, [batch, n_slots, *content_shape])
            slots = tf.tile(tf.range(n_slots)[None, :], [batch, 1])
            return model.blank_query(*model.codes_from(user, content, slots), blank)

        codes = OutfitCodes(model.code_bits, item_codes, query,
                            user_free=not model.user_aware_attention, variables=model.variables)
        info: dict[str, Any] = {"model": self.model_config.name, "dataset": dataset.name,
                                "n_users": len(dataset.users), "n_items": dataset.n_items,
                                "backbone": self.model_config.backbone,
                                "code_bits": self.model_config.code_bits}
        user_vectors = model.user_vectors().numpy()
        return OutfitParts(
            user_ids=dataset.users.ids, user_vectors=user_vectors, item_ids=dataset.items.ids,
            item_categories=dataset.items.category,
            item_vectors=self.content.reshape(dataset.n_items, item_dim), slots=list(self.slots),
            scorer=OutfitScorer(user_vectors.shape[1], item_dim, n_slots, score,
                                model.variables, codes),
            info=info)
