"""The design protocol (paper 003, section IV-C, Table IV and Fig. 3): images for a customer and a
category from four sources, scored by the model's preference, an inception score, 1 - SSIM and,
on a Fashion-MNIST world, the customer's planted true taste.

- **Trials**: ``trials`` (customer, category) queries, drawn once per seed: customers without
  replacement (with, when there are fewer than trials), each with the category of their last
  interaction by time (the paper's "c the category of the item in the test set T_u": the
  leave-one-out test item), among customers whose category the GAN knows. Every source answers
  the same queries.
- **Sources**, each ``top_k`` (3) images per query:

  - ``random_real``: random catalogue items of the category (X_c);
  - ``random_generated``: G(z, c) with z ~ U(-1, 1)^L;
  - ``retrieval``: delta(u, c), the top-k catalogue items of c by theta_u . Phi(X_i) (eq. 8);
  - ``synthesis``: delta-hat(u, c), ``designer.design`` at ``eta`` (1): preference
    maximisation with the realism penalty and softmax sampling over restarts (eq. 9-11).

- **Measures** (``evaluation.design_quality``), each a mean and a standard deviation:

  - ``preference``: theta_u . Phi(x) of every returned image (``designer.preference``: the
    DVBPR score the synthesis maximises; the paper's "mean objective value", eq. 6), mean and
    std over all trials' images;
  - ``quality``: the inception score of the project classifier's probabilities of a source's
    images, mean and std over ``quality_splits`` (10) parts of them, as inception scores are
    reported (a query's 3 images alone could score at most 3);
  - ``diversity``: 1 - mean SSIM over the pairs of a query's images, mean and std over queries
    (the paper's Opposite Mean SSIM);
  - ``true_score`` (Fashion-MNIST worlds): the customer's planted visual taste of every image
    (``planted_visual_score``: the class from the classifier, the attributes measured on the
    pixels), which no generator can fool the way it can fool Phi;
  - ``frechet``: the Frechet distance between a source's images and the catalogue's (the
    classifier's penultimate features).

- ``synthesis_beats_<row>_true`` (and ``synthesis_beats_<row>`` under the preference): the
  share of queries whose synthesised images have a higher mean score than the row's.
- **eta sweep** (Fig. 3): the synthesis at each of ``etas`` on the first ``eta_trials`` queries,
  ``eta_<eta>_<measure>_mean`` / ``_std``, with ``eta_sweep_retrieval_<measure>_mean`` the
  retrieval row on the same queries (the figure's horizontal line).

A trained GAN and DVBPR run reach the protocol as a ``Designer`` of arrays and NumPy callables
(``training.recipes.design_gan`` builds it); this module never sees a model.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.design_quality import (
    ClassifierSettings, ImageClassifier, frechet_distance, image_classifier,
    inception_score_splits, is_fashion_mnist_world, mean_pairwise_ssim, planted_visual_score)

SOURCES: tuple[str, ...] = ("random_real", "random_generated", "retrieval", "synthesis")
MEASURES: tuple[str, ...] = ("preference", "quality", "diversity", "true_score")


@dataclasses.dataclass
class Designer:
    """What a trained GAN and a DVBPR run give the evaluation.

    Args:
        categories: index -> category name (the dataset's ``items.category`` values).
        user_vectors: theta_u float [n_users, K].
        item_vectors: Phi(X_i) of every catalogue item, float [n_items, K].
        generate: (z float [N, L], category int [N]) -> images float [N, H, W, 3] in [0, 1].
        preference: (images [N, H, W, 3], users int [N]) -> theta_u . Phi(up(x)) float [N].
        design: (user, category, n, eta, seed) -> (images [n, H, W, 3], objective values [n]):
            preference maximisation and eq. 11 sampling.
        latent_dim: L.
    """

    categories: list[str]
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray]
    preference: Callable[[np.ndarray, np.ndarray], np.ndarray]
    design: Callable[[int, int, int, float, int], tuple[np.ndarray, np.ndarray]]
    latent_dim: int


@dataclasses.dataclass(frozen=True)
class DesignTrials:
    """The queries: ``user`` int [T] and ``category`` int [T] (an index of the designer's
    categories)."""

    user: np.ndarray
    category: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


class DesignEvaluation:
    """Holds a ``Designer`` to Table IV and Fig. 3 (see the module docstring).

    Args:
        dataset: the catalogue (item images and categories; interactions give each customer's
            query category).
        seed: seeds the trials, the random rows and the designs.
        model_name: named in errors.
        trials: (customer, category) queries of the table (the paper: 1,000).
        top_k: images per query and source (the paper: 3).
        etas: the eta sweep's values (Fig. 3).
        eta_trials: queries of each eta of the sweep (the first of the table's).
        eta: the synthesis row's eta (the paper's "sweet spot" 1).
        quality_splits: parts of a source's images the inception score is averaged over.
        classifier: the project classifier (default: ``image_classifier(dataset)`` at the
            designer's image size, trained once and cached).

    Example:
        >>> DesignEvaluation(world, seed=0, trials=100).evaluate(designer)
        {"synthesis_preference_mean": ..., "retrieval_true_score_mean": ..., ...}
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "design_gan",
                 trials: int = 200, top_k: int = 3, etas: Sequence[float] = (0.0, 0.1, 1.0, 10.0),
                 eta_trials: int = 50, eta: float = 1.0, quality_splits: int = 10,
                 classifier: ImageClassifier | None = None):
        if trials <= 0 or top_k < 2 or eta_trials <= 0:
            raise ValueError(f"`trials` and `eta_trials` must be positive and `top_k` at least "
                             f"2 (diversity compares pairs). Received: trials={trials}, "
                             f"top_k={top_k}, eta_trials={eta_trials}")
        if dataset.items.images is None:
            raise DataError(f"the design protocol compares images; dataset {dataset.name!r} "
                            f"holds no item images in memory")
        self.dataset, self.seed, self.model_name = dataset, int(seed), model_name
        self.trials, self.top_k, self.eta = int(trials), int(top_k), float(eta)
        self.etas = tuple(float(e) for e in etas)
        self.eta_trials = min(int(eta_trials), self.trials)
        self.quality_splits = int(quality_splits)
        self.classifier = classifier
        self.category = np.asarray(dataset.items.category).astype(str)
        self.planted = is_fashion_mnist_world(dataset)

    # ------------------------------------------------------------------ queries
    def draw_trials(self, categories: Sequence[str]) -> DesignTrials:
        """The table's queries over the designer's ``categories`` (module docstring)."""
        known = {name: index for index, name in enumerate(categories)}
        query = self._query_categories()
        eligible = np.flatnonzero([name in known for name in query])
        if len(eligible) == 0:
            raise DataError(f"no customer's query category is one {self.model_name} knows "
                            f"({list(categories)}); the dataset's are {sorted(set(query))}")
        rng = np.random.default_rng([self.seed, 21])
        users = rng.choice(eligible, self.trials, replace=self.trials > len(eligible))
        return DesignTrials(user=users.astype(np.int64),
                            category=np.array([known[query[u]] for u in users], np.int64))

    def _query_categories(self) -> np.ndarray:
        """Each customer's query category: that of their last interaction by time (uniform
        over the catalogue's categories for a customer without any)."""
        rng = np.random.default_rng([self.seed, 20])
        query = rng.choice(np.unique(self.category), self.dataset.n_users)
        interactions = self.dataset.interactions
        if interactions is not None and len(interactions):
            order = np.lexsort((interactions.timestamp, interactions.user))
            user, item = interactions.user[order], interactions.item[order]
            last = np.r_[user[1:] != user[:-1], True]
            query[user[last]] = self.category[item[last]]
        return query

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, designer: Designer) -> dict[str, float]:
        """Every number of the protocol (module docstring) for metrics.json."""
        trials = self.draw_trials(designer.categories)
        started = time.time()
        images = self.source_images(designer, trials)
        synthesis_seconds = images.pop("synthesis_seconds")
        size = images["synthesis"].shape[2]
        classifier = self.classifier or image_classifier(
            self.dataset, ClassifierSettings(image_size=size))
        reference = self._catalogue_images(size, designer.categories)
        reference_features = classifier.features(reference)
        results: dict[str, float] = {
            "classifier_test_accuracy": classifier.test_accuracy,
            "design_trials": float(len(trials)), "design_top_k": float(self.top_k),
            "design_eta": self.eta, "design_eta_trials": float(self.eta_trials),
            "synthesis_seconds_per_trial": synthesis_seconds / len(trials)}
        per_image: dict[str, dict[str, np.ndarray]] = {}
        for source in SOURCES:
            scores = self.measure(designer, classifier, images[source], trials)
            per_image[source] = scores
            results.update({f"{source}_{key}": value
                            for key, value in self.summarise(scores).items()})
            results[f"{source}_frechet"] = frechet_distance(
                classifier.features(_flat(images[source])), reference_features)
        for measure in ("preference", "true_score"):
            if measure not in per_image["synthesis"]:
                continue
            ours = per_image["synthesis"][measure].mean(1)
            suffix = "_true" if measure == "true_score" else ""
            for row in ("random_real", "random_generated", "retrieval"):
                results[f"synthesis_beats_{row}{suffix}"] = float(
                    np.mean(ours > per_image[row][measure].mean(1)))
        results.update(self.eta_sweep(designer, classifier, trials, images, per_image))
        results["design_seconds"] = time.time() - started
        return results

    def source_images(self, designer: Designer, trials: DesignTrials) -> dict[str, Any]:
        """Each source's images float32 [T, k, H, W, 3] in [0, 1] (and ``synthesis_seconds``,
        the time the designs took)."""
        k, rng = self.top_k, np.random.default_rng([self.seed, 22])
        members = {c: np.flatnonzero(self.category == name)
                   for c, name in enumerate(designer.categories)}
        for c, rows in members.items():
            if len(rows) < k:
                raise DataError(f"category {designer.categories[c]!r} has {len(rows)} items; "
                                f"each query returns top_k={k}")
        real_rows = np.stack([rng.choice(members[c], k, replace=False) for c in trials.category])
        z = rng.uniform(-1.0, 1.0, (len(trials) * k, designer.latent_dim)).astype(np.float32)
        generated = np.asarray(designer.generate(z, np.repeat(trials.category, k)), np.float32)
        size = generated.shape[1]
        vectors, theta = np.asarray(designer.item_vectors), np.asarray(designer.user_vectors)
        retrieved = []
        for user, c in zip(trials.user, trials.category):
            scores = vectors[members[c]] @ theta[user]
            retrieved.append(members[c][np.argsort(-scores, kind="stable")[:k]])
        started = time.time()
        synthesised = np.stack([self._design(designer, user, c, self.eta, t)
                                for t, (user, c) in enumerate(zip(trials.user, trials.category))])
        return {"random_real": self._item_images(real_rows, size),
                "random_generated": generated.reshape(len(trials), k, *generated.shape[1:]),
                "retrieval": self._item_images(np.stack(retrieved), size),
                "synthesis": synthesised, "synthesis_seconds": time.time() - started}

    def _design(self, designer: Designer, user: int, category: int, eta: float,
                trial: int) -> np.ndarray:
        seed = (self.seed * 1_000_003 + trial) % (2 ** 31 - 1)
        images, _ = designer.design(int(user), int(category), self.top_k, float(eta), seed)
        images = np.asarray(images, np.float32)
        if len(images) != self.top_k:
            raise ValueError(f"{self.model_name}'s design returned {len(images)} images; the "
                             f"protocol asked for top_k={self.top_k}")
        return images

    def measure(self, designer: Designer, classifier: ImageClassifier, images: np.ndarray,
                trials: DesignTrials) -> dict[str, np.ndarray]:
        """Per image and query: ``preference`` and ``true_score`` float [T, k], ``diversity``
        float [T] and the classifier's ``probabilities`` [T * k, n_classes]."""
        flat, users = _flat(images), np.repeat(trials.user, images.shape[1])
        shape = images.shape[:2]
        scores = {"preference": np.asarray(designer.preference(flat, users),
                                           np.float64).reshape(shape),
                  "diversity": 1.0 - mean_pairwise_ssim(images),
                  "probabilities": classifier.probabilities(flat)}
        if self.planted:
            scores["true_score"] = planted_visual_score(self.dataset, users, flat,
                                                        classifier).reshape(shape)
        return scores

    def summarise(self, scores: dict[str, np.ndarray]) -> dict[str, float]:
        """``<measure>_mean`` and ``<measure>_std`` of ``measure``'s scores."""
        quality = inception_score_splits(scores["probabilities"], self.quality_splits)
        summary = {"quality_mean": quality[0], "quality_std": quality[1]}
        for name in ("preference", "diversity", "true_score"):
            if name in scores:
                summary[f"{name}_mean"] = float(np.mean(scores[name]))
                summary[f"{name}_std"] = float(np.std(scores[name]))
        return summary

    def eta_sweep(self, designer: Designer, classifier: ImageClassifier, trials: DesignTrials,
                  images: dict[str, np.ndarray], per_image: dict[str, dict[str, np.ndarray]]
                  ) -> dict[str, float]:
        """Fig. 3: the synthesis row at each eta on the first ``eta_trials`` queries, beside
        the retrieval row on them (``eta_sweep_retrieval_*``)."""
        n = self.eta_trials
        first = DesignTrials(user=trials.user[:n], category=trials.category[:n])
        results = {}
        retrieval = self.summarise(_head(per_image["retrieval"], n, self.top_k))
        results.update({f"eta_sweep_retrieval_{key}": value for key, value in retrieval.items()})
        for eta in self.etas:
            if eta == self.eta:  # the same designs as the table's synthesis row
                scores = _head(per_image["synthesis"], n, self.top_k)
            else:
                designed = np.stack([self._design(designer, user, c, eta, t)
                                     for t, (user, c) in enumerate(zip(first.user,
                                                                        first.category))])
                scores = self.measure(designer, classifier, designed, first)
            results.update({f"eta_{eta:g}_{key}": value
                            for key, value in self.summarise(scores).items()})
        return results

    # ------------------------------------------------------------------ images
    def _item_images(self, rows: np.ndarray, size: int) -> np.ndarray:
        """Catalogue images of item indices int [...] as float32 [..., size, size, 3]."""
        images = _as_float_images(np.asarray(self.dataset.items.images)[rows.reshape(-1)], size)
        return images.reshape(*rows.shape, *images.shape[1:])

    def _catalogue_images(self, size: int, categories: Sequence[str]) -> np.ndarray:
        rows = np.flatnonzero(np.isin(self.category, list(categories)))
        return self._item_images(rows, size)


def _as_float_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, s, s, 3] -> float32 [N, size, size, 3] in [0, 1] (bilinear when s != size)."""
    images = np.asarray(images, np.float32) / 255.0
    if images.shape[1:3] != (size, size):
        import tensorflow as tf

        images = np.asarray(tf.clip_by_value(tf.image.resize(images, (size, size)), 0.0, 1.0))
    return images


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(-1, *images.shape[2:])


def _head(scores: dict[str, np.ndarray], n: int, k: int) -> dict[str, np.ndarray]:
    """The first ``n`` queries' scores (probabilities: their n * k rows)."""
    return {name: values[:n * k] if name == "probabilities" else values[:n]
            for name, values in scores.items()}
