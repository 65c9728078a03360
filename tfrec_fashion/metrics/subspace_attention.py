"""Does a model's subspace attention find the customers' planted dominant subspace? (PSA-Net's
interpretability, paper 000 sec. 7.)

A model with k learned subspaces gives each customer attention weights w [k]; the planted world
gives each customer weights v [s] over its s planted subspaces (``user_subspace_weights``). The
learned subspaces have no names, so they are first matched to planted ones:

0. **Relative weights** (``relative=True``, the default): each learned column is divided by its
   mean over the customers, so a customer's largest weight is the subspace they weigh most
   *compared with everyone else*. A subspace's weight and its mask's size are not identifiable
   apart (a model may put a small mask under a large weight for every customer), so the raw
   argmax can name the same subspace for everyone while the weights still track each
   customer's taste (planted world seed 0: correlations 0.71, 0.86, 0.70 with the planted
   columns, raw argmax 0.29 against chance 0.33, relative 0.80). The planted weights are left
   as they are (symmetric Dirichlet: their columns' means are alike).
1. **Matching**: the Pearson correlation over customers of every learned weight column with
   every planted one, C [k, s] (a column constant over customers correlates 0), and the
   one-to-one assignment of learned to planted subspaces that maximises the summed correlation
   (Hungarian, ``scipy.optimize.linear_sum_assignment``). With k > s the unmatched learned
   subspaces map to no planted one; with k < s some planted ones get none.
2. **Accuracy**: the share of customers whose largest learned weight (``argmax w``) is matched to
   their planted dominant subspace (``argmax v``).
3. **Chance**: the same two steps, matching included, with the learned weights given to other
   customers: the mean accuracy over ``n_shuffles`` random permutations of the customers
   (seeded). It keeps both sides' shares of argmax subspaces (an imbalanced world or a model
   that favours one subspace scores above 1/s without knowing anyone) and the optimism of
   choosing the best matching, so accuracy minus chance is what the attention knows about each
   customer. ``chance_std`` is the spread over the permutations.

NumPy and SciPy only; the only loop is over the permutations (one small assignment each).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from tfrec_fashion.metrics import _checks


def subspace_correlation(learned: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """Pearson correlation over customers of learned [n, k] with planted [n, s] weight columns:
    float [k, s] (0 for a column constant over customers)."""
    learned = learned - learned.mean(axis=0)
    planted = planted - planted.mean(axis=0)
    norms = np.outer(np.linalg.norm(learned, axis=0), np.linalg.norm(planted, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = (learned.T @ planted) / norms
    return np.where(norms > 0, correlation, 0.0)


def match_subspaces(learned: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """The planted subspace each learned one is matched to (maximal summed correlation): int
    [k], -1 for a learned subspace left unmatched (k > s)."""
    rows, columns = linear_sum_assignment(subspace_correlation(learned, planted), maximize=True)
    matched = np.full(learned.shape[1], -1)
    matched[rows] = columns
    return matched


def _accuracy(learned: np.ndarray, planted: np.ndarray) -> float:
    matched = match_subspaces(learned, planted)
    return float(np.mean(matched[learned.argmax(axis=1)] == planted.argmax(axis=1)))


def attention_subspace_accuracy(learned_weights: ArrayLike, planted_weights: ArrayLike,
                                n_shuffles: int = 200, seed: int = 0,
                                relative: bool = True) -> dict[str, object]:
    """How often a customer's largest learned attention weight lands on their planted dominant
    subspace, after matching, against chance (see the module docstring).

    Args:
        learned_weights: float [n_customers, k], the model's attention weights per customer.
        planted_weights: float [n_customers, s], the planted ``user_subspace_weights``.
        n_shuffles: customer permutations the chance level is averaged over, a positive int.
        seed: the permutations' seed.
        relative: divide each learned column by its mean over customers first (step 0); the
            columns must then have positive means (attention weights do).

    Returns:
        ``{"accuracy": float, "chance": float, "chance_std": float, "matching": int [k]
        (planted subspace of each learned one, -1 if none), "correlation": float [k, s]}``.
    """
    learned = _checks.as_float_array(learned_weights, "learned_weights", 2, "[n_customers, k]")
    planted = _checks.as_float_array(planted_weights, "planted_weights", 2, "[n_customers, s]")
    if learned.shape[0] != planted.shape[0] or learned.shape[0] < 2:
        raise ValueError("`learned_weights` and `planted_weights` must have the same number of "
                         f"customers, at least 2. Received: {learned.shape[0]} and "
                         f"{planted.shape[0]}")
    n_shuffles = _checks.check_positive_int(n_shuffles, "n_shuffles")
    if relative:
        means = learned.mean(axis=0)
        if not (means > 0).all():
            raise ValueError("`relative=True` divides each learned column by its mean over "
                             f"customers, which must be positive. Received means: {means}")
        learned = learned / means
    rng = np.random.default_rng(seed)
    shuffled = [_accuracy(learned[rng.permutation(len(learned))], planted)
                for _ in range(n_shuffles)]
    return {"accuracy": _accuracy(learned, planted), "chance": float(np.mean(shuffled)),
            "chance_std": float(np.std(shuffled)), "matching": match_subspaces(learned, planted),
            "correlation": subspace_correlation(learned, planted)}
