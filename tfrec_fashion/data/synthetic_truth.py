"""Queries on the planted world's ground truth: the true (user, item) score in a time epoch, its
visual / latent / popularity parts, the personal pair and outfit scores, and the subspace each
user cares most about (``dominant_subspace``), and the population's global pair score
(``global_pair_score``) behind the fashion expert's labels.

Each query takes the world or its ``truth`` dict (``WorldOrTruth``) and reads only ``truth``.
``synthetic`` re-exports them (import them from there); ``synthetic_sampling`` labels pair votes
and keeps outfits with ``true_pair_score`` and ``true_outfit_score``, and labels expert pairs
with ``global_pair_score``. The Fashion-MNIST world plants the same pair truth arrays, so these
pair queries answer for it too.

May import: numpy and ``dataset``. Never imports the other ``synthetic*`` modules.
"""

from __future__ import annotations

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset

WorldOrTruth = FashionDataset | dict


def _truth(world_or_truth: WorldOrTruth) -> dict:
    return world_or_truth.truth if isinstance(world_or_truth, FashionDataset) else world_or_truth


def user_item_score_at(world_or_truth: WorldOrTruth, epoch: int) -> np.ndarray:
    """The true score in time epoch ``epoch``: float32 [n_users, n_items]."""
    truth = _truth(world_or_truth)
    return truth["user_item_score"] + truth["item_trend_score"][epoch][None, :]


def true_score_parts(world_or_truth: WorldOrTruth) -> dict[str, np.ndarray]:
    """Splits ``user_item_score`` into "visual" [U, I], "latent" [U, I] and "popularity" [I]."""
    truth = _truth(world_or_truth)
    return {"visual": truth["user_visual_taste"] @ truth["item_attribute_onehot"].T,
            "latent": truth["user_latent"] @ truth["item_latent"].T,
            "popularity": truth["item_popularity"]}


def dominant_subspace(world_or_truth: WorldOrTruth) -> tuple[np.ndarray, np.ndarray]:
    """Each user's dominant compatibility subspace and its share of their planted weights.

    The subspace a user cares most about (``argmax`` of ``truth["user_subspace_weights"]``, the
    answer ``cares_most_about`` reports when honest); the persona also tilts the user's visual
    taste towards it. Names are ``world.metadata["vocabularies"]["subspace"]``, and
    ``synthetic_render.SUBSPACE_REGION`` maps a name to the image region that shows it.

    Returns:
        (int [n_users] subspace index, float32 [n_users] its weight in (1/k, 1]). Users "dominated
        by one attribute" are e.g. ``share >= 0.8``.
    """
    weights = _truth(world_or_truth)["user_subspace_weights"]
    dominant = weights.argmax(1)
    return dominant, weights[np.arange(len(weights)), dominant]


def true_subspace_compatibility(world_or_truth: WorldOrTruth, item_a, item_b) -> np.ndarray:
    """Compatibility of item pairs in every subspace: float32 [n, k] (same for every user)."""
    truth = _truth(world_or_truth)
    codes, tables = truth["item_subspace_codes"], truth["subspace_compatibility"]
    subspace = np.arange(tables.shape[0])
    return tables[subspace, codes[np.asarray(item_a)], codes[np.asarray(item_b)]]


def true_pair_score(world_or_truth: WorldOrTruth, user, item_a, item_b) -> np.ndarray:
    """User ``user``'s personal compatibility of ``item_a`` with ``item_b``: float32 [n].

    sum_s w[u, s] * compatibility_s(a, b), with ``w = truth["user_subspace_weights"]``. All
    arguments are int arrays of the same length (or broadcastable).
    """
    weights = _truth(world_or_truth)["user_subspace_weights"][np.asarray(user)]
    return (weights * true_subspace_compatibility(world_or_truth, item_a, item_b)).sum(-1)


def global_pair_score(world_or_truth: WorldOrTruth, item_a, item_b) -> np.ndarray:
    """The population's global compatibility of ``item_a`` with ``item_b``: float32 [n].

    sum_s mean_u(w[u, s]) * compatibility_s(a, b): the pair score of the average customer, the
    best single weighting's stand-in (the pair protocol's ``global_oracle``) and the rule the
    planted fashion expert labels ``expert_pairs`` by.
    """
    truth = _truth(world_or_truth)
    mean_weights = truth["user_subspace_weights"].mean(axis=0)
    compatibility = true_subspace_compatibility(truth, item_a, item_b)
    return (compatibility @ mean_weights).astype(np.float32)


def true_outfit_score(world_or_truth: WorldOrTruth, user, items) -> np.ndarray:
    """A user's true score of outfits: float32 [n].

    Mean item score over the filled slots plus ``outfit_compatibility_weight`` times the mean
    personal pair score over pairs of filled slots.

    Args:
        world_or_truth: the world or its ``truth`` dict.
        user: int [n].
        items: int [n, n_slots] item indices, -1 for an empty slot.
    """
    truth = _truth(world_or_truth)
    user, items = np.asarray(user), np.asarray(items)
    filled = items >= 0
    safe = np.maximum(items, 0)
    item_score = truth["user_item_score"][user[:, None], safe]
    preference = (item_score * filled).sum(1) / np.maximum(filled.sum(1), 1)
    pair_sum = np.zeros(len(user), np.float32)
    pair_count = np.zeros(len(user), np.float32)
    for a in range(items.shape[1]):
        for b in range(a + 1, items.shape[1]):
            both = filled[:, a] & filled[:, b]
            pair_sum += both * true_pair_score(truth, user, safe[:, a], safe[:, b])
            pair_count += both
    weight = truth["outfit_compatibility_weight"]
    return (preference + weight * pair_sum / np.maximum(pair_count, 1)).astype(np.float32)
