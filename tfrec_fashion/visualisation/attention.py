"""Attention maps of a customer's score of an item image (tf-keras-vis), and the figure of them.

For a trained run with an image path, a **score-of-image** is a Keras model mapping item images
[B, H, W, 3] to the user-conditioned scores [B, C] of C chosen customers (column c: customer c's
score of each image); tf-keras-vis differentiates column c (``score = lambda output: output[:,
c]``) with respect to the image. ``SCORE_OF_IMAGE`` holds one function per model family that
builds it; adding an image model is one entry there.

- DVBPR (``models.dvbpr``): x_ui = theta_u . Phi(X_i), the whole score.
- VBPR / TVBPR on EfficientNet-Lite0 features: image * 255 -> EfficientNet-Lite0 -> the
  training-time standardisation -> ``model.embed_items`` -> dot with the customer's vector: the
  score less its id-only terms (beta_i, gamma_u . gamma_i), which do not depend on the image.

GradCAM needs the convolution it weighs to be a layer of the model it is given: both entries
build a functional model on the backbone's own input tensor (``tf.keras.Model(backbone.inputs,
head(backbone.output))``), so every backbone layer is a top-level layer that ``get_layer`` finds;
a backbone called as one nested layer would hide its convolutions. That is why EfficientNet's
input stays its own [0, 255] one (``ScoreOfImage.input_scale``: images in [0, 1] are multiplied
before the call; a constant factor leaves every normalised map unchanged). With tf_keras on
TF 2.21 tf-keras-vis's layer search looks for Keras 3 classes, so the layer is always passed
(``penultimate_layer=``, ``seek_penultimate_conv_layer=False``): the last convolution whose map
is still at least ``MIN_CAM_SIDE`` pixels wide (EfficientNet-Lite0 on 32-pixel images is 1 x 1
at its top, where a CAM is one constant).

Every map is normalised to [0, 1] per image (a constant map becomes 0: a CAM whose ReLU found
no part of the image that raises that customer's score). ScoreCAM weighs each channel by the
customer's own score of the masked image (``_binary_logit``: tf-keras-vis would weigh by a
softmax over all the customers' columns). Saliency and SmoothGrad take the gradient's absolute
value, so they cannot tell a customer from one with the opposite taste (-theta_u): their maps
are the same. GradCAM and ScoreCAM can (the maps of -theta_u rank pixels inversely where both
vary); GradCAM++ keeps only positive gradients in its weights and measured nearly blind to it
(rank correlation 0.90 between theta_u and -theta_u on the tests' DVBPR run).

TensorFlow (and tf-keras-vis) are imported by the functions that build and differentiate models,
not by this module: ``check_request`` reads the run's config.yaml and serving arrays with NumPy,
so a bad request (model without an image path, unknown method, customer or item) fails in one
line without TensorFlow starting.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow, and before tf_keras_vis)
from tfrec_fashion.config import read_yaml
from tfrec_fashion.errors import TfrecFashionError
from tfrec_fashion.visualisation.figures import save_figure

METHODS = ("gradcam", "gradcam++", "scorecam", "saliency", "smoothgrad")
DEFAULT_METHOD = "gradcam++"
MIN_CAM_SIDE = 4
SMOOTH_SAMPLES = 20  # SmoothGrad: noisy copies per image
SMOOTH_NOISE = 0.2  # their noise, as a share of the image's value range


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
    """

    model: "tf.keras.Model"  # noqa: F821
    cam_layer: str
    input_scale: float
    item_images: np.ndarray

    def scores(self, images: np.ndarray) -> np.ndarray:
        """The C customers' scores of images [B, H, W, 3] in [0, 1]: [C, B]."""
        return self.model(images * self.input_scale, training=False).numpy().T


# ----------------------------------------------------------------------------- the registry
def _dvbpr(recipe, model, user_vectors: np.ndarray) -> ScoreOfImage:
    import tensorflow as tf

    backbone = model.backbone
    head = _customer_scores(user_vectors)  # theta_u . Phi(X), eq. 6 of DVBPR
    score_model = tf.keras.Model(backbone.inputs, head(backbone.output), name="dvbpr_score")
    return ScoreOfImage(score_model, _cam_layer(score_model), 1.0,
                        np.asarray(model.item_images.numpy(), np.float32))


def _vbpr_efficientnet(recipe, model, user_vectors: np.ndarray) -> ScoreOfImage:
    import tensorflow as tf

    from tfrec_fashion.layers.item_content import efficientnet_backbone, item_images

    size = recipe.model_config.image_size
    backbone = efficientnet_backbone(size)  # RGB [0, 255] -> [B, 1280]
    mean, scale = (tf.constant(value, tf.float32) for value in recipe.feature_scaling)
    users = tf.constant(user_vectors, tf.float32)

    class CustomerScores(tf.keras.layers.Layer):
        """The recipe's own chain (``VBPRRecipe.item_embedder``) from the pooled features, then
        the customers' vectors; a layer (not a Lambda) so that it tracks VBPR's variables."""

        def __init__(self):
            super().__init__(name="user_scores", trainable=False)
            self.vbpr = model

        def call(self, features):
            rows = self.vbpr.embed_items((features - mean) / scale)
            return tf.matmul(rows, users, transpose_b=True)

    head = CustomerScores()
    score_model = tf.keras.Model(backbone.inputs, head(backbone.output), name="vbpr_score")
    return ScoreOfImage(score_model, _cam_layer(score_model), 255.0,
                        item_images(recipe.dataset, size).numpy())


