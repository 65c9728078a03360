"""What every attention map is of: a ``ScoreOfImage`` (item images -> the customers' scores, and
the convolution GradCAM weighs, ``cam_layer``), and ``AttentionError``, the one error a request
for maps raises. ``attention`` (the registry, the maps, the grid) and ``pan_attention`` (PAN's
Fig. 3 and its outfit score) both build on these; this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow)
from tfrec_fashion.errors import TfrecFashionError

MIN_CAM_SIDE = 4


class AttentionError(TfrecFashionError, ValueError):
    """A request for attention maps names something the run cannot map: a model without an
    image path, an unknown method, customer or item."""


@dataclass(frozen=True)
class ScoreOfImage:
    """A differentiable user-conditioned score of item images.

    Args:
        model: images * ``input_scale`` [B, H, W, 3] -> scores [B, C] of the C customers.
        cam_layer: the name of the convolution GradCAM and ScoreCAM weigh (a layer of
            ``model``).
        input_scale: the model's input is the image in [0, 1] times this.
        item_images: every item's image, float32 [n_items, H, W, 3] in [0, 1].
        attention_weights: a pair model's customers' weights over its subspaces [C, k], shown
            beside the maps (PSA-Net); None for the others.
        partners: images -> the item index [C, B] each customer's score pairs each image with
            (PSA-Net), or the items [C, B, S - 1] it completes each image into (PAN); None for
            a model scoring an image alone.
    """

    model: "tf.keras.Model"  # noqa: F821
    cam_layer: str
    input_scale: float
    item_images: np.ndarray
    attention_weights: np.ndarray | None = None
    partners: Callable[[np.ndarray], np.ndarray] | None = None

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The C customers' scores of images [B, H, W, 3] in [0, 1]: [C, B]."""
        return self.model(images * self.input_scale, training=False).numpy().T


def cam_layer(model: "tf.keras.Model") -> str:  # noqa: F821
    """The last convolution of ``model`` whose map is at least ``MIN_CAM_SIDE`` wide."""
    import tensorflow as tf

    convolutions = [layer for layer in model.layers
                    if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D))
                    and min(layer.output_shape[1:3]) >= MIN_CAM_SIDE]
    if not convolutions:
        raise AttentionError(f"{model.name} has no convolution with a map of at least "
                             f"{MIN_CAM_SIDE} x {MIN_CAM_SIDE}: GradCAM has nothing to weigh")
    return convolutions[-1].name


def customer_scores(user_vectors: np.ndarray) -> "tf.keras.layers.Dense":  # noqa: F821
    """A Dense layer whose column c is the dot product with customer c's vector."""
    import tensorflow as tf

    dense = tf.keras.layers.Dense(len(user_vectors), use_bias=False, name="user_scores")
    dense.build((None, user_vectors.shape[1]))
    dense.set_weights([np.asarray(user_vectors, np.float32).T])
    return dense
