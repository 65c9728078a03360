"""The Fashion-MNIST world: real clothing pixels, simulated users whose tastes depend on them.

Items are real Fashion-MNIST images (sampled stratified by class); users, their tastes and their
interactions are planted, so every evaluation can print the oracle beside a model. The visual
part of each taste is a function of what the pixels really show, so an image model can learn it:

- **items**: ``images`` uint8 [n, s, s, 3] (the grey image repeated on 3 channels, resized to
  ``image_size`` when it is not 28); ``category`` the outfit slot of the class (``SLOT_OF_CLASS``);
  ``attributes``: ``class_name`` plus four real-content attributes measured on the 28x28 pixels
  (``item_visual_attributes``), each quantised into tertiles ``low`` / ``mid`` / ``high``:
  ``intensity`` (mean pixel value over the garment mask; Fashion-MNIST pixels are negated photos,
  so high intensity = a dark garment), ``area`` (share of the image covered by the garment),
  ``aspect`` (width / height of the garment's bounding box; most garments span the full height,
  so this varies where the vertical extent alone would not) and ``texture`` (mean absolute
  Laplacian inside the garment: prints, folds, seams). ``features`` float32 [n, feature_dim] are
  a generic pixel descriptor for VBPR-style models: PCA (fitted on the sampled items) of the
  2x2 average-pooled 14x14 pixels scaled to [0, 1].
- **true score** (``truth["user_item_score"]``, float32 [n_users, n_items], at the final epoch)::

      x_ui = sqrt(w) * theta_u . c_i  +  sqrt(1 - w) * p_u . q_i  +  b_i

  ``c_i`` (``truth["visual_code"]``, [n_items, 14]) is the one-hot class (10) followed by the
  four measured attributes standardised over the items (``truth["visual_attributes"]`` holds
  them raw; the ``low/mid/high`` levels in ``items.attributes`` are their quantised, interpretable
  summaries). ``theta_u`` (``truth["visual_taste"]``, scaling folded in) is Gaussian, its
  attribute weights ``ATTRIBUTE_TASTE_SCALE`` times the class weights, so every user has their
  own class tastes and likes more or less of each attribute. ``p_u . q_i`` is a rank-``rank``
  non-visual part (``truth["cf_user"]``, ``truth["cf_item"]``); ``w = visual_weight``; both parts
  have unit variance over all pairs. ``b_i = popularity_scale * N(0, 1)`` (``truth["popularity"]``)
  is non-visual item popularity, the source of the long tail.
- **trend**: over ``n_time_epochs`` epochs the global appeal of ``trend_attribute`` rises; the
  score at epoch t is ``x_ui + trend[t] * e_i`` (``score_at_epoch``), ``e_i``
  (``truth["trend_exposure"]``) the attribute standardised over the items and
  ``trend[t] = trend_strength * (t / (T - 1) - 1)`` (``truth["trend"]``): from ``-trend_strength``
  in the first epoch to 0 in the last, so ``x_ui`` is today's score.
- **interactions**: each user's ``interactions_per_user`` distinct items are spread evenly over
  the epochs; in epoch t the user's items are drawn without replacement with probability
  proportional to ``exp(score_t / temperature)`` (Gumbel top-k) among the items released by then
  and not yet chosen. A ``new_item_fraction`` of the items (``truth["release_epoch"]``) are new
  arrivals released in the last epoch only, so together with the popularity tail a sizeable
  share of items are cold (< 5 interactions). Timestamps are Unix seconds, epoch t covering
  ``[START_TIMESTAMP + t * EPOCH_SECONDS, ...)`` (``time_epochs`` maps them back).
- **ratings** ("love it or leave it", what Partial Dual and StyNet learn customer embeddings
  from): ``ratings_per_user`` uniform items per user, ``sign(x_ui - user's median + noise)``.
- **personal compatibility** (PSA-Net), planted in the synthetic world's pair truth arrays, so
  ``synthetic.true_pair_score``, ``global_pair_score`` and the pair protocol's oracles answer
  here too. Pairs are (top, bottom): a top (T-shirt/top, Pullover, Coat, Shirt) with a bottom
  (Trouser, the only bottom class). ``PAIR_SUBSPACES``, each a rule over what the pixels show,
  its codes in ``truth["item_subspace_codes"]`` [n_items, 4] and its table in
  ``truth["subspace_compatibility"]`` [4, 10, 10], standardised over all (top, bottom) pairs:

  - ``intensity`` contrast: a dark garment goes with a light one; score ``|level_a - level_b|``
    of the intensity tertiles;
  - ``texture`` clash: two textured garments clash, a plain one goes with anything; score
    ``-level_a * level_b`` of the texture tertiles;
  - ``area`` balance: a loose top with loose trousers, a slim one with slim ones; score
    ``-|level_a - level_b|`` of the area tertiles;
  - ``class`` pairing: what kind of top goes with trousers: T-shirt/top +1, Shirt +0.5,
    Pullover 0, Coat -1 (codes are the class labels).

  The levels here are tertiles *within the item's slot* (tops against tops, trousers against
  trousers), so every rule varies over top/bottom pairs. Customers weight the rules with
  ``truth["user_subspace_weights"] ~ Dirichlet(subspace_concentration)`` [n_users, 4]; the
  personal score is ``sum_s w[u, s] * table_s(a, b)``. ``pair_ratings``: ``pair_ratings_per_user``
  uniform (top, bottom) pairs per user, ``sign(score + pair_noise * N(0, 1))``; ``expert_pairs``:
  ``n_expert_pairs`` pairs of no customer labelled by the mean customer's weights (the global
  compatibility) plus the same noise. With ``persona_strength`` > 0 the weights also tilt the
  item taste (intensity people like dark garments, texture people textured ones, area people
  large ones, class people T-shirts over coats), so ratings reveal them, as PSA-Net needs its
  customer embeddings to; at 0 (the default, the world of the earlier releases) they do not,
  and only a non-personalised model can use the votes.
- **outfits** (PAN; only with ``outfits_per_user`` > 0, the default 0 keeping the earlier world
  and its truth unchanged): per user, ``outfit_candidates`` (top, bottom, shoes) outfits drawn
  slot by slot from the softmax of the user's item scores over the slot's classes (tops:
  T-shirt/top, Pullover, Coat, Shirt; bottoms: Trouser; shoes: Sandal, Sneaker, Ankle boot;
  Dress and Bag are in no outfit), of which ``outfits_per_user`` distinct ones are kept by a Gumbel top-k
  of ``true_outfit_score / outfit_temperature``, exactly as the synthetic world keeps its
  outfits (``synthetic_sampling._sample_outfits``). The outfit score is the planted one of the
  synthetic world: the mean item score ``x_ui`` over the three items plus
  ``outfit_compatibility_weight`` (``truth["outfit_compatibility_weight"]``) times the mean
  personal pair score over the outfit's three pairs, by the same four pixel rules and the
  customer's own weights. The intensity, texture and area rules read within-slot tertiles, so
  they score (top, shoes) and (bottom, shoes) as they score (top, bottom); the class rule only
  pairs tops with trousers and is 0 for pairs with shoes. ``synthetic.true_outfit_score``
  answers for this world too, so the outfit protocol (``evaluation.outfits``) prints its oracle.

Example:

    world = FashionMnistWorld.tiny(seed=1).build()     # 400 items, 300 users, ~1 s
    world.items.images.shape                           # (400, 28, 28, 3)
    world.truth["user_item_score"].shape                # (300, 400)
    p = world.pair_ratings                              # 20 (top, bottom) votes per user
    true_pair_score(world, p.user, p.item_a, p.item_b)  # from tfrec_fashion.data.synthetic
    dressed = FashionMnistWorld.tiny(seed=1, outfits_per_user=10).build()
    o = dressed.outfits                                 # items [3000, 3]: top, bottom, shoes
    true_outfit_score(dressed, o.user, o.items)         # the planted outfit score
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Interactions, Items, Outfits, Users
from tfrec_fashion.data.fashion_mnist import CLASS_NAMES, IMAGE_SIZE, load_fashion_mnist
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.data.synthetic_planting import SLOTS
from tfrec_fashion.data.synthetic_sampling import (_sample_outfits, _sample_ratings,
                                                   sample_expert_pairs, sample_pair_votes)

SLOT_OF_CLASS: dict[str, str] = {
    "T-shirt/top": "top", "Trouser": "bottom", "Pullover": "top", "Dress": "dress", "Coat": "top",
    "Sandal": "shoes", "Shirt": "top", "Sneaker": "shoes", "Bag": "bag", "Ankle boot": "shoes",
}
VISUAL_ATTRIBUTES: tuple[str, ...] = ("intensity", "area", "aspect", "texture")
LEVELS: tuple[str, ...] = ("low", "mid", "high")
START_TIMESTAMP = 1_483_228_800  # 2017-01-01 00:00 UTC
EPOCH_SECONDS = 91 * 86_400  # one season per time epoch
MASK_THRESHOLD = 32  # a pixel brighter than this belongs to the garment (background is ~0)
PAIR_SUBSPACES: tuple[str, ...] = ("intensity", "texture", "area", "class")
CLASS_PAIRING = {"T-shirt/top": 1.0, "Shirt": 0.5, "Pullover": 0.0, "Coat": -1.0}  # with Trouser
ATTRIBUTE_TASTE_SCALE = 0.7  # attribute / class taste scale: class ~1/3 of the visual variance
POOL = 2  # features: PCA of the 14x14 average-pooled pixels

# Independent random streams, so e.g. changing n_users leaves the sampled items unchanged.
(_ITEMS, _POPULARITY, _NEW_ITEMS, _TASTE, _CF_USERS, _CF_ITEMS, _INTERACTIONS, _PAIR_WEIGHTS,
 _PAIRS, _EXPERT, _RATINGS, _OUTFITS) = range(12)


@DATA_SOURCES.register("fashion_mnist_world")
@dataclasses.dataclass
class FashionMnistWorld:
    """Real Fashion-MNIST items, planted users with visual + latent tastes and a drifting trend.

    See the module docstring for the generative recipe; ``build()`` returns a ``FashionDataset``.

    Args:
        seed: seeds every random draw (same seed and fields -> identical dataset).
        n_items: images sampled from the 70,000, equally many per class (10 <= n_items <= 70,000).
        n_users: simulated users.
        interactions_per_user: distinct items each user interacts with, spread over the epochs.
        image_size: side of the stored RGB images (28 keeps the originals; others are resized).
        rank: rank of the non-visual (collaborative) part of the taste.
        visual_weight: w in [0, 1], the share of the personal score's variance that is visual.
        popularity_scale: standard deviation of the item popularity b_i (longer tail when larger).
        temperature: softmax temperature of the interaction draws (sharper when smaller).
        n_time_epochs: time epochs the interactions span (one season each).
        trend_attribute: the visual attribute whose global appeal rises over the epochs.
        trend_strength: how much its appeal rises from the first to the last epoch (score units).
        new_item_fraction: share of items released only in the last epoch (cold-start arrivals).
        feature_dim: dimension of the PCA pixel descriptor ``items.features``.
        ratings_per_user, rating_noise: +-1 ratings per user and their label noise std.
        pair_ratings_per_user, pair_noise: (top, bottom) pair votes per user, label noise std.
        n_expert_pairs: pairs labelled by the global compatibility, no customer (0 = none).
        subspace_concentration: Dirichlet concentration of the customers' rule weights.
        persona_strength: how strongly the rule weights tilt the item taste (0 = not at all).
        outfits_per_user: (top, bottom, shoes) outfits kept per user (0 = none: the world of the
            earlier releases, every other table unchanged).
        outfit_candidates: candidate outfits per user the kept ones are chosen from.
        outfit_temperature: Gumbel temperature of that choice (small = the user's best ones).
        outfit_compatibility_weight: weight of the mean pair score in ``true_outfit_score``.
        root: folder with the Fashion-MNIST IDX files (null: the loader's default places).
    """

    name: str = "fashion_mnist_world"
    seed: int = 0
    n_items: int = 2000
    n_users: int = 1000
    interactions_per_user: int = 20
    image_size: int = IMAGE_SIZE
    rank: int = 8
    visual_weight: float = 0.6
    popularity_scale: float = 0.7
    temperature: float = 0.5
    n_time_epochs: int = 4
    trend_attribute: str = "intensity"
    trend_strength: float = 0.5
    new_item_fraction: float = 0.1
    feature_dim: int = 32
    ratings_per_user: int = 30
    rating_noise: float = 0.5
    pair_ratings_per_user: int = 20
    pair_noise: float = 0.5
    n_expert_pairs: int = 1000
    subspace_concentration: float = 0.3
    persona_strength: float = 0.0
    outfits_per_user: int = 0
    outfit_candidates: int = 64
    outfit_temperature: float = 0.3
    outfit_compatibility_weight: float = 1.0
    root: str | None = None

    def __post_init__(self) -> None:
        for field in ("n_users", "interactions_per_user", "image_size", "rank", "n_time_epochs",
                      "feature_dim"):
            if getattr(self, field) <= 0:
                raise ValueError(f"`{field}` must be positive. "
                                 f"Received: {field}={getattr(self, field)}")
        if not len(CLASS_NAMES) <= self.n_items <= 70_000:
            raise ValueError(f"`n_items` must be in [10, 70000] (at least one image per class). "
                             f"Received: n_items={self.n_items}")
        if not 0.0 <= self.visual_weight <= 1.0:
            raise ValueError(f"`visual_weight` must be in [0, 1]. Received: "
                             f"visual_weight={self.visual_weight}")
        if not 0.0 <= self.new_item_fraction < 1.0:
            raise ValueError(f"`new_item_fraction` must be in [0, 1). Received: "
                             f"new_item_fraction={self.new_item_fraction}")
        if self.temperature <= 0 or self.popularity_scale < 0:
            raise ValueError(f"`temperature` must be positive and `popularity_scale` >= 0. "
                             f"Received: temperature={self.temperature}, "
                             f"popularity_scale={self.popularity_scale}")
        for field in ("ratings_per_user", "pair_ratings_per_user", "n_expert_pairs",
                      "rating_noise", "pair_noise", "persona_strength", "outfits_per_user",
                      "outfit_compatibility_weight"):
            if getattr(self, field) < 0:
                raise ValueError(f"`{field}` must be >= 0. "
                                 f"Received: {field}={getattr(self, field)}")
        if self.subspace_concentration <= 0 or self.ratings_per_user > self.n_items:
            raise ValueError(f"`subspace_concentration` must be positive and `ratings_per_user` "
                             f"at most n_items. Received: subspace_concentration="
                             f"{self.subspace_concentration}, ratings_per_user="
                             f"{self.ratings_per_user}, n_items={self.n_items}")
        if self.outfit_candidates < max(self.outfits_per_user, 1) or self.outfit_temperature <= 0:
            raise ValueError(f"`outfit_candidates` must be positive and at least "
                             f"`outfits_per_user`, and `outfit_temperature` positive. Received: "
                             f"outfit_candidates={self.outfit_candidates}, outfits_per_user="
                             f"{self.outfits_per_user}, outfit_temperature="
                             f"{self.outfit_temperature}")
        if self.trend_attribute not in VISUAL_ATTRIBUTES:
            raise ValueError(f"`trend_attribute` must be one of {list(VISUAL_ATTRIBUTES)}. "
                             f"Received: trend_attribute={self.trend_attribute!r}")
        n_old = self.n_items - self._n_new_items()
        if self.interactions_per_user >= n_old:
            raise ValueError(f"`interactions_per_user` must be below the {n_old} items released "
                             f"in the first epoch. Received: interactions_per_user="
                             f"{self.interactions_per_user}, n_items={self.n_items}, "
                             f"new_item_fraction={self.new_item_fraction}")
        if self.feature_dim > min(self.n_items, (IMAGE_SIZE // POOL) ** 2):
            raise ValueError(f"`feature_dim` must be at most min(n_items, 196). Received: "
                             f"feature_dim={self.feature_dim}, n_items={self.n_items}")

    @classmethod
    def tiny(cls, seed: int = 0, **overrides) -> FashionMnistWorld:
        """A small world for tests and demos (400 items, 300 users; builds in about a second)."""
        return cls(**{"seed": seed, "n_items": 400, "n_users": 300, **overrides})

    def _n_new_items(self) -> int:
        return round(self.new_item_fraction * self.n_items) if self.n_time_epochs > 1 else 0

    def build(self) -> FashionDataset:
        """Samples the items, plants the tastes and the trend, and draws the interactions.

        Raises:
            MissingDataError: Fashion-MNIST is not installed (the message gives the command).
        """
        mnist = load_fashion_mnist("all", root=self.root)
        source_index = _stratified_sample(mnist.labels, self.n_items, self._rng(_ITEMS))
        grey = np.asarray(mnist.images[source_index])
        labels = np.asarray(mnist.labels[source_index])
        class_names = np.array(CLASS_NAMES)[labels]

        measured = item_visual_attributes(grey)
        levels, thresholds = {}, {}
        for attribute, values in measured.items():
            levels[attribute], thresholds[attribute] = quantise_levels(values)
        category = np.array([SLOT_OF_CLASS[c] for c in class_names])
        weights = self._rng(_PAIR_WEIGHTS).dirichlet(
            np.full(len(PAIR_SUBSPACES), self.subspace_concentration), size=self.n_users)
        truth = self._plant_scores(labels, measured, weights)
        truth.update(source_index=source_index.astype(np.int64),
                     visual_attributes=np.stack([measured[a] for a in VISUAL_ATTRIBUTES],
                                                axis=1).astype(np.float32),
                     user_subspace_weights=weights.astype(np.float32),
                     **plant_pair_compatibility(labels, measured, category))
        user, item, timestamp = self._sample_interactions(truth)
        if self.outfits_per_user > 0:  # only then, so the earlier world's truth is unchanged
            truth["outfit_compatibility_weight"] = np.array(self.outfit_compatibility_weight,
                                                            np.float32)
        tops, bottoms = np.flatnonzero(category == "top"), np.flatnonzero(category == "bottom")

        items = Items(
            ids=np.array([f"fm{i:05d}" for i in source_index]),
            category=category,
            attributes={"class_name": class_names,
                        **{a: np.array(LEVELS)[levels[a]] for a in VISUAL_ATTRIBUTES}},
            images=_to_rgb(grey, self.image_size),
            features=pixel_pca_features(grey, self.feature_dim))
        return FashionDataset(
            name=f"fashion_mnist_world_seed{self.seed}",
            users=Users(ids=np.array([f"u{u}" for u in range(self.n_users)])),
            items=items,
            interactions=Interactions(user=user, item=item, timestamp=timestamp),
            ratings=_sample_ratings(self, truth, self._rng(_RATINGS)),
            pair_ratings=sample_pair_votes(truth, tops, bottoms, self.n_users,
                                           self.pair_ratings_per_user, self.pair_noise,
                                           self._rng(_PAIRS)),
            outfits=self._sample_outfits(truth, category),
            metadata=self._metadata(thresholds),
            truth=truth,
            expert_pairs=sample_expert_pairs(truth, tops, bottoms, self.n_expert_pairs,
                                             self.pair_noise, self._rng(_EXPERT)))

    # ------------------------------------------------------------------ planting
    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    def _plant_scores(self, labels: np.ndarray, measured: dict[str, np.ndarray],
                      weights: np.ndarray) -> dict[str, np.ndarray]:
        n_items, n_users = self.n_items, self.n_users
        # c_i: one-hot class, then each attribute standardised over the items.
        values = np.stack([measured[a] for a in VISUAL_ATTRIBUTES], axis=1)
        standardised = (values - values.mean(0)) / np.maximum(values.std(0), 1e-12)
        visual_code = np.concatenate([np.eye(len(CLASS_NAMES))[labels], standardised], axis=1)
        taste = self._rng(_TASTE).normal(size=(n_users, visual_code.shape[1]))
        taste[:, len(CLASS_NAMES):] *= ATTRIBUTE_TASTE_SCALE
        if self.persona_strength > 0:  # the rule weights tilt the taste (module docstring)
            taste += (self.persona_strength * (weights - 1.0 / len(PAIR_SUBSPACES))
                      @ _persona_directions())
        taste *= np.sqrt(self.visual_weight) / (taste @ visual_code.T).std()
        cf_user = self._rng(_CF_USERS).normal(size=(n_users, self.rank))
        cf_item = self._rng(_CF_ITEMS).normal(size=(n_items, self.rank))
        scale = np.sqrt(np.sqrt(1.0 - self.visual_weight) / (cf_user @ cf_item.T).std())
        cf_user, cf_item = cf_user * scale, cf_item * scale
        popularity = self.popularity_scale * self._rng(_POPULARITY).normal(size=n_items)
        score = taste @ visual_code.T + cf_user @ cf_item.T + popularity

        exposure = measured[self.trend_attribute]
        exposure = (exposure - exposure.mean()) / max(exposure.std(), 1e-12)
        epochs = np.arange(self.n_time_epochs)
        trend = self.trend_strength * (epochs / max(self.n_time_epochs - 1, 1) - 1.0)
        if self.n_time_epochs == 1:
            trend = np.zeros(1)
        release = np.zeros(n_items, np.int64)
        new = self._rng(_NEW_ITEMS).permutation(n_items)[:self._n_new_items()]
        release[new] = self.n_time_epochs - 1
        f32 = np.float32
        return {"user_item_score": score.astype(f32), "visual_taste": taste.astype(f32),
                "visual_code": visual_code.astype(f32), "cf_user": cf_user.astype(f32),
                "cf_item": cf_item.astype(f32), "popularity": popularity.astype(f32),
                "trend": trend.astype(f32), "trend_exposure": exposure.astype(f32),
                "release_epoch": release}

    def _sample_outfits(self, truth: dict[str, np.ndarray], category: np.ndarray
                        ) -> Outfits | None:
        """(top, bottom, shoes) outfits per user as the synthetic world keeps them: candidates
        from the per-slot softmax of the user's item scores, kept by a Gumbel top-k over
        ``true_outfit_score / outfit_temperature`` (module docstring); None when
        ``outfits_per_user`` is 0."""
        slot = np.array([SLOTS.index(c) if c in SLOTS else -1 for c in category])
        return _sample_outfits(self, truth, slot, self._rng(_OUTFITS))

    def _sample_interactions(self, truth: dict[str, np.ndarray]
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per epoch: Gumbel top-k over released, not yet chosen items; then time stamps."""
        rng = self._rng(_INTERACTIONS)
        n_users, k, n_epochs = self.n_users, self.interactions_per_user, self.n_time_epochs
        # Spread each user's k interactions evenly over epochs; the remainder goes to random epochs.
        per_epoch = np.full((n_users, n_epochs), k // n_epochs)
        per_epoch += np.argsort(rng.random((n_users, n_epochs)), axis=1) < k % n_epochs
        chosen = np.zeros((n_users, self.n_items), bool)
        users, items, stamps = [], [], []
        for epoch in range(n_epochs):
            logits = score_at_epoch(truth, epoch) / self.temperature
            logits = logits + rng.gumbel(size=logits.shape)
            logits[:, truth["release_epoch"] > epoch] = -np.inf
            logits[chosen] = -np.inf
            most = int(per_epoch[:, epoch].max())
            if most == 0:
                continue
            top = np.argpartition(-logits, most - 1, axis=1)[:, :most]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(logits, top, 1), 1), 1)
            # The draw order follows the score, so time order within the epoch is shuffled.
            keep = np.arange(most) < per_epoch[:, epoch, None]
            order = np.argsort(np.where(keep, rng.random(keep.shape), np.inf), axis=1)
            top, keep = np.take_along_axis(top, order, 1), np.take_along_axis(keep, order, 1)
            # Room for the +1 s tie-breaking below, so no stamp crosses into the next epoch.
            offsets = np.sort(rng.integers(0, EPOCH_SECONDS - k, size=keep.shape), axis=1)
            user_index = np.broadcast_to(np.arange(n_users)[:, None], keep.shape)
            users.append(user_index[keep])
            items.append(top[keep])
            stamps.append(START_TIMESTAMP + epoch * EPOCH_SECONDS + offsets[keep])
            chosen[user_index[keep], top[keep]] = True
        user, item, stamp = (np.concatenate(a) for a in (users, items, stamps))
        order = np.lexsort((stamp, user))
        user, item, stamp = user[order], item[order], stamp[order]
        # Strictly increasing times per user, so "last by time" is never a tie.
        for j in range(1, k):
            rows = np.arange(j, len(user), k)
            stamp[rows] = np.maximum(stamp[rows], stamp[rows - 1] + 1)
        return user.astype(np.int32), item.astype(np.int32), stamp.astype(np.int64)

    def _metadata(self, thresholds: dict[str, np.ndarray]) -> dict:
        return {
            "source": "fashion-mnist (MIT)",
            "licence": "MIT (Zalando Research); interactions are simulated",
            "config": dataclasses.asdict(self),
            "class_names": list(CLASS_NAMES),
            "rating_range": [-1, 1],
            "vocabularies": {"subspace": list(PAIR_SUBSPACES)},
            "slot_of_class": SLOT_OF_CLASS,
            "image_size": self.image_size,
            "visual_attributes": {
                a: {"levels": list(LEVELS), "thresholds": thresholds[a].tolist()}
                for a in VISUAL_ATTRIBUTES},
            "features": f"PCA ({self.feature_dim} components, fitted on these items) of the "
                        f"{POOL}x{POOL} average-pooled 28x28 grey pixels scaled to [0, 1]",
            "time_epochs": {"n": self.n_time_epochs, "start": START_TIMESTAMP,
                            "seconds": EPOCH_SECONDS},
            "planted": {
                "score": "x_ui = visual_taste_u . visual_code_i + cf_user_u . cf_item_i "
                         "+ popularity_i (truth arrays; user_item_score = x at the last epoch)",
                "visual_code": "one-hot class (10) + standardised "
                               + ", ".join(VISUAL_ATTRIBUTES),
                "visual_weight": self.visual_weight,
                "trend": f"score at epoch t = x_ui + trend[t] * trend_exposure_i; the appeal of "
                         f"{self.trend_attribute} (standardised) rises by {self.trend_strength}",
                "interactions": "per epoch, Gumbel top-k of score_t / temperature over released, "
                                "not yet chosen items",
                "new_items": "items with release_epoch = last epoch appear only then",
                "ratings": "sign(x_ui - user's median + rating_noise * N(0, 1))",
                "pair_score": "personal weights over intensity contrast, texture clash, area "
                              "balance and class pairing (within-slot tertiles)",
                "expert_pairs": "labelled by the global pair score (mean customer weights)",
                "persona_strength": self.persona_strength,
                "outfits": "(top, bottom, shoes) per user: candidates from the per-slot softmax "
                           "of user_item_score, kept by Gumbel top-k of true_outfit_score / "
                           "outfit_temperature (mean item score + outfit_compatibility_weight "
                           "x mean personal pair score over the outfit's 3 pairs)",
            },
        }


def plant_pair_compatibility(labels: np.ndarray, measured: dict[str, np.ndarray],
                             category: np.ndarray) -> dict[str, np.ndarray]:
    """The compatibility rules of ``PAIR_SUBSPACES`` (module docstring) over items with class
    ``labels`` int [n], ``measured`` attributes float [n] and slots ``category`` str [n]:
    ``item_subspace_codes`` int32 [n, 4] and ``subspace_compatibility`` float32 [4, 10, 10],
    each table standardised over every (top, bottom) pair."""
    levels = np.arange(len(LEVELS), dtype=np.float64)
    rules = {"intensity": np.abs(levels[:, None] - levels[None, :]),
             "texture": -levels[:, None] * levels[None, :],
             "area": -np.abs(levels[:, None] - levels[None, :])}
    class_table = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)))
    trouser = CLASS_NAMES.index("Trouser")
    for name, value in CLASS_PAIRING.items():
        class_table[CLASS_NAMES.index(name), trouser] = class_table[
            trouser, CLASS_NAMES.index(name)] = value
    codes, tables = [], np.zeros((len(PAIR_SUBSPACES), len(CLASS_NAMES), len(CLASS_NAMES)))
    tops, bottoms = category == "top", category == "bottom"
    for s, name in enumerate(PAIR_SUBSPACES):
        if name == "class":
            code, table = np.asarray(labels, np.int64), class_table
        else:
            code, table = _levels_within_slot(measured[name], category), rules[name]
        p_top = np.bincount(code[tops], minlength=len(table)) / max(tops.sum(), 1)
        p_bottom = np.bincount(code[bottoms], minlength=len(table)) / max(bottoms.sum(), 1)
        mean = p_top @ table @ p_bottom
        std = np.sqrt(p_top @ (table - mean) ** 2 @ p_bottom)
        tables[s, :len(table), :len(table)] = (table - mean) / (std if std > 0 else 1.0)
        codes.append(code)
    return {"item_subspace_codes": np.stack(codes, axis=1).astype(np.int32),
            "subspace_compatibility": tables.astype(np.float32)}


