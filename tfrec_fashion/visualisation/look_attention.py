"""Complete the look (paper 004) for ``tfrec-fashion visualize``: maps of the compatibility of an
anchor item and a candidate with respect to the candidate's image.

The look model has no customers: the score it serves is item to item, the cosine of two unit
style vectors, sim(a, c) = s(a) . s(c) (``CompleteTheLook.compatibility``, ``complementary``'s
score). Here the **anchor items** take the customers' place: the columns of the score-of-image
are anchors, their style vectors s(a) fixed (the trained model's own), and the mapped image is
the candidate's, through the model's image path to its style vector:

    candidate image -> backbone -> fc -> batch norm -> ReLU -> fc -> L2-normalise -> s . s(a)

For the unchanged image it is the model's own sim(a, c). The cosine is symmetric, so the map
over the *anchor's* image of its cosine with a candidate is the same request with the two
swapped (the candidate named as the anchor, the anchor as the item mapped).

Image paths (``model.backbone`` of the run's config): "gap_cnn" (the images are the content;
GapCNN's convolutions, trained end to end, are mapped) and "efficientnet" (the content is
EfficientNet-Lite0's frozen pooled features: the image goes through EfficientNet-Lite0 again, on
[0, 255], at the run's image size). "attributes" has no image on the path: refused
(``check_image_path``).

TensorFlow is imported inside the functions: ``check_image_path`` and ``default_candidates`` run
in ``attention.check_request`` before it starts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfrec_fashion.visualisation.score_of_image import (AttentionError, ScoreOfImage, cam_layer,
                                                       customer_scores)

IMAGE_BACKBONES = ("gap_cnn", "efficientnet")
# CompleteTheLookRecipe's image sizes when the config names none (its _IMAGE_SIZE).
DEFAULT_IMAGE_SIZE = {"gap_cnn": 32, "efficientnet": 64}


def check_image_path(backbone: str | None) -> None:
    """``AttentionError`` unless a complete-the-look run with ``backbone`` scores item images."""
    if backbone not in IMAGE_BACKBONES:
        raise AttentionError(
            f"complete_the_look with backbone {backbone!r} has no item image on its path (its "
            f"style vectors come from the attributes): nothing to map; train it with backbone: "
            f"{' or '.join(IMAGE_BACKBONES)}")


def anchor_vectors(model) -> np.ndarray:
    """Every item's unit style vector s(a), float32 [n_items, D]: what an anchor column reads."""
    return np.asarray(model.item_style_embeddings(), np.float32)


def default_candidates(style_vectors: np.ndarray, categories: np.ndarray,
                       complements: dict[str, list[str]], anchor: int, n: int) -> list[int]:
    """The ``n`` items that best complete ``anchor`` by the served score (the cosine of the
    stored style vectors, within the anchor's complementary categories, the anchor left out):
    item indices, best first (NumPy only)."""
    categories = np.asarray(categories).astype(str)
    scores = np.asarray(style_vectors, np.float64) @ np.asarray(style_vectors[anchor],
                                                                np.float64)
    allowed = np.isin(categories, complements.get(categories[anchor], []))
    allowed[anchor] = False
    if not allowed.any():
        raise AttentionError(f"no category completes a {categories[anchor]!r} in this run; "
                             f"name the items to map (--items)")
    scores[~allowed] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:min(n, int(allowed.sum()))]]


def look_score_of_image(recipe, model, anchors: np.ndarray,
                        items: Sequence[int] | None = None) -> ScoreOfImage:
    """The ``"complete_the_look"`` score-of-image (module docstring): images [B, H, W, 3] *
    input_scale -> sim(anchor c, image) [B, C] for the anchors' style vectors ``anchors``
    [C, D] (``items`` is unused: a candidate's score needs no partner but the anchor)."""
    import tensorflow as tf

    backbone = recipe.model_config.backbone
    check_image_path(backbone)
    size = recipe.model_config.image_size or DEFAULT_IMAGE_SIZE[backbone]
    if backbone == "gap_cnn":
        network, input_scale = model.backbone, 1.0
        images = np.asarray(recipe.content, np.float32)
    else:
        from tfrec_fashion.layers.item_content import efficientnet_backbone, item_images

        network, input_scale = efficientnet_backbone(size), 255.0  # [0, 255] -> [B, 1280]
        images = np.asarray(item_images(recipe.dataset, size), np.float32)

    class StyleVectors(tf.keras.layers.Layer):
        """The backbone's features [B, F] -> unit style vectors [B, D]: the model's own fc,
        batch norm, ReLU and fc at inference (``CompleteTheLook.style_embeddings`` after its
        backbone); a layer (not a Lambda) so that it tracks the model's variables."""

        def __init__(self):
            super().__init__(name="style_vectors", trainable=False)
            self.look = model

        def call(self, features):
            hidden = self.look.fc_hidden(tf.reshape(features, [tf.shape(features)[0], -1]))
            if self.look.normalization is not None:
                hidden = self.look.normalization(hidden, training=False)
            return tf.math.l2_normalize(self.look.fc_style(tf.nn.relu(hidden)), axis=-1)

    cosines = customer_scores(np.asarray(anchors, np.float32))  # s(c) . s(a), one column each
    score_model = tf.keras.Model(network.inputs, cosines(StyleVectors()(network.output)),
                                 name="look_compatibility")
    return ScoreOfImage(score_model, cam_layer(score_model), input_scale, images)
