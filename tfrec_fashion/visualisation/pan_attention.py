"""PAN's attention (paper 001): its own user-aware spatial attention (Fig. 3), and the outfit
score of one item's image for ``tfrec-fashion visualize``.

- **Spatial attention** (``pan_attention_figure``): S of eq. 3, ``PAN.spatial_attention``, for
  each (user, item): where on the item's feature map that user's item encoder looks. Fig. 3 of
  the paper shows four users over the same items; here a row per user (labelled with their id
  and, in the planted world, the subspace they care most about and its weight), a column per
  item, S upsampled bilinearly to the image and overlaid on it. ``users_whose_tastes_differ``
  picks the surest user of each planted subspace (colour, pattern, length), the rows whose maps
  should differ if the attention reads the user.
- **Score of an image** (``pan_score_of_image``, the ``"pan"`` entry of
  ``attention.SCORE_OF_IMAGE``): PAN scores outfits, not items. The mapped image is completed
  into each customer's first held-out (test) outfit, replacing that outfit's item of the image's
  slot; the other S - 1 items' codes are fixed (computed once with the customer's attention),
  so only the image's side varies: s_c(image) = y(b_u, [b_image, b_partners]) of eq. 4. The
  mapped items therefore share one slot (``pan_slot``). For the unchanged image it is the
  model's own score of that outfit. The codes are sign(v) as at inference; their gradient is the
  straight-through one (identity), as the ``straight_through`` relaxation trains: the map shows
  what of the image moves its pre-code v towards the codes that raise the outfit's score (the
  exact sign has zero gradient everywhere, and a tanh at a late, steep slope nearly so).

Backbones: "gap_cnn" (the images are the content; its convolutions are mapped) and
"efficientnet" (the frozen P4 maps are the content: the image goes through EfficientNet-Lite0's
trunk again, the images shown are ``item_images(dataset, image_size)``). "attributes" has 1 x 1
maps and no image: refused (``check_spatial``).

TensorFlow is imported inside the functions: ``pan_slot`` runs in ``check_request`` before it
starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from tfrec_fashion.visualisation.figures import save_figure
from tfrec_fashion.visualisation.score_of_image import AttentionError, ScoreOfImage, cam_layer

IMAGE_BACKBONES = ("gap_cnn", "efficientnet")
EFFICIENTNET_IMAGE_SIZE = 64  # PanRecipe's default for "efficientnet"


def check_spatial(backbone: str | None) -> None:
    """``AttentionError`` unless ``backbone`` gives PAN spatial maps of an item image."""
    if backbone not in IMAGE_BACKBONES:
        raise AttentionError(
            f"PAN with backbone {backbone!r} has 1 x 1 feature maps and no item image: nothing "
            f"spatial to map; train it with backbone: {' or '.join(IMAGE_BACKBONES)}")


def display_images(recipe) -> np.ndarray:
    """Every item's image as shown under the maps: float32 [n_items, H, W, 3] in [0, 1] (the
    content itself for "gap_cnn"; for "efficientnet" the images its P4 maps were computed
    from)."""
    check_spatial(recipe.model_config.backbone)
    if recipe.model_config.backbone == "gap_cnn":
        return np.asarray(recipe.content, np.float32)
    from tfrec_fashion.layers.item_content import item_images

    size = recipe.model_config.image_size or EFFICIENTNET_IMAGE_SIZE
    return np.asarray(item_images(recipe.dataset, size), np.float32)


# ----------------------------------------------------------------------------- Fig. 3
def users_whose_tastes_differ(dataset, n: int = 3) -> list[int]:
    """The surest user (largest planted weight) of each of ``n`` planted dominant subspaces, the
    subspaces taken in the order of their surest user's weight: user indices [<= n] (fewer when
    fewer subspaces dominate someone). ``AttentionError`` for a world without planted subspace
    weights."""
    from tfrec_fashion.data.synthetic_truth import dominant_subspace

    if "user_subspace_weights" not in (dataset.truth or {}):
        raise AttentionError(f"dataset {dataset.name!r} plants no user subspace weights: name "
                             "the users to compare")
    dominant, share = dominant_subspace(dataset)
    surest = {int(s): int(np.flatnonzero(dominant == s)[np.argmax(share[dominant == s])])
              for s in np.unique(dominant)}
    return sorted(surest.values(), key=lambda user: -share[user])[:n]


def planted_taste(dataset, user: int) -> str:
    """"colour 0.91": the user's planted dominant subspace and its weight ("" without truth)."""
    if "user_subspace_weights" not in (dataset.truth or {}):
        return ""
    from tfrec_fashion.data.synthetic_truth import dominant_subspace

    dominant, share = dominant_subspace(dataset)
    names = (dataset.metadata or {}).get("vocabularies", {}).get("subspace")
    name = names[dominant[user]] if names else f"subspace {dominant[user]}"
    return f"{name} {share[user]:.2f}"


