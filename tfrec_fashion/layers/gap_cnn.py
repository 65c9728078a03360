"""GapCNN: a small image backbone for 32x32 images, 3x3 convolutions, batch norm, global average
pooling; DVBPR's Phi on the planted world (a documented deviation from the paper's CNN-F).

    [conv 3x3 -> batch norm -> ReLU] x len(widths), a 2x2 max pool between blocks
    -> global average pooling -> dropout -> dense K (linear)

Why it exists: CNN-F's first layer (11x11, stride 4, no padding) maps a 32x32 image to 6x6, and
its pools take that to 1x1 before fc6, so the ``small_cnn`` preset keeps little of an item's
colour and pattern. Trained as DVBPR's Phi on ``configs/table3_synthetic.yaml`` (seed 0), a
logistic-regression probe of its 16-d item vectors found colour 0.12 (chance 0.10) and pattern
0.40; this network's 3x3 convolutions see the 4-8 pixel pattern periods at full resolution, and
the average over the map is a colour summary whatever the item's shape. CNN-F (``layers.cnn_f``)
stays DVBPR's default and the paper's network at 224x224.

Input: RGB float32 in [0, 1] (``data.pipelines.image_table``), mapped to [-1, 1] by the first
layer (``include_preprocessing=False`` skips it). Weight decay is an L2 kernel regulariser on every
conv and dense kernel (``layers.cnn_f.PAPER_WEIGHT_DECAY`` by default, as CNN-F's).

Usage:

    phi = GapCNN(output_dim=16)                       # (B, 32, 32, 3) in [0, 1] -> (B, 16)
    same = GapCNN.from_preset("gap_cnn", output_dim=16)
"""

from __future__ import annotations

from collections.abc import Sequence

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.layers.cnn_f import PAPER_WEIGHT_DECAY
from tfrec_fashion.layers.presets import Presets
from tfrec_fashion.serialization import register_serializable

# Named configurations (KerasHub presets): constructor arguments, nothing else.
PRESETS = {
    # 32x32 images, 16-32-64 channels (maps 32 -> 16 -> 8): ~2.8M multiply-adds per image.
    "gap_cnn": {"image_shape": (32, 32, 3), "widths": (16, 32, 64)},
}


@register_serializable
class GapCNN(Presets, tf.keras.Model):
    """Conv blocks, global average pooling and a linear layer: images -> K-d item vectors.

    Layers are named ``preprocessing``, ``conv{1..n}``, ``bn{1..n}``, ``relu{1..n}``,
    ``pool{1..n-1}``, ``gap``, ``dropout``, ``fc``.

    Args:
        output_dim: K, the width of the last (linear) layer.
        image_shape: (H, W, 3) with static sizes.
        widths: channels of each 3x3 conv block; a 2x2 max pool follows every block but the last.
        dropout_rate: dropout before the last layer, training only.
        weight_decay: Keras L2 coefficient on every kernel.
        include_preprocessing: map [0, 1] inputs to [-1, 1] in the first layer.

    Example:

        phi = GapCNN(output_dim=8, image_shape=(16, 16, 3), widths=(4, 8))
        vectors = phi(images, training=False)  # images (B, 16, 16, 3) in [0, 1] -> (B, 8)
    """

    PRESETS = PRESETS
    FAMILY = "GapCNN"

    def __init__(
        self,
        output_dim: int = 16,
        image_shape: Sequence[int] = PRESETS["gap_cnn"]["image_shape"],
        widths: Sequence[int] = PRESETS["gap_cnn"]["widths"],
        dropout_rate: float = 0.0,
        weight_decay: float = PAPER_WEIGHT_DECAY,
        include_preprocessing: bool = True,
        name: str = "gap_cnn",
        **kwargs,
    ):
        image_shape, widths = tuple(image_shape), tuple(widths)
        _check_arguments(output_dim, image_shape, widths, dropout_rate, weight_decay)
        regularizer = tf.keras.regularizers.l2(weight_decay) if weight_decay else None

        # === Functional Model ===
        inputs = tf.keras.Input(shape=image_shape, name="images")
        x = inputs
        if include_preprocessing:
            x = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(x)
        for index, width in enumerate(widths, start=1):
            # No conv bias: batch norm's offset replaces it.
            x = tf.keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                       kernel_regularizer=regularizer, name=f"conv{index}")(x)
            x = tf.keras.layers.BatchNormalization(name=f"bn{index}")(x)
            x = tf.keras.layers.ReLU(name=f"relu{index}")(x)
            if index < len(widths):
                x = tf.keras.layers.MaxPool2D(2, padding="same", name=f"pool{index}")(x)
        x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
        x = tf.keras.layers.Dropout(dropout_rate, name="dropout")(x)
        outputs = tf.keras.layers.Dense(output_dim, kernel_regularizer=regularizer, name="fc")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.output_dim = output_dim
        self.image_shape = image_shape
        self.widths = widths
        self.dropout_rate = dropout_rate
        self.weight_decay = weight_decay
        self.include_preprocessing = include_preprocessing

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "output_dim": self.output_dim,
            "image_shape": list(self.image_shape),
            "widths": list(self.widths),
            "dropout_rate": self.dropout_rate,
            "weight_decay": self.weight_decay,
            "include_preprocessing": self.include_preprocessing,
        }


def _check_arguments(output_dim, image_shape, widths, dropout_rate, weight_decay) -> None:
    def positive_ints(values):
        return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)

    if not positive_ints([output_dim]):
        raise ValueError(f"`output_dim` must be a positive integer. Received: "
                         f"output_dim={output_dim!r}")
    if len(image_shape) != 3 or image_shape[2] != 3 or not positive_ints(image_shape[:2]):
        raise ValueError("`image_shape` must be (height, width, 3) with static sizes. "
                         f"Received: image_shape={image_shape}")
    if not widths or not positive_ints(widths):
        raise ValueError(f"`widths` must be one or more positive channel counts. "
                         f"Received: widths={widths}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