# registry key (``image_path``) -> builder(recipe, model, user vectors [C, D]) -> ScoreOfImage
SCORE_OF_IMAGE: dict[str, Callable[..., ScoreOfImage]] = {
    "dvbpr": _dvbpr,
    "vbpr_efficientnet": _vbpr_efficientnet,
}


def image_path(model_section: dict) -> str:
    """The ``SCORE_OF_IMAGE`` key of a run's ``model`` config section; ``AttentionError`` for a
    model whose score does not go through an item image."""
    name = model_section.get("name")
    key = name
    if name in ("vbpr", "tvbpr") and model_section.get("feature_source") == "efficientnet":
        key = "vbpr_efficientnet"
    if key not in SCORE_OF_IMAGE:
        raise AttentionError(
            f"model {name!r} has no image path to map attention on (its scores do not go "
            "through an item image); models with one: dvbpr, vbpr / tvbpr with "
            "feature_source: efficientnet")
    return key


def _customer_scores(user_vectors: np.ndarray) -> "tf.keras.layers.Dense":  # noqa: F821
    """A Dense layer whose column c is the dot product with customer c's vector."""
    import tensorflow as tf

    dense = tf.keras.layers.Dense(len(user_vectors), use_bias=False, name="user_scores")
    dense.build((None, user_vectors.shape[1]))
    dense.set_weights([np.asarray(user_vectors, np.float32).T])
    return dense


def _cam_layer(model: "tf.keras.Model") -> str:  # noqa: F821
    """The last convolution of ``model`` whose map is at least ``MIN_CAM_SIDE`` wide."""
    import tensorflow as tf

    convolutions = [layer for layer in model.layers
                    if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D))
                    and min(layer.output_shape[1:3]) >= MIN_CAM_SIDE]
    if not convolutions:
        raise AttentionError(f"{model.name} has no convolution with a map of at least "
                             f"{MIN_CAM_SIDE} x {MIN_CAM_SIDE}: GradCAM has nothing to weigh")
    return convolutions[-1].name


# ----------------------------------------------------------------------------- the request
@dataclass(frozen=True)
class AttentionRequest:
    """What to map, checked against the run directory without TensorFlow work.

    Args:
        run_dir: the trained run.
        image_path: its ``SCORE_OF_IMAGE`` key.
        method: one of ``METHODS``.
        users, items: indices into the run's users and items; user_ids, item_ids their ids.
    """

    run_dir: Path
    image_path: str
    method: str
    users: list[int]
    user_ids: list[str]
    items: list[int]
    item_ids: list[str]


def check_request(run_dir: str | Path, users: Sequence[str], items: Sequence[str] = (),
                  method: str = DEFAULT_METHOD, n_default_items: int = 6) -> AttentionRequest:
    """Checks a request against the run's config.yaml and serving arrays (NumPy only).

    Without ``items``: the first customer's ``n_default_items`` top-scored items.
    """
    run_dir = Path(run_dir)
    if method not in METHODS:
        raise AttentionError(f"unknown attention method {method!r}; known: {', '.join(METHODS)}")
    if not (run_dir / "config.yaml").is_file():
        raise AttentionError(f"{run_dir} holds no trained run (no config.yaml); train it first "
                             "with `tfrec-fashion train`")
    key = image_path(read_yaml(run_dir / "config.yaml").get("model", {}))
    arrays = run_dir / "serving" / "arrays.npz"
    if not arrays.is_file():
        raise AttentionError(f"{run_dir} is not a finished run (no {arrays}); train it to the "
                             "end with `tfrec-fashion train` first")
    with np.load(arrays, allow_pickle=False) as stored:
        user_ids, item_ids = list(stored["user_ids"]), list(stored["item_ids"])
        vectors = (stored["user_vectors"], stored["item_vectors"])
    if not users:
        raise AttentionError("name at least one customer (--user)")
    user_index = _indices(users, user_ids, "customer")
    if items:
        item_index = _indices(items, item_ids, "item")
    else:
        scores = vectors[0][user_index[0]] @ vectors[1].T
        item_index = [int(i) for i in np.argsort(-scores, kind="stable")[:n_default_items]]
    return AttentionRequest(run_dir, key, method, user_index, [user_ids[u] for u in user_index],
                            item_index, [item_ids[i] for i in item_index])


def _indices(wanted: Sequence[str], known: list[str], what: str) -> list[int]:
    position = {name: index for index, name in enumerate(known)}
    unknown = [name for name in wanted if name not in position]
    if unknown:
        raise AttentionError(f"unknown {what} id {unknown[0]!r} (this run knows {len(known)} "
                             f"{what}s, e.g. {', '.join(known[:3])})")
    return [position[name] for name in wanted]


