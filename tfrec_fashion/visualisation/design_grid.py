"""A customer's designs as a person sees them (``tfrec-fashion design``): each new image with the
customer's preference score theta_u . Phi(image) and the discriminator's realism D(image, c);
with a prototype, the catalogue item first, then its tailoring (paper 003, III-D, Fig. 4).

The designs come from the run's serving parts (``GenerationParts``: the GAN's generator and
discriminator, DVBPR's Phi and theta_u), the same functions the exported ``design`` signature
runs; nothing here retrains or rebuilds the dataset.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.errors import ConfigError
from tfrec_fashion.models.design import invert, maximise_preference, upscale
from tfrec_fashion.training.serving_parts import GenerationParts
from tfrec_fashion.visualisation.figures import save_figure

import matplotlib.pyplot as plt  # noqa: E402  (after figures.py chose the Agg backend)

COLUMNS = 8


@dataclasses.dataclass
class DesignRequest:
    """A checked ``design`` request against a run's parts.

    Attributes:
        user: the customer id asked for.
        theta: float32 [K], their theta_u (the mean customer's when unknown).
        cold_start: whether the customer is unknown to the run.
        category: the category designed.
        category_index: its index in the GAN.
        item: the prototype's id, or None.
        prototype: float32 [H, W, 3] in [0, 1], the prototype's image, or None.
    """

    user: str
    theta: np.ndarray
    cold_start: bool
    category: str
    category_index: int
    item: str | None = None
    prototype: np.ndarray | None = None


def check_design_request(parts: GenerationParts, user: str, category: str | None,
                         item: str | None = None) -> DesignRequest:
    """The request checked against the run: an unknown customer is the cold start (the mean
    customer); an unknown category or item is a ``ConfigError`` naming it. With an item, the
    category is the item's (``category`` None, or the same)."""
    rows = np.flatnonzero(parts.user_ids == user)
    theta = parts.user_vectors[rows[0]] if len(rows) else parts.cold_start_vector
    prototype = None
    if item is not None:
        if parts.item_images is None:
            raise ConfigError("this run holds no item images to tailor from (--from-item)")
        found = np.flatnonzero(parts.item_ids == item)
        if not len(found):
            raise ConfigError(f"unknown item {item!r} (--from-item): not in the run's "
                              f"catalogue of {len(parts.item_ids)} items, e.g. "
                              f"{', '.join(parts.item_ids[:3])}")
        own = str(parts.item_categories[found[0]])
        if category not in (None, own):
            raise ConfigError(f"item {item!r} is a {own!r}, not {category!r}: tailoring keeps "
                              f"the item's category (leave --category out)")
        category = own
        prototype = parts.item_images[found[0]].astype(np.float32) / 255.0
    if category is None:
        raise ConfigError("name the category to design (--category), or an item to tailor "
                          "(--from-item)")
    try:
        index = parts.category_index(category)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return DesignRequest(user, np.asarray(theta, np.float32), not len(rows), category, index,
                         item, prototype)


def tailoring(parts: GenerationParts, request: DesignRequest, n: int, eta: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Prototype tailoring as it goes (Fig. 4's b0 ... b50): the prototype inverted into the
    GAN (eq. 12, ``models.design.invert``), then the ascent from there after steps / n,
    2 steps / n, ..., steps (the run's steps), each from the inverted latent.

    Returns:
        (images float32 [n + 1, H, W, 3]: the reconstruction (step 0) then the n stages;
        preference scores [n + 1]).
    """
    settings = parts.settings
    z_prime = invert(parts.gan.generate, request.prototype, request.category_index,
                     seed=seed, latent_dim=parts.gan.latent_dim)
    images, scores = [], []
    for stage in range(n + 1):
        designs = maximise_preference(
            parts.gan.generate, parts.gan.discriminate, parts.phi.embed, request.theta,
            request.category_index, z_prime, math.ceil(stage * settings.steps / n),
            settings.learning_rate, eta, phi_size=tuple(parts.phi.input_spec.shape[1:3]))
        images.append(designs.images.numpy()[0])
        scores.append(float(designs.preference.numpy()[0]))
    return np.stack(images), np.array(scores, np.float32)


def preference_and_realism(parts: GenerationParts, request: DesignRequest, images: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """theta_u . Phi(image) and D(image, c) of each image [N, H, W, 3]: float32 [N] each."""
    images = tf.constant(images, tf.float32)
    upscaled = upscale(images, parts.phi.input_spec.shape[1:3])  # eq. 9's Delta
    preference = parts.phi.embed(upscaled).numpy() @ request.theta
    category = tf.fill([len(images)], request.category_index)
    return preference.astype(np.float32), parts.gan.discriminate(images, category).numpy()


def plot_design_grid(images: np.ndarray, captions: list[str], path: str | Path,
                     title: str = "", prototype: np.ndarray | None = None,
                     prototype_caption: str = "") -> Path:
    """Saves the designs as a PNG grid (rows of :data:`COLUMNS`), each with its caption; a
    prototype, when given, sits alone in the first column of the first row, set apart.

    Args:
        images: float32 [n, H, W, 3] in [0, 1].
        captions: n texts (scores).
        path: the PNG file to write.
        title: the figure's title.
        prototype: float32 [H, W, 3] in [0, 1], the catalogue item tailored, or None.
        prototype_caption: its text.
    """
    if len(images) != len(captions):
        raise ValueError(f"need one caption per design. Received: {len(images)} images, "
                         f"{len(captions)} captions")
    lead = 0 if prototype is None else 2  # the prototype and a gap
    columns = min(COLUMNS, len(images))
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(
        rows, lead + columns, figsize=(1.5 * (lead + columns), 1.9 * rows + 0.5), squeeze=False,
        gridspec_kw={"width_ratios": [1, 0.25][:lead] + [1] * columns})
    for axis in axes.ravel():
        axis.axis("off")
    if prototype is not None:
        axes[0, 0].imshow(np.clip(prototype, 0, 1), interpolation="nearest")
        axes[0, 0].set_title(_wrapped(prototype_caption), fontsize=6)
    for index, (image, caption) in enumerate(zip(images, captions)):
        axis = axes[index // columns, lead + index % columns]
        axis.imshow(np.clip(image, 0, 1), interpolation="nearest")
        axis.set_title(_wrapped(caption), fontsize=6)
    return save_figure(figure, path, textwrap.fill(title, 100), dpi=120)


def _wrapped(caption: str, width: int = 20) -> str:
    """Each line of ``caption`` wrapped to ``width`` characters (its own line breaks kept)."""
    return "\n".join(textwrap.fill(line, width) for line in caption.splitlines())
