"""How fast a newcomer becomes known: Partial Dual fitted without some customers, who are then
folded in from 0, 5, 10, 20, 40 of their own votes (issue 24's evaluation, Partial Dual part).

``fit_without_customers`` removes whole customers from the recipe's rating split (train,
validation and test) before the fit, so the model never saw them; ``newcomer_curve`` gives each
held-out customer the first k of their votes (in a seeded shuffle; the same prefix grows with
k) and scores the votes after the largest k (the same evaluation votes at every k) with the
folded-in vector (``models.partial_dual.FoldIn``), beside the mean-customer baseline (the mean
vector of the fitted customers, what an unknown id gets today). The AUC is the customer-averaged
ROC AUC of ``evaluation.ratings.vote_aucs`` (+-1 votes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from tfrec_fashion.data.dataset import Ratings
from tfrec_fashion.data.splits import RatingSplit
from tfrec_fashion.evaluation.ratings import vote_aucs

VOTE_COUNTS: tuple[int, ...] = (0, 5, 10, 20, 40)


def choose_held_out(n_users: int, count: int, seed: int) -> np.ndarray:
    """int64 [count]: customers drawn at random (seeded), sorted."""
    return np.sort(np.random.default_rng(seed).choice(n_users, count, replace=False))


def fit_without_customers(recipe, held_out: np.ndarray, directory: str | Path):
    """Fits ``recipe`` (a prepared ``PartialDualRecipe``) on its split less every rating of the
    ``held_out`` customers, and returns the fitted model; the recipe's split is replaced by the
    reduced one (so ``recipe.fold_in`` takes the mean over the fitted customers only)."""
    split = recipe.split

    def without(table: Ratings) -> Ratings:
        keep = ~np.isin(table.user, held_out)
        return dataclasses.replace(table, **{
            field.name: getattr(table, field.name)[keep] for field in dataclasses.fields(table)
            if getattr(table, field.name) is not None})

    recipe.split = RatingSplit(without(split.train), without(split.validation),
                               without(split.test))
    recipe.prepare_inputs(recipe.dataset)
    directory = Path(directory)
    return recipe.solve(directory / "state", directory / "logs")


def newcomer_curve(fold_in, ratings: Ratings, held_out: np.ndarray,
                   vote_counts: Sequence[int] = VOTE_COUNTS, seed: int = 0
                   ) -> dict[str, list[float]]:
    """Customer-averaged held-out vote AUC of folded-in customers against the number of votes.

    Args:
        fold_in: the fitted model's ``FoldIn`` (``PartialDualRecipe.fold_in``).
        ratings: the dataset's ``Ratings`` (all votes; the held-out customers' are used).
        held_out: int customers the model was fitted without; each needs more than
            ``max(vote_counts)`` votes.
        vote_counts: numbers of votes to fold in from.
        seed: seed of each customer's vote order.

    Returns:
        {"votes": vote_counts, "fold_in_auc": [...], "mean_customer_auc": [...]}, the baseline
        repeated per count (it ignores the votes).
    """
    rng = np.random.default_rng(seed)
    most = max(vote_counts)
    vectors = {k: [] for k in vote_counts}
    users, items, values = [], [], []
    for user in held_out:
        rows = np.flatnonzero(ratings.user == user)
        if len(rows) <= most:
            raise ValueError(f"held-out customer {int(user)} has {len(rows)} votes; "
                             f"{most + 1} or more are needed")
        rows = rows[rng.permutation(len(rows))]
        for k in vote_counts:
            vectors[k].append(fold_in.user_vector(ratings.item[rows[:k]], ratings.value[rows[:k]]))
        evaluation = rows[most:]
        users.append(np.full(len(evaluation), len(users)))
        items.append(ratings.item[evaluation])
        values.append(ratings.value[evaluation])
    users, items = np.concatenate(users), np.concatenate(items)
    table = Ratings(users, items, np.concatenate(values))
    item_vectors = fold_in.item_vectors()[items]

    def auc(customer_vectors: np.ndarray) -> float:
        scores = fold_in.offset + np.einsum("nd,nd->n", customer_vectors[users], item_vectors)
        return vote_aucs(scores, table, "")["customer_auc"]

    baseline = auc(np.tile(fold_in.cold_start, (len(held_out), 1)))
    return {"votes": list(vote_counts),
            "fold_in_auc": [auc(np.stack(vectors[k])) for k in vote_counts],
            "mean_customer_auc": [baseline] * len(vote_counts)}

