"""CNN-F (Chatfield et al. 2014, "Return of the devil in the details"), DVBPR's image network Phi.

DVBPR (paper 003, section III-A) uses CNN-F with its last layer resized to K:

    conv1 64x11x11 st. 4, pad 0 -> ReLU [-> LRN] -> max pool x2
    conv2 256x5x5  st. 1, pad 2 -> ReLU [-> LRN] -> max pool x2
    conv3 256x3x3  st. 1, pad 1 -> ReLU
    conv4 256x3x3  st. 1, pad 1 -> ReLU
    conv5 256x3x3  st. 1, pad 1 -> ReLU -> max pool x2
    fc6 4096 -> ReLU -> dropout;  fc7 4096 -> ReLU -> dropout;  fc8 K (linear)

Choices, each documented where it is made:

- Pooling is CNN-F's overlapping 3x3 max pool with stride 2, padded "same" (output ceil(n / 2)).
  At 224x224 the maps are 54 -> 27 -> 14 -> 7, so fc6 reads 7x7x256 = 12,544 features: the same fc6
  (12,544 x 4,096) as the DVBPR authors' released code, whose "SAME" convs and 2x2 pools also end
  at 7x7. The full-size network with K = 50 has 70,573,874 parameters.
- Small inputs degrade gracefully (tests use 32x32): conv1 is "valid" (pad 0, as in CNN-F) when the
  image is at least 11 pixels on each side, else "same" (ceil(n / 4)); "same" pools never shrink a
  map below 1, and a pool whose input is already 1x1 (an identity) is left out. At 32x32 the maps
  are 6 -> 3 -> 2 -> 1 and fc6 reads 1x1x256.
- Local response normalisation (CNN-F after conv1 and conv2; Krizhevsky's k=2, n=5, alpha=1e-4,
  beta=0.75) is optional and off by default: the DVBPR authors' code has none, and it has no
  weights, so checkpoints are the same with or without it.
- Weight decay is an L2 kernel regulariser on every conv and fc kernel (not the biases, as in the
  authors' code): ``weight_decay * sum(w ** 2)`` joins the model's losses. The paper's 1e-3
  multiplies ``tf.nn.l2_loss`` (sum(w ** 2) / 2) beside a BPR loss *summed* over a batch of 128;
  DVBPR here averages its loss over the batch, so the same objective is 1e-3 / 2 / 128 =
  ``PAPER_WEIGHT_DECAY`` (the default).
- Input: RGB float32 in [0, 1] (``data.pipelines.image_table``); the first layer maps it to
  [-1, 1] like the authors' (x - 127.5) / 127.5 (``include_preprocessing=False`` skips it).
- Initialisation as in the authors' code: Glorot-uniform kernels, zero biases (Keras defaults).

Usage:

    phi = CNNF(output_dim=50)                     # (B, 224, 224, 3) in [0, 1] -> (B, 50)
    tiny = small_cnn(output_dim=8)                # (B, 32, 32, 3) -> (B, 8), for tests
    same = CNNF.from_preset("small_cnn", output_dim=8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.layers.presets import Presets
from tfrec_fashion.serialization import register_serializable

# The paper's weight decay 1e-3 on sum(w**2)/2 with a batch-summed loss (batch 128), expressed for
# a batch-mean loss and Keras' l2 (which has no 1/2): 1e-3 / 2 / 128.
PAPER_WEIGHT_DECAY = 1e-3 / (2 * 128)
CONV_KERNELS = (11, 5, 3, 3, 3)
CONV_STRIDES = (4, 1, 1, 1, 1)
POOL_AFTER = (True, True, False, False, True)  # CNN-F pools after conv1, conv2 and conv5
LRN_AFTER = (True, True, False, False, False)
POOL_SIZE, POOL_STRIDE = 3, 2

# Named configurations (KerasHub presets): constructor arguments, nothing else.
PRESETS = {
    # The DVBPR network: CNN-F widths at 224x224.
    "cnn_f": {"image_shape": (224, 224, 3), "conv_filters": (64, 256, 256, 256, 256),
              "fc_units": (4096, 4096)},
    # Same layer sequence, narrow enough to train in seconds on 32x32 images (tests, demos).
    # No dropout: 0.5 of 64 units drops too much to learn a small world in a few epochs (the
    # paper's 0.5 is of 4096); narrower convs than 16-32 lose whole colours to dead ReLUs.
    "small_cnn": {"image_shape": (32, 32, 3), "conv_filters": (16, 32, 32, 32, 32),
                  "fc_units": (64, 64), "dropout_rate": 0.0},
}


@register_serializable
class LocalResponseNormalization(tf.keras.layers.Layer):
    """Cross-channel local response normalisation (Krizhevsky et al. 2012), as in CNN-F.

    y = x / (bias + alpha * sum of x**2 over the 2 * depth_radius + 1 nearest channels) ** beta,
    i.e. ``tf.nn.local_response_normalization``; the defaults are Krizhevsky's k=2, n=5,
    alpha=1e-4, beta=0.75 (alpha not divided by n). No weights.
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4,
                 beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = depth_radius
        self.bias = bias
        self.alpha = alpha
        self.beta = beta

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.local_response_normalization(inputs, self.depth_radius, self.bias,
                                                  self.alpha, self.beta)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"depth_radius": self.depth_radius, "bias": self.bias,
                       "alpha": self.alpha, "beta": self.beta})
        return config