def spatial_attention(model, users: Sequence[int], items: Sequence[int]) -> np.ndarray:
    """S of eq. 3 for every (user, item): float32 [U, I, h, w] in [0, 1]."""
    users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
    pairs_user, pairs_item = np.repeat(users, len(items)), np.tile(items, len(users))
    maps = model.spatial_attention(pairs_user, pairs_item).numpy()
    return maps.reshape(len(users), len(items), *maps.shape[1:])


def pan_attention_figure(recipe, model, users: Sequence[int], items: Sequence[int],
                         path: str | Path) -> np.ndarray:
    """Saves Fig. 3: each user's spatial attention (rows) over the same items (columns).

    Args:
        recipe: the run's ``PanRecipe`` (its dataset names users, items and planted tastes).
        model: the trained ``PAN`` (backbone "gap_cnn" or "efficientnet").
        users, items: user and item indices.
        path: the PNG to write.

    Returns:
        The maps drawn, S at the feature map's resolution: float32 [U, I, h, w] in [0, 1].
    """
    import matplotlib.pyplot as plt

    check_spatial(recipe.model_config.backbone)
    images = display_images(recipe)[list(items)]
    maps = spatial_attention(model, users, items)
    dataset = recipe.dataset
    figure, axes = plt.subplots(len(users) + 1, len(items),
                                figsize=(1.5 * len(items) + 0.6, 1.55 * (len(users) + 1)),
                                squeeze=False)
    for column, item in enumerate(items):
        axes[0, column].imshow(images[column], interpolation="nearest")
        axes[0, column].set_title(f"{dataset.items.ids[item]}\n{dataset.items.category[item]}",
                                  fontsize=7)
    for row, user in enumerate(users, start=1):
        for column in range(len(items)):
            axis, attention = axes[row, column], maps[row - 1, column]
            axis.imshow(images[column], interpolation="nearest")
            # S is a sigmoid in (0, 1), often in a narrow band: each map spans the colour scale
            # (where the user looks), its range is written under it (how strongly).
            axis.imshow(_spread(attention), cmap="jet", alpha=0.5, interpolation="bilinear",
                        extent=(-0.5, images.shape[2] - 0.5, images.shape[1] - 0.5, -0.5),
                        vmin=0.0, vmax=1.0)
            axis.set_xlabel(f"S {attention.min():.2f}-{attention.max():.2f}", fontsize=6)
        label = f"{dataset.users.ids[user]}\n{planted_taste(dataset, user)}".strip()
        axes[row, 0].set_ylabel(label, fontsize=7)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_visible(False)
    save_figure(figure, path, "PAN's user-aware spatial attention (eq. 3): a row per user",
                dpi=120)
    return maps


def _spread(attention: np.ndarray) -> np.ndarray:
    """One map [h, w] stretched to [0, 1] (a constant map to 0.5)."""
    span = attention.max() - attention.min()
    return (attention - attention.min()) / span if span > 0 else np.full_like(attention, 0.5)


# ----------------------------------------------------------------------------- visualize
def pan_slot(item_slots: np.ndarray, slots: Sequence[str], items: Sequence[int]) -> int:
    """The one slot of the mapped ``items`` (each completed into a customer's outfit at that
    slot); ``AttentionError`` when they mix slots or one fills none (-1)."""
    of_items = np.asarray(item_slots)[list(items)]
    if (of_items < 0).any():
        raise AttentionError(f"item index {list(items)[int(np.argmax(of_items < 0))]} fills no "
                             f"outfit slot ({', '.join(slots)}): PAN cannot score it")
    mapped = list(dict.fromkeys(int(s) for s in of_items))
    if len(mapped) > 1:
        raise AttentionError("PAN maps the items of one slot at a time (each completed into the "
                             "customer's held-out outfit): got "
                             + ", ".join(slots[s] for s in mapped))
    return mapped[0]