# ----------------------------------------------------------------------------- the maps
def build_score_of_image(key: str, recipe, model, users: Sequence[int]) -> ScoreOfImage:
    """The run's score-of-image for the customers at indices ``users``."""
    user_vectors = np.asarray(recipe.user_vectors(model), np.float32)[list(users)]
    return SCORE_OF_IMAGE[key](recipe, model, user_vectors)


def attention_maps(score: ScoreOfImage, images: np.ndarray, method: str) -> np.ndarray:
    """Maps of every customer's score of every image, each normalised to [0, 1].

    Args:
        score: the customers' score-of-image (C columns).
        images: float [B, H, W, 3] in [0, 1].
        method: one of ``METHODS``.

    Returns:
        float32 [C, B, H, W].
    """
    if method not in METHODS:
        raise AttentionError(f"unknown attention method {method!r}; known: {', '.join(METHODS)}")
    seed = np.asarray(images, np.float32) * score.input_scale
    maps = []
    for column in range(int(score.model.output_shape[-1])):
        model, function = score.model, (lambda output, c=column: output[:, c])
        if method == "scorecam":
            model, function = _binary_logit(score.model, column), _undo_softmax
        with contextlib.redirect_stdout(io.StringIO()):  # ScoreCAM's predict progress bars
            raw = _visualise(method, model, score.cam_layer, function, seed)
        maps.append(_normalise(np.asarray(raw, np.float32).reshape(seed.shape[:3])))
    return np.stack(maps)


def _binary_logit(model: "tf.keras.Model", column: int) -> "tf.keras.Model":  # noqa: F821
    """images -> [s_c, 0]: customer ``column``'s score beside a zero (for ScoreCAM).

    tf-keras-vis's ScoreCAM weighs each channel by ``score(softmax(model output))``. Over the
    C customers' columns that softmax would mix the customers (and with one column be constant
    1); a softmax probability near 1/2 would also let every channel weigh about the same for any
    customer. Against a zero the softmax keeps s_c recoverable: ``_undo_softmax`` takes it back,
    so each channel weighs by the customer's own score of the masked image, sign included.
    """
    import tensorflow as tf

    pair = tf.keras.layers.Lambda(
        lambda scores: tf.stack([scores[:, column], tf.zeros_like(scores[:, column])], axis=-1),
        name=f"customer_{column}_against_zero")
    return tf.keras.Model(model.inputs, pair(model.output))


def _undo_softmax(probabilities):
    """softmax([s, 0]) -> s: log p_0 - log p_1."""
    import tensorflow as tf

    return tf.math.log(probabilities[:, 0]) - tf.math.log(probabilities[:, 1])


def _visualise(method: str, model: "tf.keras.Model", cam_layer: str,  # noqa: F821
               function: Callable, seed: np.ndarray) -> np.ndarray:
    """One tf-keras-vis call: the raw map of ``function(model(seed))`` [B, H, W]."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam

    if method in ("gradcam", "gradcam++", "scorecam"):
        visualiser = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus,
                      "scorecam": Scorecam}[method](model, clone=False)
        return visualiser(function, seed, penultimate_layer=cam_layer,
                          seek_penultimate_conv_layer=False, normalize_cam=False)
    smooth = ({"smooth_samples": SMOOTH_SAMPLES, "smooth_noise": SMOOTH_NOISE}
              if method == "smoothgrad" else {})
    return Saliency(model, clone=False)(function, seed, normalize_map=False, **smooth)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map [H, W] of [B, H, W] to [0, 1]; a constant (or non-finite) map to 0."""
    maps = np.where(np.isfinite(maps), maps, 0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0).astype(
        np.float32)


# ----------------------------------------------------------------------------- figure and files
def plot_attention_grid(images: np.ndarray, maps: np.ndarray, scores: np.ndarray,
                        item_ids: Sequence[str], user_ids: Sequence[str], path: str | Path,
                        title: str = "") -> Path:
    """Saves a PNG grid: a row per item, its image, then a column per customer with the map
    overlaid and that customer's score in the title.

    Args:
        images: float [B, H, W, 3] in [0, 1].
        maps: float [C, B, H, W] in [0, 1].
        scores: float [C, B].
        item_ids, user_ids: B and C labels.
        path: the PNG file to write.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    n_users, n_items = maps.shape[:2]
    figure, axes = plt.subplots(n_items, n_users + 1, figsize=(1.7 * (n_users + 1),
                                                               1.8 * n_items), squeeze=False)
    for row in range(n_items):
        axes[row, 0].imshow(images[row], interpolation="nearest")
        axes[row, 0].set_title(textwrap.fill(f"item {item_ids[row]}", 24), fontsize=6)
        for column in range(n_users):
            axis = axes[row, column + 1]
            axis.imshow(images[row], interpolation="nearest")
            axis.imshow(maps[column, row], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0,
                        interpolation="bilinear")
            flat = "" if maps[column, row].any() else " (flat map)"  # e.g. GradCAM's ReLU
            axis.set_title(f"{user_ids[column]}: {scores[column, row]:.3f}{flat}", fontsize=6)
    for axis in axes.ravel():
        axis.axis("off")
    return save_figure(figure, path, title, dpi=120)
