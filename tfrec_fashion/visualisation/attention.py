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
- PSA-Net with an image backbone (``models.psa_net``; ``backbone: gap_cnn``, ``small_cnn`` or
  ``efficientnet``, whose recipe gives the whole image -> X network, ``image_model``):
  the score of the *pair* (the image, its best partner for that customer), s_c(image) = max over
  the partners p of -||(X(image) - X_p) M_c||, the partners being the items of the categories
  that complement the mapped items' one (a top's bottoms). M_c = sum_i w_ci m_i (or sum_i w_ci
  W_i with the "fc" combiner) is fixed by the customer's attention weights w_c, computed once from
  their embedding, and the partners' X_p once from the trained backbone: only the image's side
  varies, and the map shows what of it makes the pair (the gradient flows to the best partner
  only). For the unchanged image it is the model's own score of that pair. The customers'
  weights (``ScoreOfImage.attention_weights``) and each map's partner (``partners``) go beside
  the maps. The mapped items share one category (a top's partners are not a bottom's).
- PAN with an image backbone (``models.pan``; ``backbone: gap_cnn`` or ``efficientnet``, see
  ``pan_attention``): the *outfit* score y of eq. 4, the image completed into the customer's
  first held-out outfit at its slot (the other items' codes fixed), gradients through the codes
  straight-through. The mapped items share one slot; each map's partners (the outfit's other
  items) go beside it, and PAN's own spatial attention (Fig. 3) is drawn beside the maps.
- Complete the look with an image backbone (``models.complete_the_look``; ``backbone: gap_cnn``
  or ``efficientnet``, see ``look_attention``): no customers; the columns are **anchor items**,
  each fixed by its trained style vector s(a), and the score is the served compatibility
  sim(a, candidate) = s(a) . s(candidate image), the candidate's image through the model's
  image path. The cosine is symmetric: a map over the anchor's image is the same request with
  the two swapped.

GradCAM needs the convolution it weighs to be a layer of the model it is given: every entry
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
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow, and before tf_keras_vis)
from tfrec_fashion.config import read_yaml
from tfrec_fashion.visualisation.figures import save_figure
from tfrec_fashion.visualisation.look_attention import (anchor_vectors, check_image_path,
                                                        default_candidates, look_score_of_image)
from tfrec_fashion.visualisation.pan_attention import check_spatial, pan_score_of_image, pan_slot
# AttentionError and ScoreOfImage live in score_of_image (pan_attention builds on them too) and
# are imported from here as before.
from tfrec_fashion.visualisation.score_of_image import (  # noqa: F401
    MIN_CAM_SIDE, AttentionError, ScoreOfImage, cam_layer, customer_scores)

METHODS = ("gradcam", "gradcam++", "scorecam", "saliency", "smoothgrad")
DEFAULT_METHOD = "gradcam++"
SMOOTH_SAMPLES = 20  # SmoothGrad: noisy copies per image
SMOOTH_NOISE = 0.2  # their noise, as a share of the image's value range


# ----------------------------------------------------------------------------- the registry
def _dvbpr(recipe, model, user_vectors: np.ndarray, items=None) -> ScoreOfImage:
    import tensorflow as tf

    backbone = model.backbone
    head = customer_scores(user_vectors)  # theta_u . Phi(X), eq. 6 of DVBPR
    score_model = tf.keras.Model(backbone.inputs, head(backbone.output), name="dvbpr_score")
    return ScoreOfImage(score_model, cam_layer(score_model), 1.0,
                        np.asarray(model.item_images.numpy(), np.float32))


def _vbpr_efficientnet(recipe, model, user_vectors: np.ndarray, items=None) -> ScoreOfImage:
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
    return ScoreOfImage(score_model, cam_layer(score_model), 255.0,
                        item_images(recipe.dataset, size).numpy())


def _psa_net(recipe, model, user_vectors: np.ndarray,
             items: Sequence[int] | None = None) -> ScoreOfImage:
    """PSA-Net's pair score against each image's best partner (module docstring); ``items``: the
    mapped items, of one category (None: ``pair_category``'s default)."""
    import tensorflow as tf

    from tfrec_fashion.models.pair_compatibility import embedding_distance

    category = pair_category(recipe.dataset.items.category, recipe.evaluation.complements(),
                             items)
    partner_rows = np.flatnonzero(np.isin(recipe.dataset.items.category,
                                          recipe.evaluation.complements()[category]))
    weights = model.subspace_attention(np.asarray(user_vectors, np.float32))  # [C, k]
    dim = model.item_dim
    # f = X M_c: eq. 2 is linear in X, so the customer's mix of the subspaces is one matrix.
    mixes = tf.stack([model.embed(tf.eye(dim), tf.tile(weights[c:c + 1], [dim, 1]))
                      for c in range(len(user_vectors))])  # [C, D, D]
    partners = tf.einsum("pd,cde->cpe", tf.gather(model.item_representations(), partner_rows),
                         mixes)  # [C, P, D], fixed

    def pair_distances(x):  # X [B, D] -> distances [B, C, P] to every partner
        mine = tf.einsum("bd,cde->bce", x, mixes)[:, :, None, :]
        shape = tf.shape(mine + partners[None])
        return tf.reshape(embedding_distance(tf.broadcast_to(mine, shape),
                                             tf.broadcast_to(partners[None], shape)), shape[:3])

    head = tf.keras.layers.Lambda(lambda x: -tf.reduce_min(pair_distances(x), axis=-1),
                                  name="pair_scores")
    backbone, images, input_scale = recipe.image_model(model)
    score_model = tf.keras.Model(backbone.inputs, head(backbone.output), name="psa_net_score")

    def best_partners(images: np.ndarray) -> np.ndarray:
        x = backbone(tf.convert_to_tensor(images * input_scale, tf.float32), training=False)
        return partner_rows[np.argmin(pair_distances(x).numpy(), axis=-1)].T  # [C, B]

    return ScoreOfImage(score_model, cam_layer(score_model), input_scale, images,
                        attention_weights=weights.numpy(), partners=best_partners)


