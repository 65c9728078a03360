"""The planted synthetic fashion world: a ``FashionDataset`` whose ground truth is known.

``make_world(SyntheticWorldConfig.tiny())`` builds, deterministically from ``config.seed``, a
catalogue of tops, bottoms and shoes with rendered images, users with planted tastes, and every
table the papers' models train on, plus ``truth`` arrays so evaluations can print the oracle's
number beside a model's.

What is planted (all scores are in logit units):

- **Items.** Category (top / bottom / shoes), colour (``PALETTE``), pattern (plain, stripes, dots,
  checks), length (short / long sleeves, legs or shaft) and brand (Zipf-distributed, not visible).
  Images are drawn from category, colour, pattern and length (``synthetic_render``).
  ``items.features`` are *not* the attributes: a fixed random projection of the weighted one-hot
  attributes (pattern and length weaker than category and colour), plus low-rank "nuisance"
  directions and per-dimension noise, through a ReLU, like an imperfect pretrained CNN feature.
- **Item score** ``truth["user_item_score"][u, i] = visual + latent + popularity`` with
  - visual = ``user_visual_taste[u] . item_attribute_onehot[i]``: a global taste, a rank-r
    personal taste and the user's "persona" (below) over the attribute values; pixels or
    features explain this part and only this part (std ``visual_weight``);
  - latent = ``user_latent[u] . item_latent[i]``: non-visual factors (part brand, part item),
    which only collaborative filtering can learn from interactions (std ``latent_weight``);
  - popularity = ``item_popularity[i]``, non-visual (std ``popularity_weight``).
- **Trends.** ``truth["trend"]`` [n_time_epochs, n_attribute_values] is added to every item's
  score through its attributes in epoch t: one colour rises linearly, one falls (named in
  ``metadata["trend"]``), the other colours, patterns and lengths random-walk. Columns are centred
  over time, so the score at epoch t is ``user_item_score + item_trend_score[t]``
  (``user_item_score_at``); the [T, U, I] tensor is not stored.
- **Implicit feedback.** Each user draws ``min_interactions_per_user + Poisson(...)`` distinct
  items; each interaction picks a uniform epoch and is sampled from the softmax of that epoch's
  scores (Gumbel top-k without replacement); timestamps are uniform within the epoch, strictly
  increasing per user (epoch = ``(timestamp - start_timestamp) // epoch_seconds``). A share of
  items (``new_item_share``) is released after the first epoch (``item_release_epoch``) and
  gets no interactions before; with popularity this gives the long tail of cold items, and the
  latest (held-out) interactions often go to new items whose counts say nothing yet.
- **Ratings** ("love it or leave it"): ``ratings_per_user`` uniform items per user, value
  ``sign(score - user's median score + noise)`` in {-1, +1}.
- **Personal compatibility** (PSA-Net): ``subspaces`` (default colour, pattern, length), each a
  table of standardised compatibility between attribute codes (colour harmony, pattern clash,
  length match; optional light/dark "tone" contrast). Users weight them with
  ``user_subspace_weights ~ Dirichlet(subspace_concentration)``, so most users care mostly about
  one. This persona also shifts the user's item taste (colour people like bold colours, pattern
  people patterns, length people long items), so item-level votes reveal it, as PSA-Net needs its
  customer embeddings to. ``true_pair_score`` gives the personal pair score; ``pair_ratings`` are
  uniform (top, bottom) pairs labelled ``sign(score + noise)``.
- **Outfits** (top, bottom, shoes) per user: candidates drawn from the user's per-category
  softmax, kept by ``true_outfit_score`` (mean item score + weighted mean pair score) with a
  Gumbel softmax. **Triplets** (complete the look): anchor and positive from two slots of one
  outfit, negative of the positive's slot from another outfit.
- **Users' side features**: noisy survey answers ``favourite_colour`` and ``cares_most_about``
  (right with probability ``survey_accuracy``, else a uniform guess).

How hard it is, seed 0 (protocol of ``tests/data/test_synthetic.py``: each user's last
interaction held out; per-user AUC against every item the user never interacted with; cold =
fewer than 5 remaining interactions, test item and negatives both cold). "visual" and "latent"
score with that part of the truth alone; pair AUC is per user on ``pair_ratings``, personal
weights vs the best single global weighting (grid over the simplex)::

    preset (users x items)  build  cold   oracle     popularity visual     latent     pair AUC
                                   items  all / cold all / cold all / cold all / cold pers / global
    tiny   (100 x 200)      0.1 s  45%    .85 / .86  .60 / .53  .71 / .74  .71 / .73  .91 / .78
    small  (800 x 1,500)    0.7 s  36%    .86 / .85  .66 / .49  .76 / .76  .75 / .73  .92 / .80
    large  (4,000 x 10,000) 23 s   30%    .85 / .84  .66 / .53  .74 / .73  .74 / .73  .92 / .81

(build times on a 2-core CPU; ``large`` renders 64x64 images.) On warm items the oracle stays
~0.10 above visual taste alone (small: .86 vs .75), so collaborative filtering has something to
add; on cold items popularity is at chance. Over 12 tiny seeds: oracle - popularity >= 0.16 on
all items, popularity 0.45..0.65 on cold ones, personal - global pair AUC >= 0.09. The rising
colour's share of interactions grows ~8x from first to last epoch on small (2.9% -> 23.6%).
``items.features`` (d=48, noise 2.0) are imperfect: a logistic-regression probe on 1,000 items
gets category .91, colour .73, pattern .66, length .83 (pixels: category and length 1.00,
colour ~.95 by nearest centroid). From 30 ratings per user a linear probe finds each small-world
user's main subspace 78% of the time (chance 33%).

Example:

    world = make_world(SyntheticWorldConfig.tiny())
    world.items.images.shape                       # (200, 32, 32, 3)
    world.truth["user_item_score"].shape           # (100, 200)
    p = world.pair_ratings
    true_pair_score(world, p.user, p.item_a, p.item_b)   # the planted score behind p.label
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from tfrec_fashion.data.dataset import (
    FashionDataset,
    Interactions,
    Items,
    Outfits,
    PairRatings,
    Ratings,
    Triplets,
    Users,
)
from tfrec_fashion.data.synthetic_render import (
    CATEGORIES,
    LENGTHS,
    PALETTE,
    PATTERNS,
    render_items,
)
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.errors import ConfigError

SUBSPACES: tuple[str, ...] = ("colour", "pattern", "length", "tone")
SLOTS: tuple[str, ...] = CATEGORIES
# Hue in degrees of the chromatic colours; the rest are neutrals that go with anything.
_HUE = {"red": 355.0, "pink": 335.0, "yellow": 48.0, "green": 140.0, "blue": 216.0}
_PATTERN_WORD = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checks": "checked"}
_NOUN = {("top", "short"): "short-sleeve top", ("top", "long"): "long-sleeve top",
         ("bottom", "short"): "shorts", ("bottom", "long"): "trousers",
         ("shoes", "short"): "low shoes", ("shoes", "long"): "ankle boots"}

WorldOrTruth = FashionDataset | dict


@DATA_SOURCES.register("synthetic")
@dataclasses.dataclass
class SyntheticWorldConfig:
    """Everything that shapes a planted world; the defaults are the ``small`` (demo) preset.

    Args:
        name: the data source's name in a run config (``data: {name: synthetic, ...}``).
        seed: the only source of randomness; same seed, same arrays (images included).
        n_users, n_items: sizes.
        image_size: rendered images are ``image_size`` x ``image_size`` RGB.
        category_shares: fraction of items per category (top, bottom, shoes).
        colours: palette colour names used (subset of ``synthetic_render.PALETTE``).
        pattern_shares: fraction of items per pattern (plain, stripes, dots, checks).
        n_brands: brands, Zipf-distributed over items; brand is not visible.
        feature_dim, feature_noise: size of ``items.features`` and its per-dimension noise std.
        visual_taste_rank: rank of the personal visual taste over attribute values.
        latent_dim: size of the non-visual user / item factors.
        visual_weight, latent_weight, popularity_weight: std of each part of the true score.
        persona_strength: how strongly the compatibility persona shifts the item taste.
        n_time_epochs, epoch_seconds, start_timestamp: the time axis of the interactions.
        trend_weight: amplitude of the rising / falling colour at the first / last epoch.
        new_item_share: fraction of items released after the first epoch (uniformly over the
            later epochs); an item gets no interactions before its release.
        min_interactions_per_user, mean_interactions_per_user: per-user implicit feedback count.
        ratings_per_user, rating_noise: explicit +-1 ratings per user and their label noise std.
        subspaces: compatibility subspaces, names from ``SUBSPACES``; k = len(subspaces).
        subspace_concentration: Dirichlet concentration of the users' subspace weights
            (small = each user cares about one subspace).
        pair_ratings_per_user, pair_noise: top/bottom pair votes per user and label noise std.
        outfits_per_user, outfit_candidates: outfits kept per user, out of this many candidates.
        outfit_compatibility_weight: weight of the mean pair score in ``true_outfit_score``.
        outfit_temperature: Gumbel temperature of the outfit choice (small = the best ones).
        triplets_per_outfit: complete-the-look triplets drawn from each outfit.
        survey_accuracy: probability that a survey answer in ``users.features`` is right.
    """

    name: str = "synthetic"
    seed: int = 0
    n_users: int = 800
    n_items: int = 1500
    image_size: int = 32
    category_shares: tuple[float, ...] = (0.4, 0.35, 0.25)
    colours: tuple[str, ...] = tuple(PALETTE)
    pattern_shares: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    n_brands: int = 12
    feature_dim: int = 48
    feature_noise: float = 2.0
    visual_taste_rank: int = 4
    latent_dim: int = 8
    visual_weight: float = 1.3
    latent_weight: float = 1.0
    popularity_weight: float = 0.7
    persona_strength: float = 2.0
    n_time_epochs: int = 8
    epoch_seconds: int = 30 * 86400
    start_timestamp: int = 1_577_836_800  # 2020-01-01
    trend_weight: float = 1.0
    new_item_share: float = 0.3
    min_interactions_per_user: int = 8
    mean_interactions_per_user: float = 20.0
    ratings_per_user: int = 30
    rating_noise: float = 0.5
    subspaces: tuple[str, ...] = ("colour", "pattern", "length")
    subspace_concentration: float = 0.3
    pair_ratings_per_user: int = 12
    pair_noise: float = 0.5
    outfits_per_user: int = 5
    outfit_candidates: int = 64
    outfit_compatibility_weight: float = 1.0
    outfit_temperature: float = 0.3
    triplets_per_outfit: int = 2
    survey_accuracy: float = 0.7

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def tiny(cls, **overrides: Any) -> SyntheticWorldConfig:
        """Unit tests: 100 users, 200 items, 32x32 images; builds in well under a second."""
        return cls(**{"n_users": 100, "n_items": 200,
                      "n_time_epochs": 4, "mean_interactions_per_user": 15.0,
                      "ratings_per_user": 20, "pair_ratings_per_user": 16,
                      "outfits_per_user": 3, "outfit_candidates": 32, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> SyntheticWorldConfig:
        """The end-to-end demo: 800 users, 1,500 items, 32x32 images."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides: Any) -> SyntheticWorldConfig:
        """Benchmarks: 4,000 users, 10,000 items, 64x64 images, 12 time epochs."""
        return cls(**{"n_users": 4000, "n_items": 10000,
                      "image_size": 64, "n_time_epochs": 12, "mean_interactions_per_user": 30.0,
                      "outfits_per_user": 8, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticWorldConfig:
        """The preset called ``name`` ("tiny", "small" or "large"), with ``overrides`` applied."""
        if name not in ("tiny", "small", "large"):
            raise ConfigError(f"unknown synthetic world preset {name!r}; "
                              f"choose tiny, small or large. Received: preset={name!r}")
        return getattr(cls, name)(**overrides)

    def build(self) -> FashionDataset:
        """Same as ``make_world(self)``."""
        return make_world(self)

    def validate(self) -> None:
        """Raises ConfigError naming the first field whose value cannot build a world."""
        def need(ok: bool, field: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"synthetic world: `{field}` {rule}. "
                                  f"Received: {field}={getattr(self, field)!r}")

        need(self.n_users >= 2, "n_users", "must be at least 2")
        need(self.n_items >= 20, "n_items", "must be at least 20")
        need(self.image_size >= 8, "image_size", "must be at least 8 pixels")
        need(len(self.category_shares) == len(CATEGORIES) and min(self.category_shares) > 0,
             "category_shares", f"needs {len(CATEGORIES)} positive shares for {CATEGORIES}")
        need(len(self.colours) >= 2 and set(self.colours) <= set(PALETTE)
             and len(set(self.colours)) == len(self.colours),
             "colours", f"must name at least 2 distinct colours of {tuple(PALETTE)}")
        need(len(self.pattern_shares) == len(PATTERNS) and min(self.pattern_shares) >= 0
             and sum(self.pattern_shares) > 0,
             "pattern_shares", f"needs {len(PATTERNS)} non-negative shares for {PATTERNS}")
        need(self.n_brands >= 1, "n_brands", "must be at least 1")
        need(self.feature_dim >= 1, "feature_dim", "must be at least 1")
        need(self.visual_taste_rank >= 1, "visual_taste_rank", "must be at least 1")
        need(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        for field in ("visual_weight", "latent_weight", "popularity_weight", "persona_strength",
                      "trend_weight", "rating_noise", "pair_noise", "feature_noise",
                      "outfit_compatibility_weight"):
            need(getattr(self, field) >= 0, field, "must be non-negative")
        need(self.n_time_epochs >= 1, "n_time_epochs", "must be at least 1")
        need(self.epoch_seconds >= 1, "epoch_seconds", "must be at least 1")
        need(self.min_interactions_per_user >= 5, "min_interactions_per_user",
             "must be at least 5, or the 5-core filter of the splits drops the user")
        need(self.mean_interactions_per_user >= self.min_interactions_per_user,
             "mean_interactions_per_user", "must be at least min_interactions_per_user")
        need(self.mean_interactions_per_user * 3 <= self.n_items, "mean_interactions_per_user",
             "must be at most a third of n_items (users draw distinct items)")
        need(0 <= self.ratings_per_user <= self.n_items, "ratings_per_user",
             "must be between 0 and n_items")
        need(len(self.subspaces) >= 1 and set(self.subspaces) <= set(SUBSPACES)
             and len(set(self.subspaces)) == len(self.subspaces),
             "subspaces", f"must name distinct subspaces of {SUBSPACES}")
        need(self.subspace_concentration > 0, "subspace_concentration", "must be positive")
        for field in ("pair_ratings_per_user", "outfits_per_user", "triplets_per_outfit"):
            need(getattr(self, field) >= 0, field, "must be non-negative")
        need(self.outfit_candidates >= self.outfits_per_user, "outfit_candidates",
             "must be at least outfits_per_user")
        need(self.outfit_temperature > 0, "outfit_temperature", "must be positive")
        need(0 <= self.survey_accuracy <= 1, "survey_accuracy", "must be in [0, 1]")
        need(0 <= self.new_item_share <= 0.8, "new_item_share", "must be in [0, 0.8]")


# ---------------------------------------------------------------------------------- ground truth
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


# ---------------------------------------------------------------------------------- the world
def make_world(config: SyntheticWorldConfig | None = None) -> FashionDataset:
    """Builds the planted world described by ``config`` (default: the ``small`` preset).

    Every part draws from its own random stream spawned from ``config.seed``, so the same seed
    gives byte-identical arrays, and changing e.g. ``ratings_per_user`` leaves the images and
    interactions as they were.
    """
    config = config or SyntheticWorldConfig()
    config.validate()
    streams = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, streams)}
    vocab = _vocabularies(config)

    codes = _item_codes(config, rng["items"])
    onehot = _attribute_onehot(codes, config)
    colour_rgb = np.array([PALETTE[c] for c in config.colours], np.float32)[codes["colour"]]
    images = render_items(codes["category"], colour_rgb, codes["pattern"], codes["length"],
                          config.image_size, rng["images"])
    truth = _plant_scores(config, codes, onehot, rng["scores"])
    trend_truth, trend = _plant_trend(config, onehot, rng["trend"])
    truth.update(trend_truth)
    truth.update(_plant_compatibility(config, codes))
    truth["item_attribute_onehot"] = onehot

    n_users, n_items = config.n_users, config.n_items
    items = Items(
        ids=_ids("i", n_items),
        category=np.array(CATEGORIES)[codes["category"]],
        attributes={"colour": np.array(config.colours)[codes["colour"]],
                    "pattern": np.array(PATTERNS)[codes["pattern"]],
                    "length": np.array(LENGTHS)[codes["length"]],
                    "brand": np.array(vocab["brand"])[codes["brand"]]},
        images=images,
        features=_item_features(config, onehot, rng["features"]))
    items.titles = _titles(items)
    users = Users(ids=_ids("u", n_users), features=_survey(config, truth, vocab, rng["survey"]))
    interactions = _sample_interactions(config, truth, rng["interactions"])
    outfits = _sample_outfits(config, truth, codes["category"], rng["outfits"])
    world = FashionDataset(
        name=f"synthetic_{config.n_users}x{config.n_items}_seed{config.seed}", users=users, items=items, interactions=interactions,
        ratings=_sample_ratings(config, truth, rng["ratings"]),
        pair_ratings=_sample_pair_ratings(config, truth, codes["category"], rng["pairs"]),
        outfits=outfits,
        triplets=_sample_triplets(config, outfits, rng["triplets"]),
        truth=truth,
        metadata=_metadata(config, vocab, trend))
    return world


_STREAMS = ("items", "images", "features", "scores", "trend", "survey", "interactions",
            "ratings", "pairs", "outfits", "triplets")


def _vocabularies(config: SyntheticWorldConfig) -> dict[str, list[str]]:
    return {"category": list(CATEGORIES), "colour": list(config.colours),
            "pattern": list(PATTERNS), "length": list(LENGTHS),
            "brand": [f"B{b}" for b in range(config.n_brands)],
            "subspace": list(config.subspaces), "slot": list(SLOTS)}


def _ids(prefix: str, n: int) -> np.ndarray:
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)])