def _levels_within_slot(values: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Tertile levels int [n] computed separately within each slot of ``category``."""
    level = np.zeros(len(values), np.int64)
    for slot in np.unique(category):
        rows = category == slot
        level[rows] = quantise_levels(values[rows])[0]
    return level


def _persona_directions() -> np.ndarray:
    """[4, 14] over ``visual_code``: how caring about each rule of ``PAIR_SUBSPACES`` shifts the
    taste (intensity: dark garments; texture: textured ones; area: large ones; class: T-shirts
    over coats)."""
    directions = np.zeros((len(PAIR_SUBSPACES), len(CLASS_NAMES) + len(VISUAL_ATTRIBUTES)))
    for s, name in enumerate(PAIR_SUBSPACES[:3]):
        directions[s, len(CLASS_NAMES) + VISUAL_ATTRIBUTES.index(name)] = 1.0
    directions[3, CLASS_NAMES.index("T-shirt/top")] = 1.0
    directions[3, CLASS_NAMES.index("Coat")] = -1.0
    return directions


def score_at_epoch(truth: dict[str, np.ndarray], epoch: int) -> np.ndarray:
    """True scores at time epoch ``epoch``: float [n_users, n_items] (see the module docstring)."""
    return truth["user_item_score"] + truth["trend"][epoch] * truth["trend_exposure"][None, :]


def time_epochs(dataset: FashionDataset) -> np.ndarray:
    """The time epoch of every interaction of a Fashion-MNIST world: int64 [n_interactions]."""
    epochs = dataset.metadata["time_epochs"]
    return (dataset.interactions.timestamp - epochs["start"]) // epochs["seconds"]


def item_visual_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Measures the real-content attributes of grey images uint8 [n, 28, 28]: name -> float [n].

    ``intensity`` mean pixel / 255 over the garment mask (pixels > ``MASK_THRESHOLD``); ``area``
    share of pixels in the mask; ``aspect`` bounding-box width / height; ``texture`` mean absolute
    4-neighbour Laplacian / 255 over the mask's interior (the mask eroded by one pixel, so the
    silhouette's own edge does not count).
    """
    x = images.astype(np.float64)
    mask = x > MASK_THRESHOLD
    n_mask = np.maximum(mask.sum(axis=(1, 2)), 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    laplacian = (4 * x - padded[:, :-2, 1:-1] - padded[:, 2:, 1:-1]
                 - padded[:, 1:-1, :-2] - padded[:, 1:-1, 2:])
    m = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    interior = mask & m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2] & m[:, 1:-1, 2:]
    return {
        "intensity": (x * mask).sum(axis=(1, 2)) / n_mask / 255.0,
        "area": mask.mean(axis=(1, 2)),
        "aspect": _extent(mask.any(axis=1)) / np.maximum(_extent(mask.any(axis=2)), 1),
        "texture": (np.abs(laplacian) * interior).sum(axis=(1, 2))
                   / np.maximum(interior.sum(axis=(1, 2)), 1) / 255.0,
    }


def quantise_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tertiles: int level [n] in 0..2 (``LEVELS``, = #thresholds <= value) and the 2 thresholds."""
    thresholds = np.quantile(values, [1 / 3, 2 / 3])
    return np.searchsorted(thresholds, values, side="right").astype(np.int64), thresholds


def pixel_pca_features(images: np.ndarray, dim: int) -> np.ndarray:
    """Generic visual descriptor float32 [n, dim]: PCA of ``POOL``x``POOL``-pooled pixels in [0, 1].

    Components are sorted by explained variance and signed so each loading vector's largest
    entry is positive (eigenvector signs are otherwise arbitrary across platforms).
    """
    n, height, width = images.shape
    pooled = images.reshape(n, height // POOL, POOL, width // POOL, POOL).mean(axis=(2, 4))
    pooled = pooled.reshape(n, -1) / 255.0
    centred = pooled - pooled.mean(axis=0)
    # Eigenvectors of the 196x196 covariance: the same axes as an SVD of the data, far cheaper.
    variances, vectors = np.linalg.eigh(centred.T @ centred)
    components = vectors[:, np.argsort(variances)[::-1][:dim]].T
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    return (centred @ (components * signs[:, None]).T).astype(np.float32)


def _extent(occupied: np.ndarray) -> np.ndarray:
    """Rows (or columns) from the first to the last occupied one: [n] from bool [n, 28]."""
    size = occupied.shape[1]
    first = occupied.argmax(axis=1)
    last = size - 1 - occupied[:, ::-1].argmax(axis=1)
    return np.where(occupied.any(axis=1), last - first + 1, 0)


def _stratified_sample(labels: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n_items`` images, n_items // 10 per class (+1 for the first remainder classes),
    in random order so an item's index says nothing about its class."""
    n_classes = len(CLASS_NAMES)
    chosen = []
    for label in range(n_classes):
        pool = np.flatnonzero(labels == label)
        count = n_items // n_classes + (label < n_items % n_classes)
        if count > len(pool):
            raise ValueError(f"`n_items`={n_items} needs {count} images of class "
                             f"{CLASS_NAMES[label]!r}; the data holds {len(pool)}")
        chosen.append(rng.choice(pool, size=count, replace=False))
    return rng.permutation(np.concatenate(chosen))


def _to_rgb(grey: np.ndarray, size: int) -> np.ndarray:
    """uint8 [n, 28, 28] -> uint8 [n, size, size, 3]: resized bilinearly, grey repeated on RGB."""
    if size != grey.shape[1]:
        from PIL import Image

        grey = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR))
                         for g in grey])
    return np.repeat(grey[..., None], 3, axis=-1)
