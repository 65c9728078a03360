"""What the planted world's users are observed doing, sampled from its truth: noisy survey
answers, implicit feedback with timestamps, +-1 ratings, top/bottom pair votes, the fashion
expert's pair labels, outfits and complete-the-look triplets. ``sample_pair_votes`` and
``sample_expert_pairs`` also label the Fashion-MNIST world's pairs (same truth arrays).

Each function reads the ``truth`` dict that ``synthetic_planting`` built and draws only from the
random stream ``synthetic.make_world`` hands it, so changing one table's settings leaves the
others as they were.

May import: numpy, ``dataset`` (the table classes), ``synthetic_planting`` (attribute layout,
slots, ids) and ``synthetic_truth`` (pair and outfit scores); ``synthetic.SyntheticWorldConfig``
only for type hints, under ``TYPE_CHECKING``. Never imports ``synthetic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfrec_fashion.data.dataset import (ExpertPairs, Interactions, Outfits, PairRatings, Ratings,
                                        Triplets)
from tfrec_fashion.data.synthetic_planting import SLOTS, _attribute_groups, _ids
from tfrec_fashion.data.synthetic_truth import (global_pair_score, true_outfit_score,
                                               true_pair_score)

if TYPE_CHECKING:
    from tfrec_fashion.data.synthetic import SyntheticWorldConfig

_USER_CHUNK = 512  # users per vectorised sampling step (bounds memory on the large preset)


def _survey(config: SyntheticWorldConfig, truth: dict, vocab: dict,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Noisy survey answers: right with probability ``survey_accuracy``, else a random value."""
    colour_taste = truth["user_visual_taste"][:, _attribute_groups(config)["colour"]]
    answers = {"favourite_colour": (colour_taste.argmax(1), vocab["colour"]),
               "cares_most_about": (truth["user_subspace_weights"].argmax(1), vocab["subspace"])}
    features = {}
    for name, (right, values) in answers.items():
        guess = rng.integers(0, len(values), config.n_users)
        honest = rng.random(config.n_users) < config.survey_accuracy
        features[name] = np.array(values)[np.where(honest, right, guess)]
    return features


def _sample_interactions(config: SyntheticWorldConfig, truth: dict,
                         rng: np.random.Generator) -> Interactions:
    """Distinct items per user from the softmax of each epoch's scores, with timestamps."""
    n_users, n_epochs = config.n_users, config.n_time_epochs
    extra = config.mean_interactions_per_user - config.min_interactions_per_user
    per_user = config.min_interactions_per_user + rng.poisson(extra, n_users)
    per_user = np.minimum(per_user, config.n_items // 3)
    owner = np.repeat(np.arange(n_users), per_user)
    counts = np.zeros((n_users, n_epochs), np.int64)
    np.add.at(counts, (owner, rng.integers(0, n_epochs, owner.size)), 1)

    users, items, epochs = [], [], []
    for start in range(0, n_users, _USER_CHUNK):
        chunk = np.arange(start, min(start + _USER_CHUNK, n_users))
        taken = np.zeros((chunk.size, config.n_items), bool)
        for epoch in range(n_epochs):
            count = counts[chunk, epoch]
            if count.max() == 0:
                continue
            logits = (truth["user_item_score"][chunk] + truth["item_trend_score"][epoch]
                      + _gumbel(rng, taken.shape))
            logits[taken] = -np.inf
            logits[:, truth["item_release_epoch"] > epoch] = -np.inf
            row, item = _top_k_rows(logits, count)
            taken[row, item] = True
            users.append(chunk[row])
            items.append(item)
            epochs.append(np.full(row.size, epoch))
    user, item, epoch = (np.concatenate(a) for a in (users, items, epochs))

    # Uniform second within the epoch (leaving room to make each user's times distinct).
    room = max(config.epoch_seconds - 2 * int(per_user.max()), 1)
    timestamp = (config.start_timestamp + epoch.astype(np.int64) * config.epoch_seconds
                 + rng.integers(0, room, user.size))
    order = np.lexsort((timestamp, user))
    user, item, timestamp = user[order], item[order], timestamp[order]
    # Break ties: a user's k-th interaction gets at least k seconds more than the first.
    position = np.arange(user.size) - np.searchsorted(user, user)
    offset = user.astype(np.int64) << 40
    timestamp = np.maximum.accumulate(timestamp - position + offset) - offset + position
    return Interactions(user=user.astype(np.int32), item=item.astype(np.int32),
                        timestamp=timestamp.astype(np.int64))


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise in float32 (-log of an exponential draw; 3x faster than float64)."""
    draw = rng.standard_exponential(shape, dtype=np.float32)
    return -np.log(np.maximum(draw, np.finfo(np.float32).tiny))


def _top_k_rows(logits: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the ``k[r]`` largest entries of each row r (k may differ per row)."""
    largest = int(k.max())
    top = np.argpartition(-logits, largest - 1, axis=1)[:, :largest]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(logits, top, 1), 1), 1)
    keep = np.arange(largest)[None, :] < k[:, None]
    return np.nonzero(keep)[0], top[keep]


