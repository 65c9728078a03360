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
- **Serving** (``LookParts``, the look head: ``similar`` / ``complementary``): the item ids and
  categories, ``similar_vectors`` (the head L2-normalises them), the style vectors
  ``model.item_style_embeddings()`` (unit already), each outfit slot's complements (the other
  slots; categories in no outfit have none) and, with an image backbone, two ``ItemEmbedder``
  of a new product's image (float32 [None, H, W, 3] in [0, 1] at the dataset's image size,
  resized inside as the items were): EfficientNet-Lite0 for its similar vector, the backbone
  and the head for its style vector. With "attributes" content an image gives no style vector:
  queries by item id only.
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
from tfrec_fashion.training.serving_parts import ItemEmbedder, LookParts

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

    def serving_parts(self, model: CompleteTheLook) -> LookParts:
        dataset = self.dataset
        slots = list(self.evaluation.split.train.slots)
        complements = {str(category): [slot for slot in slots if slot != category]
                       if category in slots else []
                       for category in np.unique(np.asarray(dataset.items.category))}
        embedders = self.image_embedders(model) if self.model_config.backbone != "attributes" \
            else (None, None)
        info = {"model": self.model_config.name, "dataset": dataset.name,
                "n_items": dataset.n_items, "backbone": self.model_config.backbone,
                "batch_norm": self.model_config.batch_norm,
                "similar": f"EfficientNet-Lite0 pooled, {self.model_config.similar_image_size} px"}
        return LookParts(item_ids=dataset.items.ids, item_categories=dataset.items.category,
                         similar_vectors=self.similar_vectors,
                         style_vectors=model.item_style_embeddings().numpy(),
                         similar_embedder=embedders[0], style_embedder=embedders[1],
                         complements=complements, info=info)

    def image_embedders(self, model: CompleteTheLook) -> tuple[ItemEmbedder, ItemEmbedder]:
        """A new product's image -> (its similar vector, its style vector): two graph-safe
        ``ItemEmbedder`` on float32 [None, H, W, 3] in [0, 1], H x W the dataset's images,
        resized inside to each network's size as ``item_images`` resizes the catalogue's."""
        height, width = np.asarray(self.dataset.items.images).shape[1:3]
        spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="image")
        config = self.model_config
        similar_size = config.similar_image_size
        size = config.image_size or _IMAGE_SIZE[config.backbone]
        similar_network = efficientnet_backbone(similar_size)
        style_network = similar_network if size == similar_size else efficientnet_backbone(size)

        def resized(images: tf.Tensor, side: int) -> tf.Tensor:
            if (height, width) == (side, side):
                return images
            return tf.clip_by_value(tf.image.resize(images, (side, side), antialias=True),
                                    0.0, 1.0)

        def similar(images: tf.Tensor) -> tf.Tensor:
            return similar_network(resized(images, similar_size) * 255.0, training=False)

        def style(images: tf.Tensor) -> tf.Tensor:
            content = resized(images, size)
            if config.backbone == "efficientnet":
                content = style_network(content * 255.0, training=False)
            return model.style_embeddings(content)

        style_variables = [*model.variables, *(style_network.variables
                                               if config.backbone == "efficientnet" else [])]
        return (ItemEmbedder("image", spec, similar, similar_network.variables),
                ItemEmbedder("image", spec, style, style_variables))
