"""Data sources a config can name: ``data: {name: ..., ...}`` -> a ``FashionDataset``.

Each source is a config dataclass registered in ``DATA_SOURCES`` whose ``build()`` returns the
dataset, so a run's data is fully described by its config (and rebuilt from it, e.g. to evaluate
a finished run). Sources that read real files raise ``MissingDataError`` saying how to get them.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tfrec_fashion.config import Registry
from tfrec_fashion.data.dataset import (FashionDataset, Interactions, Items, Users,
                                        interactions_from_ratings)
from tfrec_fashion.data.splits import k_core_filter
from tfrec_fashion.errors import ConfigError

# Sources defined in other modules register themselves when the registry is first read.
DATA_SOURCES = Registry("data source", populate=("tfrec_fashion.data.synthetic",
                                                      "tfrec_fashion.data.fashion_mnist_world",
                                                      "tfrec_fashion.data.movielens"))


@DATA_SOURCES.register("folder")
@dataclasses.dataclass
class FolderSource:
    """A dataset saved in the project's layout (``tfrec-fashion data synth/convert`` write one).

    ``min_rating`` makes explicit ratings the implicit feedback, as ``movielens_100k`` does:
    the interactions become the ratings >= ``min_rating`` at their timestamps (replacing any
    ``interactions.csv``), and users left without one are dropped (``metadata["k_core"]``).
    Null keeps the folder's own interactions. The models of implicit feedback (BPR-MF, VBPR,
    two-tower, ...) need it on a folder of ratings only, such as a converted MovieLens file.
    """

    name: str = "folder"
    path: str = "data/dataset"
    load_images: bool = False
    min_rating: Optional[float] = None

    def build(self) -> FashionDataset:
        dataset = FashionDataset.load(self.path, load_images=self.load_images)
        if self.min_rating is None:
            return dataset
        return implicit_from_ratings(dataset, self.min_rating, f"data.min_rating ({self.path})")


def implicit_from_ratings(dataset: FashionDataset, min_rating: float,
                          what: str = "min_rating") -> FashionDataset:
    """``dataset`` with the ratings >= ``min_rating`` as its interactions (see ``FolderSource``).

    Raises:
        ConfigError: the dataset has no ratings, or ``min_rating`` lies outside
            ``metadata["rating_range"]`` (or above every rating).
    """
    ratings = dataset.ratings
    if ratings is None or len(ratings) == 0:
        raise ConfigError(f"{what}: dataset {dataset.name!r} has no ratings (ratings.csv) to take "
                          "implicit feedback from; remove min_rating")
    low, high = dataset.metadata.get("rating_range", (float(ratings.value.min()),
                                                      float(ratings.value.max())))
    if not low <= min_rating <= high:
        raise ConfigError(f"{what}: {min_rating:g} is outside the dataset's ratings "
                          f"{low:g}..{high:g}")
    interactions = interactions_from_ratings(ratings, min_rating)
    if len(interactions) == 0:
        raise ConfigError(f"{what}: no rating of dataset {dataset.name!r} is >= {min_rating:g}")
    with_interactions = dataclasses.replace(
        dataset, interactions=interactions,
        metadata={**dataset.metadata, "min_rating": float(min_rating)})
    has_any = np.bincount(interactions.user, minlength=dataset.n_users) > 0
    if has_any.all():
        return with_interactions
    return k_core_filter(with_interactions, min_interactions=1)


@DATA_SOURCES.register("latent_factor")
@dataclasses.dataclass
class LatentFactorWorld:
    """A small planted collaborative-filtering world: implicit feedback only, no images.

    Users and items get Gaussian latent factors of rank ``rank``; the true score is
    ``u.v + popularity_i``; each user draws ``interactions_per_user`` distinct items with
    probability proportional to ``exp(score / temperature)`` (Gumbel top-k), in time order.
    ``truth["user_item_score"]`` holds the true scores so evaluations can print the oracle.
    It exercises training and evaluation machinery; the fashion models use the richer
    synthetic world with images.
    """

    name: str = "latent_factor"
    seed: int = 0
    n_users: int = 300
    n_items: int = 400
    rank: int = 8
    interactions_per_user: int = 20
    temperature: float = 0.5
    popularity_scale: float = 0.5

    def __post_init__(self) -> None:
        if self.interactions_per_user >= self.n_items:
            raise ValueError(f"interactions_per_user must be below n_items. Received: "
                             f"interactions_per_user={self.interactions_per_user}, "
                             f"n_items={self.n_items}")

    def build(self) -> FashionDataset:
        rng = np.random.default_rng(self.seed)
        # Factor scale rank^-1/4 gives u.v unit variance whatever the rank.
        user_factors = rng.normal(size=(self.n_users, self.rank)) * self.rank ** -0.25
        item_factors = rng.normal(size=(self.n_items, self.rank)) * self.rank ** -0.25
        popularity = self.popularity_scale * rng.normal(size=self.n_items)
        score = (user_factors @ item_factors.T + popularity).astype(np.float32)
        gumbel = rng.gumbel(size=score.shape)
        chosen = np.argsort(-(score / self.temperature + gumbel), axis=1)
        chosen = chosen[:, :self.interactions_per_user]
        n = self.interactions_per_user
        user = np.repeat(np.arange(self.n_users, dtype=np.int32), n)
        timestamp = np.tile(np.arange(n, dtype=np.int64), self.n_users)
        return FashionDataset(
            name=f"latent_factor_seed{self.seed}",
            users=Users(ids=np.array([f"u{i}" for i in range(self.n_users)])),
            items=Items(ids=np.array([f"i{i}" for i in range(self.n_items)]),
                        category=np.full(self.n_items, "item")),
            interactions=Interactions(user=user, item=chosen.reshape(-1).astype(np.int32),
                                      timestamp=timestamp),
            metadata={"source": "latent_factor", "config": dataclasses.asdict(self)},
            truth={"user_item_score": score},
        )
