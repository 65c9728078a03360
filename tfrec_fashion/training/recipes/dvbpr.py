"""Recipe for ``models.dvbpr.DVBPR``: an image network (CNN-F by default) trained end to end.

Triplets as for BPR (``data.pipelines.bpr_dataset``, DVBPR's batch 128 in ``train``); the
image table is the items' images resized to ``model.image_size`` (default: the backbone
preset's input), held by the model, never in its checkpoints. Evaluation: the shared implicit
protocol (``implicit.py``); every item's vector comes from its image, so cold items are scored
from pixels alone.
"""

from __future__ import annotations

import numpy as np
import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.data.pipelines import bpr_dataset
from tfrec_fashion.data.samplers import BprTripletSampler
from tfrec_fashion.layers.cnn_f import CNNF
from tfrec_fashion.layers.gap_cnn import GapCNN
from tfrec_fashion.layers.item_content import item_images
from tfrec_fashion.models.dvbpr import DVBPR
from tfrec_fashion.training.model_configs import model_arguments
from tfrec_fashion.training.recipes.base import ItemEmbedder
from tfrec_fashion.training.recipes.implicit import ImplicitRankingRecipe

# model.backbone -> the network class whose PRESETS name it
BACKBONES = {name: network for network in (CNNF, GapCNN) for name in network.PRESETS}


class DVBPRRecipe(ImplicitRankingRecipe):
    """Trains ``DVBPR`` with the backbone of ``model.backbone``'s preset (``BACKBONES``)."""

    def prepare_inputs(self, dataset: FashionDataset) -> None:
        config = self.model_config
        preset = BACKBONES[config.backbone].PRESETS[config.backbone]
        size = config.image_size or preset["image_shape"][0]
        self.images = item_images(dataset, size)

    def build_model(self) -> DVBPR:
        config = self.model_config
        overrides = {key: value for key in ("weight_decay", "dropout_rate")
                     if (value := getattr(config, key)) is not None}
        backbone = BACKBONES[config.backbone].from_preset(
            config.backbone, output_dim=config.embedding_dim,
            image_shape=tuple(self.images.shape[1:]), **overrides)
        return DVBPR(self.dataset.n_users, self.dataset.n_items, backbone,
                     item_images=self.images, **model_arguments(config))

    def datasets(self) -> tuple[tf.data.Dataset, None]:
        sampler = BprTripletSampler(self.split.train_matrix, seed=self.seed)
        return bpr_dataset(sampler, self.train_config.batch_size,
                           self.train_config.steps_per_epoch, seed=self.seed), None

    def user_vectors(self, model: DVBPR) -> np.ndarray:
        return model.user_vectors().numpy()

    def item_vectors(self, model: DVBPR, epoch: int | None = None) -> np.ndarray:
        return model.item_vectors().numpy()

    def item_embedder(self, model: DVBPR) -> ItemEmbedder:
        """An image in [0, 1] at the training size -> Phi(X), the item's row in the index."""
        spec = tf.TensorSpec([None, *model.image_shape], tf.float32, "image")
        return ItemEmbedder("image", spec, model.embed_items, model.backbone.variables)