def _item_codes(config: SyntheticWorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Integer attribute codes per item; category counts follow the shares exactly."""
    n = config.n_items
    shares = np.asarray(config.category_shares, np.float64) / sum(config.category_shares)
    counts = np.maximum(np.floor(shares * n).astype(int), 1)
    counts[0] += n - counts.sum()
    category = rng.permutation(np.repeat(np.arange(len(CATEGORIES)), counts))
    zipf = 1.0 / np.arange(1, config.n_brands + 1) ** 0.8
    return {
        "category": category.astype(np.int32),
        "colour": rng.integers(0, len(config.colours), n).astype(np.int32),
        "pattern": rng.choice(len(PATTERNS), n, p=np.asarray(config.pattern_shares)
                              / sum(config.pattern_shares)).astype(np.int32),
        "length": rng.integers(0, len(LENGTHS), n).astype(np.int32),
        "brand": rng.choice(config.n_brands, n, p=zipf / zipf.sum()).astype(np.int32),
    }


def _attribute_groups(config: SyntheticWorldConfig) -> dict[str, slice]:
    """Column ranges of each attribute in ``item_attribute_onehot`` (and the trend / tastes)."""
    sizes = {"category": len(CATEGORIES), "colour": len(config.colours),
             "pattern": len(PATTERNS), "length": len(LENGTHS)}
    offsets = np.cumsum([0, *sizes.values()])
    return {name: slice(int(a), int(b)) for name, a, b in zip(sizes, offsets, offsets[1:])}


def _attribute_onehot(codes: dict, config: SyntheticWorldConfig) -> np.ndarray:
    groups = _attribute_groups(config)
    onehot = np.zeros((config.n_items, groups["length"].stop), np.float32)
    for name, columns in groups.items():
        onehot[np.arange(config.n_items), columns.start + codes[name]] = 1.0
    return onehot


def _item_features(config: SyntheticWorldConfig, onehot: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """A stand-in for pretrained CNN features: informative about attributes, but imperfectly.

    relu(weighted_onehot @ P + nuisance + noise): P a fixed Gaussian projection; pattern and
    length weigh 0.6 against 1.0 for category and colour (CNN features see shape and colour
    best); nuisance is 8 random item directions that carry no taste; noise is per dimension.
    """
    groups = _attribute_groups(config)
    weight = np.ones(onehot.shape[1], np.float32)
    weight[groups["pattern"]] = weight[groups["length"]] = 0.6
    projection = rng.normal(size=(onehot.shape[1], config.feature_dim))
    nuisance = rng.normal(size=(config.n_items, 8)) @ rng.normal(size=(8, config.feature_dim))
    noise = rng.normal(size=(config.n_items, config.feature_dim))
    raw = (onehot * weight) @ projection + 0.35 * nuisance + config.feature_noise * noise
    return np.maximum(raw, 0.0).astype(np.float32)


def _titles(items: Items) -> np.ndarray:
    a = items.attributes
    return np.array([
        f"{colour} {_PATTERN_WORD[pattern]} {_NOUN[(category, length)]}, brand {brand}"
        for category, colour, pattern, length, brand
        in zip(items.category, a["colour"], a["pattern"], a["length"], a["brand"])])


# ---------------------------------------------------------------------------------- planted truth
def _plant_scores(config: SyntheticWorldConfig, codes: dict, onehot: np.ndarray,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Users' subspace weights, visual tastes and latent factors; item popularity; true score."""
    n_users, n_values = config.n_users, onehot.shape[1]
    k = len(config.subspaces)
    weights = rng.dirichlet(np.full(k, config.subspace_concentration), size=n_users)

    # Visual taste over attribute values: global + rank-r personal + persona.
    global_taste = rng.normal(0.0, 0.5, n_values)
    global_taste[_attribute_groups(config)["category"]] = 0.0
    personal = (rng.normal(size=(n_users, config.visual_taste_rank))
                @ rng.normal(size=(config.visual_taste_rank, n_values))
                / np.sqrt(config.visual_taste_rank))
    persona = config.persona_strength * (weights - 1.0 / k) @ _persona_directions(config)
    taste = global_taste + personal + persona
    taste *= _scale_to_std(taste @ onehot.T, config.visual_weight)

    # Non-visual factors: half brand (shared by the brand's items), half the item's own.
    user_latent = rng.normal(size=(n_users, config.latent_dim))
    brand_latent = rng.normal(size=(config.n_brands, config.latent_dim))
    item_latent = np.sqrt(0.5) * (brand_latent[codes["brand"]]
                                  + rng.normal(size=(config.n_items, config.latent_dim)))
    scale = np.sqrt(_scale_to_std(user_latent @ item_latent.T, config.latent_weight))
    user_latent, item_latent = user_latent * scale, item_latent * scale

    popularity = rng.normal(size=config.n_items)
    popularity = (popularity - popularity.mean()) * _scale_to_std(popularity,
                                                                  config.popularity_weight)
    score = taste @ onehot.T + user_latent @ item_latent.T + popularity
    return {"user_item_score": score.astype(np.float32),
            "user_visual_taste": taste.astype(np.float32),
            "user_latent": user_latent.astype(np.float32),
            "item_latent": item_latent.astype(np.float32),
            "item_popularity": popularity.astype(np.float32),
            "user_subspace_weights": weights.astype(np.float32)}


def _scale_to_std(values: np.ndarray, std: float) -> float:
    current = float(values.std())
    return std / current if current > 0 else 0.0


def _persona_directions(config: SyntheticWorldConfig) -> np.ndarray:
    """[k, n_attribute_values]: how caring about subspace s shifts the item taste.

    colour: bold (chromatic) colours over neutrals; pattern: patterns over plain; length: long
    over short; tone: light over dark colours.
    """
    groups = _attribute_groups(config)
    directions = np.zeros((len(config.subspaces), groups["length"].stop))
    for s, name in enumerate(config.subspaces):
        if name == "colour":
            directions[s, groups["colour"]] = [1.0 if c in _HUE else -1.0 for c in config.colours]
        elif name == "pattern":
            directions[s, groups["pattern"]] = [-1.0, 1.0, 1.0, 1.0]
        elif name == "length":
            directions[s, groups["length"]] = [-1.0, 1.0]
        else:  # tone
            light = _lightness(config.colours)
            directions[s, groups["colour"]] = 2.0 * (light - light.mean()) / np.ptp(light)
    return directions


def _lightness(colours: tuple[str, ...]) -> np.ndarray:
    rgb = np.array([PALETTE[c] for c in colours], np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114]) / 255.0