@register_serializable
class CNNF(Presets, tf.keras.Model):
    """CNN-F as a functional Keras model: RGB images -> K-dimensional item vectors Phi(X_i).

    Layers are named ``preprocessing``, ``conv{1..5}`` (ReLU inside), ``lrn{1,2}``,
    ``pool{1,2,5}``, ``flatten``, ``fc6``, ``drop6``, ``fc7``, ``drop7``, ``fc8``.

    Args:
        output_dim: K, the width of fc8 (DVBPR: 50; the authors' code: 100).
        image_shape: (H, W, 3) with static sizes (paper: 224x224); small sizes are handled as the
            module docstring says.
        conv_filters: widths of conv1..conv5 (CNN-F: 64, 256, 256, 256, 256).
        fc_units: widths of fc6 and fc7 (CNN-F: 4096, 4096).
        dropout_rate: dropout after fc6 and fc7, training only (paper: 0.5).
        weight_decay: Keras L2 coefficient on every kernel; see ``PAPER_WEIGHT_DECAY``.
        local_response_normalization: add CNN-F's LRN after conv1 and conv2 (default off).
        include_preprocessing: map [0, 1] inputs to [-1, 1] in the first layer.

    Example:

        phi = CNNF(output_dim=8, image_shape=(32, 32, 3), conv_filters=(8, 16, 16, 16, 16),
                   fc_units=(32, 32))
        vectors = phi(images, training=False)  # images (B, 32, 32, 3) in [0, 1] -> (B, 8)
    """

    PRESETS = PRESETS
    FAMILY = "CNN-F"

    def __init__(
        self,
        output_dim: int = 50,
        image_shape: Sequence[int] = PRESETS["cnn_f"]["image_shape"],
        conv_filters: Sequence[int] = PRESETS["cnn_f"]["conv_filters"],
        fc_units: Sequence[int] = PRESETS["cnn_f"]["fc_units"],
        dropout_rate: float = 0.5,
        weight_decay: float = PAPER_WEIGHT_DECAY,
        local_response_normalization: bool = False,
        include_preprocessing: bool = True,
        name: str = "cnn_f",
        **kwargs,
    ):
        image_shape, conv_filters = tuple(image_shape), tuple(conv_filters)
        fc_units = tuple(fc_units)
        _check_arguments(output_dim, image_shape, conv_filters, fc_units, dropout_rate,
                         weight_decay)
        regularizer = tf.keras.regularizers.l2(weight_decay) if weight_decay else None

        # === Functional Model ===
        inputs = tf.keras.Input(shape=image_shape, name="images")
        x = inputs
        if include_preprocessing:
            x = tf.keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(x)
        size = image_shape[:2]
        for index, (filters, kernel, stride) in enumerate(
                zip(conv_filters, CONV_KERNELS, CONV_STRIDES, strict=True), start=1):
            # CNN-F pads conv1 by 0 and the others to keep the size ("same"); an image smaller
            # than conv1's kernel gets "same" there too rather than an empty map.
            padding = "valid" if index == 1 and min(size) >= kernel else "same"
            x = tf.keras.layers.Conv2D(filters, kernel, stride, padding=padding, activation="relu",
                                       kernel_regularizer=regularizer, name=f"conv{index}")(x)
            size = tuple(_conv_output(s, kernel, stride, padding) for s in size)
            if local_response_normalization and LRN_AFTER[index - 1]:
                x = LocalResponseNormalization(name=f"lrn{index}")(x)
            if POOL_AFTER[index - 1] and size != (1, 1):  # a pool of a 1x1 map is the identity
                x = tf.keras.layers.MaxPool2D(POOL_SIZE, POOL_STRIDE, padding="same",
                                              name=f"pool{index}")(x)
                size = tuple(math.ceil(s / POOL_STRIDE) for s in size)
        x = tf.keras.layers.Flatten(name="flatten")(x)
        for index, units in enumerate(fc_units, start=6):
            x = tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                      name=f"fc{index}")(x)
            x = tf.keras.layers.Dropout(dropout_rate, name=f"drop{index}")(x)
        outputs = tf.keras.layers.Dense(output_dim, kernel_regularizer=regularizer,
                                        name="fc8")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.output_dim = output_dim
        self.image_shape = image_shape
        self.conv_filters = conv_filters
        self.fc_units = fc_units
        self.dropout_rate = dropout_rate
        self.weight_decay = weight_decay
        self.local_response_normalization = local_response_normalization
        self.include_preprocessing = include_preprocessing

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "output_dim": self.output_dim,
            "image_shape": list(self.image_shape),
            "conv_filters": list(self.conv_filters),
            "fc_units": list(self.fc_units),
            "dropout_rate": self.dropout_rate,
            "weight_decay": self.weight_decay,
            "local_response_normalization": self.local_response_normalization,
            "include_preprocessing": self.include_preprocessing,
        }