def _sample_ratings(config: SyntheticWorldConfig, truth: dict,
                    rng: np.random.Generator) -> Ratings | None:
    """"Love it or leave it": uniform items, +1 when the score beats the user's median (+ noise).

    Reads ``n_users``, ``n_items``, ``ratings_per_user`` and ``rating_noise`` of ``config``, so
    the Fashion-MNIST world's config serves too."""
    k = config.ratings_per_user
    if k == 0:
        return None
    score = truth["user_item_score"]
    user, item = [], []
    for start in range(0, config.n_users, _USER_CHUNK):
        keys = rng.random((min(_USER_CHUNK, config.n_users - start), config.n_items))
        row, column = _top_k_rows(keys, np.full(len(keys), k))
        user.append(start + row)
        item.append(column)
    user, item = np.concatenate(user), np.concatenate(item)
    margin = (score[user, item] - np.median(score, axis=1)[user]
              + config.rating_noise * rng.normal(size=user.size))
    return Ratings(user=user.astype(np.int32), item=item.astype(np.int32),
                   value=np.where(margin >= 0, 1.0, -1.0).astype(np.float32))


def _sample_pair_ratings(config: SyntheticWorldConfig, truth: dict, category: np.ndarray,
                         rng: np.random.Generator) -> PairRatings | None:
    """Random (top, bottom) pairs per user, labelled by the personal pair score plus noise."""
    return sample_pair_votes(truth, np.flatnonzero(category == 0), np.flatnonzero(category == 1),
                             config.n_users, config.pair_ratings_per_user, config.pair_noise, rng)


def sample_pair_votes(truth: dict, tops: np.ndarray, bottoms: np.ndarray, n_users: int,
                      per_user: int, noise: float, rng: np.random.Generator
                      ) -> PairRatings | None:
    """``per_user`` uniform (top, bottom) pairs per user, label ``sign(true_pair_score + noise *
    N(0, 1))``; None when ``per_user`` is 0. ``tops``, ``bottoms``: int item indices."""
    if per_user == 0:
        return None
    user = np.repeat(np.arange(n_users), per_user)
    item_a, item_b = _top_bottom_pairs(tops, bottoms, user.size, rng)
    margin = true_pair_score(truth, user, item_a, item_b) + noise * rng.normal(size=user.size)
    return PairRatings(user=user.astype(np.int32), item_a=item_a, item_b=item_b,
                       label=_sign_label(margin))


def sample_expert_pairs(truth: dict, tops: np.ndarray, bottoms: np.ndarray, n_pairs: int,
                        noise: float, rng: np.random.Generator) -> ExpertPairs | None:
    """The fashion expert's labels: ``n_pairs`` uniform (top, bottom) pairs, label
    ``sign(global_pair_score + noise * N(0, 1))`` (no customer); None when ``n_pairs`` is 0."""
    if n_pairs == 0:
        return None
    item_a, item_b = _top_bottom_pairs(tops, bottoms, n_pairs, rng)
    margin = global_pair_score(truth, item_a, item_b) + noise * rng.normal(size=n_pairs)
    return ExpertPairs(item_a=item_a, item_b=item_b, label=_sign_label(margin))