def _plant_trend(config: SyntheticWorldConfig, onehot: np.ndarray,
                 rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """One colour rises linearly, one falls; other colour/pattern/length values random-walk."""
    groups = _attribute_groups(config)
    n_epochs, n_values = config.n_time_epochs, onehot.shape[1]
    trend = np.cumsum(rng.normal(0.0, 0.15, size=(n_epochs, n_values)), axis=0)
    trend[:, groups["category"]] = 0.0
    rising, falling = groups["colour"].start + rng.choice(len(config.colours), 2, replace=False)
    line = np.linspace(-1.0, 1.0, n_epochs)
    trend[:, rising], trend[:, falling] = line, -line
    trend = config.trend_weight * (trend - trend.mean(axis=0))
    release = np.zeros(config.n_items, np.int32)
    if n_epochs > 1:
        new = rng.random(config.n_items) < config.new_item_share
        release[new] = rng.integers(1, n_epochs, int(new.sum()))
    names = _attribute_value_names(config)
    return ({"trend": trend.astype(np.float32),
             "item_trend_score": (trend @ onehot.T).astype(np.float32),
             "item_release_epoch": release},
            {"rising": names[rising], "falling": names[falling]})


def _attribute_value_names(config: SyntheticWorldConfig) -> list[str]:
    vocab = _vocabularies(config)
    return [f"{group}={value}" for group in _attribute_groups(config) for value in vocab[group]]


def _plant_compatibility(config: SyntheticWorldConfig, codes: dict) -> dict[str, np.ndarray]:
    """Per-subspace compatibility tables over attribute codes, standardised over random pairs."""
    tables, item_codes = [], []
    colour_p = np.full(len(config.colours), 1.0 / len(config.colours))
    pattern_p = np.asarray(config.pattern_shares, np.float64) / sum(config.pattern_shares)
    for name in config.subspaces:
        if name == "colour":
            table, attribute, p = _colour_harmony(config.colours), "colour", colour_p
        elif name == "pattern":
            # Plain goes with anything, a pattern best with plain, two different patterns clash.
            table = np.array([[0.3, 0.8, 0.8, 0.8], [0.8, -0.4, -1.0, -1.0],
                              [0.8, -1.0, -0.4, -1.0], [0.8, -1.0, -1.0, -0.4]])
            attribute, p = "pattern", pattern_p
        elif name == "length":
            table, attribute, p = np.array([[1.0, -1.0], [-1.0, 1.0]]), "length", np.full(2, 0.5)
        else:  # tone: light/dark contrast
            light = _lightness(config.colours)
            table, attribute, p = np.abs(light[:, None] - light[None, :]), "colour", colour_p
        mean = p @ table @ p
        std = np.sqrt(p @ (table - mean) ** 2 @ p)
        tables.append((table - mean) / std)
        item_codes.append(codes[attribute])
    size = max(len(t) for t in tables)
    padded = np.zeros((len(tables), size, size), np.float32)
    for s, table in enumerate(tables):
        padded[s, :len(table), :len(table)] = table
    return {"subspace_compatibility": padded,
            "item_subspace_codes": np.stack(item_codes, axis=1).astype(np.int32),
            "outfit_compatibility_weight": np.array(config.outfit_compatibility_weight, np.float32)}


def _colour_harmony(colours: tuple[str, ...]) -> np.ndarray:
    """Neutrals go with anything; two colours clash unless their hues are >= 100 degrees apart."""
    table = np.zeros((len(colours), len(colours)))
    for a, ca in enumerate(colours):
        for b, cb in enumerate(colours):
            if ca not in _HUE and cb not in _HUE:
                table[a, b] = -0.2 if a == b else 0.2
            elif ca not in _HUE or cb not in _HUE:
                table[a, b] = 0.6
            elif a == b:
                table[a, b] = -0.8
            else:
                gap = abs(_HUE[ca] - _HUE[cb]) % 360.0
                table[a, b] = 1.0 if min(gap, 360.0 - gap) >= 100.0 else -0.6
    return table


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


# ---------------------------------------------------------------------------------- observed data
_USER_CHUNK = 512  # users per vectorised sampling step (bounds memory on the large preset)


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
    """"Love it or leave it": uniform items, +1 when the score beats the user's median (+ noise)."""
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
    if config.pair_ratings_per_user == 0:
        return None
    tops, bottoms = np.flatnonzero(category == 0), np.flatnonzero(category == 1)
    user = np.repeat(np.arange(config.n_users), config.pair_ratings_per_user)
    item_a = tops[rng.integers(0, tops.size, user.size)]
    item_b = bottoms[rng.integers(0, bottoms.size, user.size)]
    margin = (true_pair_score(truth, user, item_a, item_b)
              + config.pair_noise * rng.normal(size=user.size))
    return PairRatings(user=user.astype(np.int32), item_a=item_a.astype(np.int32),
                       item_b=item_b.astype(np.int32),
                       label=np.where(margin >= 0, 1, -1).astype(np.int8))


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


def _metadata(config: SyntheticWorldConfig, vocab: dict, trend: dict) -> dict[str, Any]:
    return json.loads(json.dumps({
        "source": "synthetic",
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "image_size": config.image_size,
        "rating_range": [-1, 1],
        "vocabularies": vocab,
        "attribute_values": _attribute_value_names(config),
        "time": {"n_time_epochs": config.n_time_epochs,
                 "start_timestamp": config.start_timestamp,
                 "epoch_seconds": config.epoch_seconds,
                 "epoch_of_timestamp": "(timestamp - start_timestamp) // epoch_seconds"},
        "trend": trend,
        "planted": {
            "user_item_score": "visual taste + latent (non-visual) + popularity",
            "trend": "per attribute value and epoch, added to the score in that epoch",
            "pair_score": "personal weights over subspaces x per-subspace compatibility tables",
            "outfit_score": "mean item score + outfit_compatibility_weight x mean pair score",
            "survey": "users.features are noisy survey answers (survey_accuracy)",
            "item_features": "noisy random projection of attributes, not the attributes",
        },
        "truth": _TRUTH_DOC,
    }))


_TRUTH_DOC = {
    "user_item_score": "float32 [U, I], time-averaged true score (logits of the interactions)",
    "item_trend_score": "float32 [T, I], add row t to get the score in epoch t",
    "trend": "float32 [T, A], trend per attribute value (metadata attribute_values)",
    "item_attribute_onehot": "float32 [I, A], one-hot category/colour/pattern/length",
    "user_visual_taste": "float32 [U, A], visual part = taste @ onehot.T",
    "user_latent": "float32 [U, d]", "item_latent": "float32 [I, d]",
    "item_popularity": "float32 [I]",
    "item_release_epoch": "int32 [I], first epoch in which the item can be interacted with",
    "user_subspace_weights": "float32 [U, k], personal weights over subspaces (sum to 1)",
    "item_subspace_codes": "int32 [I, k], each item's code in each subspace",
    "subspace_compatibility": "float32 [k, V, V], compatibility of codes per subspace",
    "outfit_compatibility_weight": "float32 scalar used by true_outfit_score",
}