def small_cnn(output_dim: int = 8, **overrides) -> CNNF:
    """The ``small_cnn`` preset: CNN-F's layer sequence on 32x32 inputs, widths 16-32-32-32-32 /
    64-64, no dropout; ``overrides`` replace any argument."""
    return CNNF.from_preset("small_cnn", output_dim=output_dim, **overrides)


def _conv_output(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "valid":
        return (size - kernel) // stride + 1
    return math.ceil(size / stride)


def _check_arguments(output_dim, image_shape, conv_filters, fc_units, dropout_rate,
                     weight_decay) -> None:
    def positive_ints(values):
        return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)

    if not positive_ints([output_dim]):
        raise ValueError(f"`output_dim` must be a positive integer. Received: "
                         f"output_dim={output_dim!r}")
    if len(image_shape) != 3 or image_shape[2] != 3 or not positive_ints(image_shape[:2]):
        raise ValueError("`image_shape` must be (height, width, 3) with static sizes. "
                         f"Received: image_shape={image_shape}")
    if len(conv_filters) != 5 or not positive_ints(conv_filters):
        raise ValueError("`conv_filters` must be 5 positive widths (conv1..conv5). "
                         f"Received: conv_filters={conv_filters}")
    if len(fc_units) != 2 or not positive_ints(fc_units):
        raise ValueError(f"`fc_units` must be 2 positive widths (fc6, fc7). "
                         f"Received: fc_units={fc_units}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
