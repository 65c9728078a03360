"""Planting the synthetic world's truth: the item catalogue and the hidden truth behind every
observation.

The catalogue: attribute codes per item (category, colour, pattern, length, brand), their one-hot
layout (``_attribute_groups``), stand-in CNN features, titles and ids. The truth: users' subspace
weights, visual tastes and latent factors, item popularity and the true score
(``_plant_scores``); trends and release epochs (``_plant_trend``); per-subspace compatibility
tables (``_plant_compatibility``). ``synthetic.make_world`` calls these with one random stream
each; ``synthetic`` documents what is planted.

May import: numpy and ``synthetic_render`` (palette and attribute vocabularies);
``synthetic.SyntheticWorldConfig`` and ``dataset.Items`` only for type hints, under
``TYPE_CHECKING``. Never imports ``synthetic``, ``synthetic_sampling`` or ``synthetic_truth``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfrec_fashion.data.synthetic_render import CATEGORIES, LENGTHS, PALETTE, PATTERNS

if TYPE_CHECKING:
    from tfrec_fashion.data.dataset import Items
    from tfrec_fashion.data.synthetic import SyntheticWorldConfig

SLOTS: tuple[str, ...] = CATEGORIES
# Hue in degrees of the chromatic colours; the rest are neutrals that go with anything.
_HUE = {"red": 355.0, "pink": 335.0, "yellow": 48.0, "green": 140.0, "blue": 216.0}
_PATTERN_WORD = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checks": "checked"}
_NOUN = {("top", "short"): "short-sleeve top", ("top", "long"): "long-sleeve top",
         ("bottom", "short"): "shorts", ("bottom", "long"): "trousers",
         ("shoes", "short"): "low shoes", ("shoes", "long"): "ankle boots"}


# ---------------------------------------------------------------------------------- catalogue
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
