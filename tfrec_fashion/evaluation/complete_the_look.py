"""The complete-the-look protocol (paper 004): complementary items on held-out outfits, similar
items by same-label retrieval, beside the random, "similar as complementary" and planted rows.

- **Split**: the outfit protocol's (``evaluation.outfits.OutfitEvaluation``): each user's
  complete outfits 80 / 10 / 10 into train / validation / test, so held-out outfits are never
  trained on (the recipe draws its training triplets from ``split.train`` only).
- **Triplet accuracy** (section 2.2.5): ``triplets_per_outfit`` complete-the-look triplets of
  each held-out outfit (``data.samplers.ctl_triplets`` on the held-out outfits: an anchor, a
  positive of another category from its outfit, a negative of the positive's category from
  another held-out outfit), right when sim(a, p) > sim(a, n); a tie counts 1/2. The paper: ~60%
  (2,800-odd of 5,029 Polyvore outfits, one triplet each).
- **FITB** and **outfit AUC**: the outfit protocol's questions and candidate lists (one slot of
  each held-out outfit blanked, 4 candidates of its category; each user's held-out outfits
  among 4 random outfits each). An outfit is scored by the mean similarity over its pairs of
  items, so in FITB a candidate wins by its mean cosine to the rest of the outfit.
- **Similar items** (section 2.1): every item queries the other items of its category, ranked
  by cosine; precision@k (``k`` = 10) is the share of the top k with the query's label (same
  value of each of ``similar_attributes``: Fashion-MNIST's ``class_name``, the planted world's
  ``colour``), averaged over the queries of categories where the label varies (a category of
  one class, such as Fashion-MNIST's trousers, is right by construction and left out).

Everything is scored through one function ``score(user, outfits)`` of int [n] and int
[n, n_slots] (-1 = empty slot) -> float [n], higher = more compatible: a triplet is the two
outfits {a, p} and {a, n}. ``cosine_outfit_score(vectors)`` turns item vectors (the model's style
embedding, or any other) into it. The rows beside the model (``evaluate``):

- ``similar_as_complementary``: the similar-items vectors (EfficientNet-Lite0's pooled features
  with its ImageNet weights, L2-normalised, passed by the recipe) used as the style embedding;
- ``random``: seeded uniform scores (triplet accuracy ~0.5, FITB ~0.25);
- on a planted world ``oracle`` (the outfit's user's ``true_outfit_score`` of the partial
  outfit) and ``global_oracle`` (the average user's: the ceiling of a model that, like this one,
  is not personalised), from the outfit protocol's rows.

and for similar items ``similar_precision_at_10`` (the recipe's vectors), ``pixels_`` (raw
pixels, cosine), ``random_``, ``style_`` (the model's style embedding) and ``oracle_`` (a
perfect ranking: min(k, relevant) / k). ``style_mean_cosine`` and ``style_cosine_std`` (over all
pairs of distinct catalogue items) measure the embedding's spread: 1 and 0 when it collapsed.

A model is held to the protocol through arrays and functions the recipe passes; this module never
sees a model. ``validation_metrics`` gives ``training.callbacks.EpochMetrics`` the validation
numbers (``val_triplet_accuracy``, ``val_fitb``, ``val_outfit_auc``).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from tfrec_fashion.data.dataset import FashionDataset, Outfits
from tfrec_fashion.data.samplers import ctl_triplets
from tfrec_fashion.errors import DataError
from tfrec_fashion.evaluation.outfits import OutfitEvaluation, OutfitScore, OutfitTable, _call
from tfrec_fashion.metrics.choice import fitb_accuracy

_SPLITS = ("validation", "test")
METRICS = ("triplet_accuracy", "fitb", "outfit_auc")
_SPREAD_ITEMS = 4000


@dataclasses.dataclass(frozen=True)
class TripletQuestions:
    """Held-out triplets as outfit pairs: ``user`` int [n] (the anchor's outfit's user),
    ``positive`` and ``negative`` int [n, n_slots], {a, p} and {a, n} with the other slots -1."""

    user: np.ndarray
    positive: np.ndarray
    negative: np.ndarray


class CompleteTheLookEvaluation:
    """Splits a dataset's outfits and holds style vectors to them (see the module docstring).

    Args:
        dataset: a dataset with users' ``outfits`` and item ``category`` naming their slots.
        seed: seeds the split, the FITB questions, the triplets and the random rows.
        model_name: named in errors.
        triplets_per_outfit: held-out triplets drawn from each held-out outfit.
        k: the cut-off of similar-item precision.
        similar_attributes: the item attributes a similar item must share; default
            ``("class_name",)`` where the items have it, else ``("colour",)``.

    Example:
        >>> evaluation = CompleteTheLookEvaluation(world, seed=0)
        >>> evaluation.evaluate(style_vectors, efficientnet_vectors)
        {"test_triplet_accuracy": ..., "random_test_fitb": ..., "similar_precision_at_10": ...}
    """

    def __init__(self, dataset: FashionDataset, seed: int = 0, model_name: str = "the model",
                 triplets_per_outfit: int = 3, k: int = 10,
                 similar_attributes: Sequence[str] | None = None):
        self.outfits = OutfitEvaluation(dataset, seed=seed, model_name=model_name)
        self.split = self.outfits.split
        self.dataset, self.seed, self.k = dataset, seed, int(k)
        slots = tuple(self.split.train.slots)
        category = np.asarray(dataset.items.category).astype(str)
        self.item_slot = np.array([slots.index(c) if c in slots else -1 for c in category])
        self.triplets = {split: triplet_questions(
            getattr(self.split, split), category, self.item_slot, triplets_per_outfit,
            [seed, 4, stream]) for stream, split in enumerate(_SPLITS)}
        attributes = dataset.items.attributes or {}
        if similar_attributes is None:
            similar_attributes = ("class_name",) if "class_name" in attributes else ("colour",)
        missing = [name for name in similar_attributes if name not in attributes]
        if missing:
            raise DataError(f"similar items are judged by the attributes {list(similar_attributes)}"
                            f"; dataset {dataset.name!r} has no {missing}")
        self.similar_attributes = tuple(similar_attributes)
        self.similar_labels = np.unique(np.stack(
            [np.asarray(attributes[name]).astype(str) for name in similar_attributes], axis=1),
            axis=0, return_inverse=True)[1].reshape(-1)

    # ------------------------------------------------------------------ complementary
    def metrics(self, score: OutfitScore, split: str = "test") -> dict[str, float]:
        """``triplet_accuracy``, ``fitb`` and ``outfit_auc`` of ``score`` on the ``split``
        outfits (module docstring)."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}. Received: split={split!r}")
        questions = self.triplets[split]
        scores = np.stack([_call(score, questions.user, questions.positive),
                           _call(score, questions.user, questions.negative)], axis=1)
        outfit = self.outfits.metrics(score, split)
        return {"triplet_accuracy": fitb_accuracy(scores, np.zeros(len(scores), np.int64)),
                "fitb": outfit["fitb"], "outfit_auc": outfit["auc"]}

    def validation_metrics(self, score_of: Callable[[Any], OutfitScore]
                           ) -> Callable[[Any], dict[str, float]]:
        """``compute(model)`` for ``training.callbacks.EpochMetrics``: the validation metrics
        of ``score_of(model)`` (logged as ``val_triplet_accuracy``, ...)."""
        return lambda model: self.metrics(score_of(model), "validation")

    def rows(self, similar_vectors: np.ndarray) -> dict[str, OutfitScore]:
        """The complementary rows beside the model: ``similar_as_complementary`` (cosine of
        ``similar_vectors``), the outfit protocol's ``oracle`` and ``global_oracle`` (planted
        worlds), and ``random``, uniform scores seeded by the evaluation's seed and the
        outfits scored."""
        seed = self.seed
        # The outfit protocol's random row seeds by the call's size, which would score {a, p}
        # and {a, n} alike (every triplet a tie): seeded by the outfits themselves instead.
        return {"similar_as_complementary": cosine_outfit_score(similar_vectors),
                **self.outfits.rows(),
                "random": lambda user, outfits: np.random.default_rng(
                    [seed, 3, zlib.crc32(np.ascontiguousarray(outfits, np.int64).tobytes())]
                ).random(len(user))}

    def evaluate(self, style_vectors: np.ndarray, similar_vectors: np.ndarray
                 ) -> dict[str, float]:
        """Every number of the protocol (module docstring): the model's (its ``style_vectors``
        float [n_items, d]) and the rows' complementary metrics on validation and test, the
        similar-item precisions and the style embedding's spread."""
        results = {}
        rows = {"": cosine_outfit_score(style_vectors),
                **{f"{name}_": row for name, row in self.rows(similar_vectors).items()}}
        for prefix, score in rows.items():
            for split in _SPLITS:
                results.update({f"{prefix}{split}_{key}": value
                                for key, value in self.metrics(score, split).items()})
        results.update(self.similar_items(style_vectors, similar_vectors))
        results.update(embedding_spread(style_vectors, "style_"))
        return results

    # ------------------------------------------------------------------ similar items
    def similar_items(self, style_vectors: np.ndarray, similar_vectors: np.ndarray
                      ) -> dict[str, float]:
        """Precision@k of same-label retrieval within the query's category:
        ``similar_precision_at_<k>`` (the similar-items vectors) and the ``pixels_``,
        ``random_``, ``style_`` and ``oracle_`` rows of it."""
        key = f"similar_precision_at_{self.k}"
        rows = {"": similar_vectors, "style_": style_vectors}
        images = self.dataset.items.images
        if images is not None:
            rows["pixels_"] = np.asarray(images, np.float32).reshape(len(images), -1)
        rows["random_"] = np.random.default_rng([self.seed, 5]).normal(
            size=(self.dataset.n_items, 16))
        results = {f"{prefix}{key}": self.precision_at_k(vectors)
                   for prefix, vectors in rows.items()}
        results[f"oracle_{key}"] = self.precision_at_k(None)
        return results

    def precision_at_k(self, vectors: np.ndarray | None) -> float:
        """Mean precision@k of cosine retrieval by ``vectors`` [n_items, d] over the queries
        (module docstring); ``None`` = a perfect ranking."""
        category = np.asarray(self.dataset.items.category).astype(str)
        labels, per_query = self.similar_labels, []
        for name in np.unique(category):
            members = np.flatnonzero(category == name)
            if len(members) <= self.k or len(np.unique(labels[members])) < 2:
                continue
            same = labels[members][:, None] == labels[members][None, :]
            np.fill_diagonal(same, False)
            if vectors is None:
                per_query.append(np.minimum(same.sum(1), self.k) / self.k)
                continue
            unit = _unit(np.asarray(vectors, np.float64)[members])
            similarity = unit @ unit.T
            np.fill_diagonal(similarity, -np.inf)
            top = np.argpartition(-similarity, self.k - 1, axis=1)[:, :self.k]
            per_query.append(np.take_along_axis(same, top, axis=1).mean(1))
        if not per_query:
            raise DataError(f"no category has more than k={self.k} items and two labels of "
                            f"{list(self.similar_attributes)}: similar items cannot be judged")
        return float(np.concatenate(per_query).mean())