def customer_outfits(recipe, model, user_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's index and first held-out outfit: (int [C], int [C, S]). A customer is
    found by their vector f_u (the registry passes vectors); the test outfit, else the
    validation, else the training one."""
    known = model.user_vectors().numpy()
    users, outfits = [], []
    for vector in np.asarray(user_vectors, np.float32):
        match = np.flatnonzero((known == vector).all(axis=1))
        if not len(match):
            raise AttentionError("PAN maps a known customer's outfit: a user vector matches "
                                 "none of the run's customers")
        users.append(int(match[0]))
        split = recipe.evaluation.split
        for held_out in (split.test, split.validation, split.train):
            rows = np.flatnonzero(held_out.user == users[-1])
            if len(rows):
                outfits.append(held_out.items[rows[0]])
                break
        else:
            raise AttentionError(f"customer {recipe.dataset.users.ids[users[-1]]} has no outfit")
    return np.array(users, np.int32), np.array(outfits, np.int32)


def pan_score_of_image(recipe, model, user_vectors: np.ndarray,
                       items: Sequence[int] | None = None) -> ScoreOfImage:
    """The ``"pan"`` score-of-image (module docstring): images [B, H, W, 3] * input_scale ->
    each customer's outfit score [B, C], the image in slot ``pan_slot(items)`` (None: slot 0)
    of the customer's first held-out outfit."""
    import tensorflow as tf

    from tfrec_fashion.models.pan import sign_code

    check_spatial(recipe.model_config.backbone)
    slot = 0 if items is None or not len(items) else pan_slot(model.item_slots, recipe.slots,
                                                              items)
    users, outfits = customer_outfits(recipe, model, user_vectors)
    n_customers = len(users)
    vectors = tf.constant(np.asarray(user_vectors, np.float32))
    user_codes = model.user_codes(users)  # [C, K]
    partner_codes = tf.reshape(model.item_codes(np.repeat(users, model.n_slots),
                                                outfits.reshape(-1)),
                               [n_customers, model.n_slots, model.code_bits])  # [C, S, K]
    at_slot = tf.one_hot(slot, model.n_slots)[None, :, None]  # [1, S, 1]

    @tf.custom_gradient
    def straight_through_sign(x):  # b = sign(v) exactly; d b / d v = 1
        return sign_code(x), lambda upstream: upstream

    class OutfitScores(tf.keras.layers.Layer):
        """Feature maps [B, h, w, c] of the image -> the C customers' outfit scores [B, C]; a
        layer (not a Lambda) so that it tracks PAN's variables."""

        def __init__(self):
            super().__init__(name="outfit_scores", trainable=False)
            self.pan = model

        def call(self, maps):
            batch = tf.shape(maps)[0]
            repeated = tf.repeat(maps, n_customers, axis=0)  # row b * C + c
            precodes = self.pan.item_precodes(tf.tile(vectors, [batch, 1]), repeated,
                                              tf.fill([batch * n_customers], slot))
            codes = straight_through_sign(precodes)[:, None, :]  # [B C, 1, K]
            outfit = (tf.tile(partner_codes, [batch, 1, 1]) * (1.0 - at_slot)
                      + codes * at_slot)  # eq. 4 reads [B C, S, K]
            scores = self.pan.preference_scores(tf.tile(user_codes, [batch, 1]), outfit)
            return tf.reshape(scores, [batch, n_customers])

    network, input_scale = _image_network(recipe, model)
    score_model = tf.keras.Model(network.inputs, OutfitScores()(network.output),
                                 name="pan_outfit_score")
    others = np.delete(outfits, slot, axis=1)  # [C, S - 1]

    def partners(images: np.ndarray) -> np.ndarray:
        return np.repeat(others[:, None, :], len(images), axis=1)  # [C, B, S - 1]

    return ScoreOfImage(score_model, cam_layer(score_model), input_scale,
                        display_images(recipe), partners=partners)


def _image_network(recipe, model) -> tuple["tf.keras.Model", float]:  # noqa: F821
    """Images * scale -> PAN's feature maps F, every convolution a top-level layer (GradCAM):
    the trained GapCNN backbone, or EfficientNet-Lite0 up to P4 on [0, 255] images."""
    import tensorflow as tf

    if recipe.model_config.backbone == "gap_cnn":
        return model.backbone, 1.0
    from tfrec_fashion.layers.efficientnet_lite import PYRAMID_LAYERS
    from tfrec_fashion.layers.item_content import efficientnet_backbone

    network = efficientnet_backbone(recipe.model_config.image_size or EFFICIENTNET_IMAGE_SIZE)
    # P4 is the map PanRecipe computes the content with (its _EFFICIENTNET_MAP).
    return tf.keras.Model(network.inputs, network.get_layer(PYRAMID_LAYERS["P4"]).output), 255.0
