"""Recipe for ``models.complete_the_look.CompleteTheLook`` (paper 004): the style embedding trained
with ``fit`` on complete-the-look triplets of the training outfits, held to the
complete-the-look protocol (``evaluation.complete_the_look``).

- **Data**: the outfit protocol's split of each user's complete outfits (80 / 10 / 10); ``fit``
  sees triplets of the training outfits only (``data.pipelines.ctl_triplet_dataset``, redrawn
  every batch: anchor, a positive of another category from its outfit, a negative of the
  positive's category from another training outfit). The best epoch is chosen by the
  validation outfits' triplet accuracy (``val_triplet_accuracy``), FITB and outfit AUC logged
  beside it.
- **Item content** (``model.backbone``): "attributes" (each item's standardised one-hot
  attributes), "gap_cnn" (the item images through ``layers.gap_cnn.GapCNN``'s conv blocks and
  global average pooling, trained end to end) or "efficientnet" (EfficientNet-Lite0's pooled
  1280-d features with its ImageNet weights, frozen, computed once per item; raw, not
  standardised, so a new image needs only the backbone before ``style_embeddings``).
- **Similar items**: EfficientNet-Lite0's pooled features of the images at
  ``similar_image_size`` (``similar_vectors``), cosine within the query's category; the
  protocol also uses them as the "similar as complementary" row.
- **Serving**: what the item-to-item head reads (``similar`` / ``complementary``): the item ids
  and categories, ``similar_vectors`` (L2-normalise them for an inner-product index), the style
  vectors ``model.item_style_embeddings()`` (unit already) and, for a product not in the
  catalogue, image -> style: ``model.style_embeddings(content)`` after the backbone named by
  ``content_of_images``. The head's parts class is not written yet, so ``serving_parts`` says so
  (the harness records the run as not servable).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.pipelines import ctl_triplet_dataset
from tfrec_fashion.evaluation.complete_the_look import (CompleteTheLookEvaluation,
                                                        cosine_outfit_score)
from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.layers.item_content import (efficientnet_backbone, item_features,
                                               item_images, on_item_images)
from tfrec_fashion.models.complete_the_look import CompleteTheLook
from tfrec_fashion.training.callbacks import EpochMetrics
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import Recipe

_IMAGE_SIZE = {"gap_cnn": 32, "efficientnet": 64}


class CompleteTheLookRecipe(Recipe):
    """Trains ``CompleteTheLook`` on the training outfits' triplets (module docstring).

    Attributes set by ``prepare``:
        dataset, evaluation (``CompleteTheLookEvaluation``), content (float [n_items,
        *content_shape]), similar_vectors (float [n_items, 1280], EfficientNet-Lite0).
    """

    protocol = "complete_the_look"

    def prepare(self, dataset: FashionDataset) -> None:
        self.dataset = dataset
        self.evaluation: CompleteTheLookEvaluation = self.protocol_evaluation(dataset)
        config = self.model_config
        size = config.image_size or _IMAGE_SIZE.get(config.backbone)
        similar_size = config.similar_image_size
        self.similar_vectors = on_item_images(efficientnet_backbone(similar_size),
                                              item_images(dataset, similar_size))
        if config.backbone == "attributes":
            self.content = item_features(dataset, "attributes")[0]
        elif config.backbone == "gap_cnn":
            self.content = np.asarray(item_images(dataset, size), np.float32)
        elif size == similar_size:
            self.content = self.similar_vectors
        else:
            self.content = on_item_images(efficientnet_backbone(size), item_images(dataset, size))

    def build_model(self) -> CompleteTheLook:
        backbone = None
        if self.model_config.backbone == "gap_cnn":
            cnn = GapCNN(output_dim=1, image_shape=self.content.shape[1:], weight_decay=0.0)
            backbone = tf.keras.Model(cnn.inputs, cnn.get_layer("gap").output,
                                      name="gap_cnn_pooled")
        return CompleteTheLook(self.dataset.n_items, self.content.shape[1:], backbone=backbone,
                               item_content=self.content, name=self.model_config.name,
                               **model_arguments(self.model_config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        return ctl_triplet_dataset(
            self.evaluation.split.train, np.asarray(self.dataset.items.category),
            self.train_config.batch_size, steps_per_epoch=self.train_config.steps_per_epoch,
            seed=self.seed), None

    def callbacks(self, model: CompleteTheLook) -> list[tf.keras.callbacks.Callback]:
        return [EpochMetrics(self.evaluation.validation_metrics(self.style_score))]

    def evaluate(self, model: CompleteTheLook) -> dict[str, float]:
        return self.evaluation.evaluate(model.item_style_embeddings().numpy(),
                                        self.similar_vectors)

    def style_score(self, model: CompleteTheLook
                    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The protocol's score: the mean cosine of the style vectors over an outfit's pairs."""
        return cosine_outfit_score(model.item_style_embeddings().numpy())

    def content_of_images(self) -> str:
        """What ``style_embeddings`` reads for a new product's image [s, s, 3] in [0, 1]: the
        image itself ("gap_cnn"), EfficientNet-Lite0's pooled features of it at
        ``image_size`` ("efficientnet"), or nothing an image gives ("attributes")."""
        return {"gap_cnn": "image", "efficientnet": "efficientnet_pooled"}.get(
            self.model_config.backbone, "attributes")

    def serving_parts(self, model: CompleteTheLook):
        raise ValueError("the item-to-item head's parts (similar / complementary) are not "
                         "written for complete_the_look yet (issue 20's export part)")