def triplet_questions(outfits: Outfits, category: np.ndarray, item_slot: np.ndarray,
                      triplets_per_outfit: int, seed: Any) -> TripletQuestions:
    """``ctl_triplets`` of ``outfits`` as (user, {a, p}, {a, n}) outfit pairs; the user is the
    one whose outfit holds a and p (the first such outfit)."""
    triplets = ctl_triplets(outfits, category, seed=seed, triplets_per_outfit=triplets_per_outfit)
    owner: dict[tuple[int, int], int] = {}
    for user, row in zip(outfits.user, outfits.items):
        for a in row:
            for b in row:
                owner.setdefault((int(a), int(b)), int(user))
    user = np.array([owner[(int(a), int(p))] for a, p in zip(triplets.anchor, triplets.positive)],
                    np.int64)
    n, n_slots = len(triplets), len(outfits.slots)

    def pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        items = np.full((n, n_slots), -1, np.int64)
        items[np.arange(n), item_slot[a]] = a
        items[np.arange(n), item_slot[b]] = b
        return items

    return TripletQuestions(user=user, positive=pair(triplets.anchor, triplets.positive),
                            negative=pair(triplets.anchor, triplets.negative))


def cosine_outfit_score(vectors: np.ndarray) -> OutfitScore:
    """The score of an outfit by item vectors [n_items, d]: the mean cosine over its pairs of
    filled slots (-1 = empty), for any user."""
    unit = _unit(np.asarray(vectors, np.float64))

    def score(user: np.ndarray, outfits: np.ndarray) -> np.ndarray:
        outfits = np.asarray(outfits)
        filled = outfits >= 0
        rows = unit[np.maximum(outfits, 0)]  # [n, S, d]
        pair = np.einsum("nsd,ntd->nst", rows, rows) * (filled[:, :, None] & filled[:, None, :])
        self_pairs = np.einsum("nsd,nsd->ns", rows, rows) * filled
        count = filled.sum(1)
        return (pair.sum((1, 2)) - self_pairs.sum(1)) / np.maximum(count * (count - 1), 1)
    return score