def pair_category(categories: np.ndarray, complements: dict[str, list[str]],
                  items: Sequence[int] | None) -> str:
    """The one category of the mapped ``items`` of a pair model (None: the first, by name, that
    has partners); ``AttentionError`` when they mix categories or theirs has no partners."""
    categories = np.asarray(categories).astype(str)
    if items is None or not len(items):
        return min(category for category in complements if complements[category])
    mapped = list(dict.fromkeys(categories[list(items)]))
    if len(mapped) > 1:
        raise AttentionError(f"PSA-Net maps the items of one category at a time (each paired "
                             f"with its best partner of the other): got {', '.join(mapped)}")
    if not complements.get(mapped[0]):
        raise AttentionError(f"no item pairs with a {mapped[0]!r} in this run's votes; map items "
                             f"of {', '.join(c for c in complements if complements[c])}")
    return mapped[0]


# registry key (``image_path``) -> builder(recipe, model, user vectors [C, D], the mapped item
# indices or None) -> ScoreOfImage
SCORE_OF_IMAGE: dict[str, Callable[..., ScoreOfImage]] = {
    "dvbpr": _dvbpr,
    "vbpr_efficientnet": _vbpr_efficientnet,
    "psa_net": _psa_net,
    "pan": pan_score_of_image,  # the outfit score of an image in a held-out outfit
    "complete_the_look": look_score_of_image,  # sim(anchor, candidate image), no customer
}

# What a column of each registry entry's score is (the CLI's --user names them; default
# "customers"): complete the look has none, its columns are the anchor items.
COLUMNS = {"complete_the_look": "anchor items"}


def image_path(model_section: dict) -> str:
    """The ``SCORE_OF_IMAGE`` key of a run's ``model`` config section; ``AttentionError`` for a
    model whose score does not go through an item image."""
    name = model_section.get("name")
    key: str | None = name
    if name in ("vbpr", "tvbpr") and model_section.get("feature_source") == "efficientnet":
        key = "vbpr_efficientnet"
    if name == "psa_net" and model_section.get("backbone", "features") == "features":
        key = None  # the item-features backbone: no image on the path
    if name == "pan":
        check_spatial(model_section.get("backbone", "attributes"))  # 1 x 1 maps: refused
    if name == "complete_the_look":
        check_image_path(model_section.get("backbone", "attributes"))  # no image: refused
    if key not in SCORE_OF_IMAGE:
        raise AttentionError(
            f"model {name!r} has no image path to map attention on (its scores do not go "
            "through an item image); models with one: dvbpr, vbpr / tvbpr with "
            "feature_source: efficientnet, psa_net with backbone: gap_cnn, small_cnn or "
            "efficientnet, pan and complete_the_look with backbone: gap_cnn or efficientnet")
    return key


def user_vectors(recipe, model) -> np.ndarray:
    """What the run's score reads per customer: ``recipe.user_vectors(model)``, or a pair
    model's ``customer_vectors(model)`` (PSA-Net: E_c, the attention's input), else the model's
    own ``user_vectors()`` (PAN: f_u); complete the look's anchor items' style vectors s(a) (its
    "customers" are anchor items)."""
    if recipe.protocol == "complete_the_look":
        return anchor_vectors(model)
    if hasattr(recipe, "customer_vectors"):
        return np.asarray(recipe.customer_vectors(model), np.float32)
    if hasattr(recipe, "user_vectors"):
        return np.asarray(recipe.user_vectors(model), np.float32)
    return np.asarray(model.user_vectors(), np.float32)


