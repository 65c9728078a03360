"""The planted synthetic fashion world: a ``FashionDataset`` whose ground truth is known.

``make_world(SyntheticWorldConfig.tiny())`` builds, deterministically from ``config.seed``, a
catalogue of tops, bottoms and shoes with rendered images, users with planted tastes, and every
table the papers' models train on, plus ``truth`` arrays so evaluations can print the oracle's
number beside a model's.

The code: this module holds the config, ``make_world`` and the metadata, and is where users import
from (the truth queries are re-exported here). ``synthetic_planting`` plants the catalogue and
the truth, ``synthetic_sampling`` samples the observed tables from it, ``synthetic_truth``
answers queries on the truth and ``synthetic_render`` draws the images.

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
- **Fashion expert** (PSA-Net's "expert data" ablation, Table 1 baseline 1): ``expert_pairs``
  are ``n_expert_pairs`` uniform (top, bottom) pairs of no customer, labelled
  ``sign(global_pair_score + noise)`` with the same ``pair_noise``: the population's global
  compatibility, i.e. the average customer's weights ``mean_u w[u]`` over the subspace tables
  (the pair protocol's ``global_oracle``). The expert is right about the crowd, not about anyone.
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
    e = world.expert_pairs                                # 1,000 expert labels, no customer
    global_pair_score(world, e.item_a, e.item_b)          # the planted score behind e.label
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from tfrec_fashion.data.dataset import (  # the table classes stay importable from here too
    FashionDataset,
    Interactions,
    ExpertPairs,
    Items,
    Outfits,
    PairRatings,
    Ratings,
    Triplets,
    Users,
)
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.data.synthetic_planting import (
    SLOTS,
    _attribute_onehot,
    _attribute_value_names,
    _ids,
    _item_codes,
    _item_features,
    _plant_compatibility,
    _plant_scores,
    _plant_trend,
    _titles,
    _vocabularies,
)
from tfrec_fashion.data.synthetic_render import (
    CATEGORIES,
    LENGTHS,
    PALETTE,
    PATTERNS,
    item_region_masks,  # noqa: F401  (the pointing game's truth, imported by users from here)
    render_items,
)
from tfrec_fashion.data.synthetic_sampling import (
    _sample_interactions,
    _sample_outfits,
    _sample_pair_ratings,
    _sample_ratings,
    _sample_triplets,
    _survey,
    sample_expert_pairs,
)
from tfrec_fashion.data.synthetic_truth import (  # the truth queries, imported by users from here
    WorldOrTruth,
    dominant_subspace,
    global_pair_score,
    true_outfit_score,
    true_pair_score,
    true_score_parts,
    true_subspace_compatibility,
    user_item_score_at,
)
from tfrec_fashion.errors import ConfigError

SUBSPACES: tuple[str, ...] = ("colour", "pattern", "length", "tone")


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
        n_expert_pairs: (top, bottom) pairs the fashion expert labels by the global
            compatibility (``expert_pairs``; 0 = no table).
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
    n_expert_pairs: int = 4000
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
                      "ratings_per_user": 20, "pair_ratings_per_user": 16, "n_expert_pairs": 1000,
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
        for field in ("pair_ratings_per_user", "n_expert_pairs", "outfits_per_user",
                      "triplets_per_outfit"):
            need(getattr(self, field) >= 0, field, "must be non-negative")
        need(self.outfit_candidates >= self.outfits_per_user, "outfit_candidates",
             "must be at least outfits_per_user")
        need(self.outfit_temperature > 0, "outfit_temperature", "must be positive")
        need(0 <= self.survey_accuracy <= 1, "survey_accuracy", "must be in [0, 1]")
        need(0 <= self.new_item_share <= 0.8, "new_item_share", "must be in [0, 0.8]")


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
    tops, bottoms = (np.flatnonzero(codes["category"] == slot) for slot in (0, 1))
    world = FashionDataset(
        name=f"synthetic_{config.n_users}x{config.n_items}_seed{config.seed}", users=users, items=items, interactions=interactions,
        ratings=_sample_ratings(config, truth, rng["ratings"]),
        pair_ratings=_sample_pair_ratings(config, truth, codes["category"], rng["pairs"]),
        outfits=outfits,
        triplets=_sample_triplets(config, outfits, rng["triplets"]),
        truth=truth,
        metadata=_metadata(config, vocab, trend),
        expert_pairs=sample_expert_pairs(truth, tops, bottoms, config.n_expert_pairs,
                                         config.pair_noise, rng["expert"]))
    return world


_STREAMS = ("items", "images", "features", "scores", "trend", "survey", "interactions",
            "ratings", "pairs", "outfits", "triplets", "expert")  # append new streams: the
# others keep their SeedSequence children, so a new table leaves the old ones as they were


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
            "expert_pairs": "labelled by the global pair score (mean customer weights) + noise",
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