def _top_bottom_pairs(tops: np.ndarray, bottoms: np.ndarray, n: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    item_a = tops[rng.integers(0, tops.size, n)]
    item_b = bottoms[rng.integers(0, bottoms.size, n)]
    return item_a.astype(np.int32), item_b.astype(np.int32)


def _sign_label(margin: np.ndarray) -> np.ndarray:
    return np.where(margin >= 0, 1, -1).astype(np.int8)


def _sample_outfits(config: SyntheticWorldConfig, truth: dict, category: np.ndarray,
                    rng: np.random.Generator) -> Outfits | None:
    """Per user: candidate outfits from the per-category softmax, kept by a Gumbel softmax over
    ``true_outfit_score / outfit_temperature`` (distinct outfits only)."""
    n_users, n_candidates = config.n_users, config.outfit_candidates
    n_keep = config.outfits_per_user
    if n_keep == 0:
        return None
    score = truth["user_item_score"].astype(np.float64)
    candidates = np.empty((n_users, n_candidates, len(SLOTS)), np.int64)
    for slot in range(len(SLOTS)):
        pool = np.flatnonzero(category == slot)
        cdf = np.cumsum(np.exp(score[:, pool] - score[:, pool].max(1, keepdims=True)), 1)
        # Row u's normalised CDF shifted by u: one sorted array, one searchsorted for all users.
        offset = np.arange(n_users)[:, None]
        flat = (cdf / cdf[:, -1:] + offset).ravel()
        draw = rng.random((n_users, n_candidates)) + offset
        pick = np.searchsorted(flat, draw.ravel(), side="right").reshape(draw.shape)
        pick = np.clip(pick - offset * pool.size, 0, pool.size - 1)
        candidates[:, :, slot] = pool[pick]
    user = np.repeat(np.arange(n_users), n_candidates)
    outfit_score = true_outfit_score(truth, user, candidates.reshape(-1, len(SLOTS)))
    logits = (outfit_score.reshape(n_users, n_candidates) / config.outfit_temperature
              + _gumbel(rng, (n_users, n_candidates)))
    # A repeated candidate may be kept only once.
    key = (candidates[..., 0] * config.n_items + candidates[..., 1]) * config.n_items \
        + candidates[..., 2]
    order = np.argsort(key, axis=1, kind="stable")
    repeated = np.zeros_like(key, bool)
    sorted_key = np.take_along_axis(key, order, 1)
    np.put_along_axis(repeated, order[:, 1:], sorted_key[:, 1:] == sorted_key[:, :-1], 1)
    logits[repeated] = -np.inf
    row, column = _top_k_rows(logits, np.full(n_users, n_keep))
    keep = np.isfinite(logits[row, column])
    row, column = row[keep], column[keep]
    return Outfits(ids=_ids("o", row.size), user=row.astype(np.int32),
                   items=candidates[row, column].astype(np.int32), slots=SLOTS)


def _sample_triplets(config: SyntheticWorldConfig, outfits: Outfits | None,
                     rng: np.random.Generator) -> Triplets | None:
    """Anchor and positive from two slots of one outfit; negative from another outfit's
    positive slot (never the positive item itself)."""
    if outfits is None or len(outfits) < 2 or config.triplets_per_outfit == 0:
        return None
    n = len(outfits)
    source = np.repeat(np.arange(n), config.triplets_per_outfit)
    anchor_slot = rng.integers(0, len(SLOTS), source.size)
    positive_slot = (anchor_slot + rng.integers(1, len(SLOTS), source.size)) % len(SLOTS)
    other = (source + rng.integers(1, n, source.size)) % n
    positive = outfits.items[source, positive_slot]
    negative = outfits.items[other, positive_slot]
    for _ in range(n):  # a few steps at most: walk on to the next outfit while the item repeats
        same = negative == positive
        if not same.any():
            break
        other[same] = (other[same] + 1) % n
        other[same & (other == source)] = (other[same & (other == source)] + 1) % n
        negative = outfits.items[other, positive_slot]
    keep = negative != positive
    return Triplets(anchor=outfits.items[source, anchor_slot][keep].astype(np.int32),
                    positive=positive[keep].astype(np.int32),
                    negative=negative[keep].astype(np.int32))