# ----------------------------------------------------------------------------- the request
@dataclass(frozen=True)
class AttentionRequest:
    """What to map, checked against the run directory without TensorFlow work.

    Args:
        run_dir: the trained run.
        image_path: its ``SCORE_OF_IMAGE`` key.
        method: one of ``METHODS``.
        users, items: indices into the run's users and items; user_ids, item_ids their ids
            (complete the look: ``users`` are the anchor items' indices into its items).
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

    Without ``items``: the first customer's ``n_default_items`` top-scored items; for a pair
    model (PSA-Net, whose score needs the model), the first ``n_default_items`` items of the
    first category by name that has partners (the planted world's bottoms); for PAN, the
    first ``n_default_items`` items of the outfits' first slot (the planted world's tops). A pair
    model's items share one category, PAN's one slot. Complete the look has no customers:
    ``users`` names anchor *items* (``COLUMNS``), and the default items are the first anchor's
    ``n_default_items`` best complements by the served style cosine.
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
        stored = dict(stored)
    item_ids = list(stored["item_ids"])
    if key == "complete_the_look":  # the columns are anchor items, not customers
        if not users:
            raise AttentionError("name at least one anchor item (--anchor, or --user)")
        user_ids, user_index = item_ids, _indices(users, item_ids, "anchor item")
        described = json.loads((arrays.parent / "parts.json").read_text())["described"]
        item_index = (_indices(items, item_ids, "item") if items else default_candidates(
            stored["style_vectors"], stored["item_categories"], described["complements"],
            user_index[0], n_default_items))
        return AttentionRequest(run_dir, key, method, user_index,
                                [user_ids[u] for u in user_index], item_index,
                                [item_ids[i] for i in item_index])
    user_ids = list(stored["user_ids"])
    if not users:
        raise AttentionError("name at least one customer (--user)")
    user_index = _indices(users, user_ids, "customer")
    if key == "psa_net":
        complements = json.loads((arrays.parent / "parts.json").read_text())[
            "described"]["complements"]
        categories = stored["item_categories"].astype(str)
        item_index = _indices(items, item_ids, "item") if items else None
        category = pair_category(categories, complements, item_index)
        if item_index is None:
            item_index = [int(i) for i in np.flatnonzero(categories == category)[
                :n_default_items]]
    elif key == "pan":
        described = json.loads((arrays.parent / "parts.json").read_text())["described"]
        item_slots = _outfit_slots(described, stored["item_categories"])
        item_index = (_indices(items, item_ids, "item") if items else
                      [int(i) for i in np.flatnonzero(item_slots == 0)[:n_default_items]])
        pan_slot(item_slots, described["slots"], item_index)
    elif items:
        item_index = _indices(items, item_ids, "item")
    else:
        scores = stored["user_vectors"][user_index[0]] @ stored["item_vectors"].T
        item_index = [int(i) for i in np.argsort(-scores, kind="stable")[:n_default_items]]
    return AttentionRequest(run_dir, key, method, user_index, [user_ids[u] for u in user_index],
                            item_index, [item_ids[i] for i in item_index])


def _outfit_slots(described: dict, categories: np.ndarray) -> np.ndarray:
    """Each item's outfit slot index from an outfit model's parts.json ``described`` (its slots
    and their categories), int [N] (-1: none)."""
    categories, slots = np.asarray(categories).astype(str), np.full(len(categories), -1)
    for index, slot in enumerate(described["slots"]):
        slots[np.isin(categories, described["slot_categories"][slot])] = index
    return slots


def _indices(wanted: Sequence[str], known: list[str], what: str) -> list[int]:
    position = {name: index for index, name in enumerate(known)}
    unknown = [name for name in wanted if name not in position]
    if unknown:
        raise AttentionError(f"unknown {what} id {unknown[0]!r} (this run knows {len(known)} "
                             f"{what}s, e.g. {', '.join(known[:3])})")
    return [position[name] for name in wanted]


# ----------------------------------------------------------------------------- the maps
def build_score_of_image(key: str, recipe, model, users: Sequence[int],
                         items: Sequence[int] | None = None) -> ScoreOfImage:
    """The run's score-of-image for the customers at indices ``users`` (``items``: the items to
    be mapped, which a pair model's partners depend on)."""
    return SCORE_OF_IMAGE[key](recipe, model, user_vectors(recipe, model)[list(users)], items)


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
                        title: str = "", captions: Sequence[Sequence[str]] | None = None
                        ) -> Path:
    """Saves a PNG grid: a row per item, its image, then a column per customer with the map
    overlaid and that customer's score in the title.

    Args:
        images: float [B, H, W, 3] in [0, 1].
        maps: float [C, B, H, W] in [0, 1].
        scores: float [C, B].
        item_ids, user_ids: B and C labels.
        path: the PNG file to write.
        title: figure title.
        captions: optional str [C][B], a line under each map's title (PSA-Net: the partner
            and, on the first row, the customer's attention weights).
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
            caption = "" if captions is None else f"\n{captions[column][row]}"
            axis.set_title(f"{user_ids[column]}: {scores[column, row]:.3f}{flat}{caption}",
                           fontsize=6)
    for axis in axes.ravel():
        axis.axis("off")
    return save_figure(figure, path, title, dpi=120)