def embedding_spread(vectors: np.ndarray, prefix: str = "") -> dict[str, float]:
    """``mean_cosine`` and ``cosine_std`` over all pairs of distinct rows of ``vectors``: 1 and
    0 for identical embeddings (the collapse batch norm prevents, paper 004 section 2.2.3).
    Over a seeded sample of ``_SPREAD_ITEMS`` rows when there are more."""
    unit = _unit(np.asarray(vectors, np.float64))
    if len(unit) > _SPREAD_ITEMS:
        unit = unit[np.random.default_rng(0).choice(len(unit), _SPREAD_ITEMS, replace=False)]
    cosine = unit @ unit.T
    off_diagonal = cosine[~np.eye(len(unit), dtype=bool)]
    return {f"{prefix}mean_cosine": float(off_diagonal.mean()),
            f"{prefix}cosine_std": float(off_diagonal.std())}


def _unit(vectors: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norm > 0, norm, 1.0)


# ---------------------------------------------------------------------------- the table
@dataclasses.dataclass
class CompleteTheLookTable(OutfitTable):
    """Complete the look on held-out outfits: triplet accuracy, FITB, outfit AUC and the style
    embedding's mean pairwise cosine (its spread; a run's own, "-" for the reference rows) per
    method, the random row first, "similar as complementary" and the planted oracles last;
    below, precision@k of similar items (the similar-items vectors, raw pixels, random, a
    perfect ranking and each run's style embedding). The best method of each complementary
    column in bold (reference rows never are; the spread is not ranked).

    Args:
        dataset: the dataset's label, printed in the title.
    """

    similar: dict[str, float] = dataclasses.field(default_factory=dict, init=False)
    k: int = dataclasses.field(default=10, init=False)
    REFERENCES: ClassVar[dict[str, str]] = {
        "random_": "Random",
        "similar_as_complementary_": "Similar as complementary (EfficientNet-Lite0)",
        **{p: name for p, name in OutfitTable.REFERENCES.items() if p != "random_"}}
    COLUMNS: ClassVar[dict[str, str]] = {
        "test_triplet_accuracy": "Triplet acc.", "test_fitb": "FITB",
        "test_outfit_auc": "Outfit AUC", "style_mean_cosine": "Mean cosine"}
    RANKED: ClassVar[tuple[str, ...]] = ("test_triplet_accuracy", "test_fitb", "test_outfit_auc")
    TITLE: ClassVar[str] = "Complete the look: held-out outfits on"
    #: metrics prefix of a similar-items precision -> its row's name.
    SIMILAR: ClassVar[dict[str, str]] = {
        "": "EfficientNet-Lite0 cosine", "pixels_": "Raw pixels cosine", "random_": "Random",
        "oracle_": "Perfect ranking"}

    @classmethod
    def from_runs(cls, dataset: str, runs: dict[str, dict[str, Any]], *, proposed: str = "",
                  reference: str = "") -> CompleteTheLookTable:
        table = super().from_runs(dataset, runs)
        first = next(iter(runs.values()))
        key = next((k for k in first if k.startswith("similar_precision_at_")), None)
        if key is not None:
            table.k = int(key.rsplit("_", 1)[1])
            table.similar = {name: float(first[f"{prefix}{key}"])
                             for prefix, name in cls.SIMILAR.items() if f"{prefix}{key}" in first}
            table.similar.update({f"Style embedding ({method})": float(m[f"style_{key}"])
                                  for method, m in runs.items() if f"style_{key}" in m})
        return table

    @classmethod
    def columns_of(cls, metrics: dict[str, Any], prefix: str) -> dict[str, float]:
        # The spread is a run's own (a reference row has no style embedding).
        row = super().columns_of(metrics, prefix)
        return {**row, "style_mean_cosine": row["style_mean_cosine"] if prefix == ""
                else math.nan}

    def format_markdown(self) -> str:
        lines = [super().format_markdown()]
        if self.similar:
            lines += ["", f"Similar items: precision@{self.k} of same-label retrieval within "
                      "the query's category", "", f"| vectors | P@{self.k} |", "|---|---:|"]
            lines += [f"| {name} | {value:.4f} |" for name, value in self.similar.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "similar_precision": {"k": self.k, "rows": self.similar}}
