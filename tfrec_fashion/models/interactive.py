"""I-VBPR (paper 002, sections 5-6): interactive recommendation and feature-level fashion trends
from a trained VBPR / TVBPR model whose item features f_i [F] are interpretable (one-hot item
attributes such as colour=red, pattern=stripes).

The model's ``parameters()`` (NumPy arrays) define its predictor at epoch t:

    x_ui(t)    = beta_i + gamma_u . gamma_i + theta_u . theta_i(t) + beta'(t) . f_i
    theta_i(t) = (E f_i) ⊙ w(t) + delta_E(t) f_i = E_t f_i                               eq. 2
    E_t        = diag(w(t)) E + delta_E(t)        [K', F], the kernel at epoch t
    beta'(t)   = beta' ⊙ b(t) + delta_beta(t)

VBPR is the one-epoch case w = b = 1, deltas = 0. There is no alpha and no beta_u: they cancel in
BPR's x_uij, so the model never learns them.

Section 5, interactive recommendation (h(k) is the one-hot vector of feature k, R(I) a random item
sample drawn once from ``seed``):

    p_u,k = sum_{i in R(I)} beta_i + gamma_u . gamma_i + theta_u . (E_t h(k)) + beta'(t) . h(k)
            then p_u <- N(p_u)                                                                eq. 5
    p_u  <- N(p_u + phi f_i)        scale p_u towards item i                                 eq. 6
    p_u  <- N(p_u + phi' h(k))      scale p_u towards feature k                              eq. 7
    recommend(p_u) = the items with the largest p_u . f_i

The paper's t in eqs. 5-7 counts interaction steps (t = 0 is the initial affinity vector); here
``epoch`` is the TVBPR epoch whose E_t and beta'(t) are used (default: the last, most recent).

What eq. 5 measures. The item terms beta_i + gamma_u . gamma_i do not depend on k, so
p_u,k = |R| (c_u + theta_u . E_t[:, k] + beta'(t)_k) with c_u their mean over R(I); we keep them,
as the paper does. Since p_u . f_i is linear in f_i,

    p_u . f_i = |R| (c_u sum_k f_i,k + theta_u . theta_i(t) + beta'(t) . f_i),

the visual part of x_ui(t) plus c_u times the number of active features. For one-hot features
with a fixed number of attribute groups every sum_k f_i,k is the same, so c_u shifts every item's
score alike and the ranking is exactly that of the visual part of the predictor (item-specific
beta_i and gamma_i have no image in feature space). c_u still matters for refinement: it sets
the size of each p_u,k after N, hence how far one phi step moves the vector. The sum over R(I)
(the paper calls it an average) only scales p_u by |R|, which N removes.

Normalisation N. The paper divides each element by the sum of the elements; its responses carry
alpha + beta_u and are positive. Ours can be negative, and then the sum can be zero (division by
zero) or negative (division by a negative number flips p_u, so ``recommend`` would return the
user's least liked items). We divide by the sum of absolute values (the L1 norm): a positive
scale, so no ranking changes, equal to the paper's N whenever all elements are positive. After N,
sum |p_u,k| = 1, so phi' is the weight of one feature click relative to the whole current
affinity vector (and phi likewise per active feature of the clicked item). N(0) = 0.

Recommendation is an inner product. The paper's "nearest neighbour search within the item set
using the visual feature space" is maximum-inner-product search of the query p_u [F] over the
item vectors f_i, so one retrieval index over the item-feature table (brute force, ScaNN) serves
every interaction step; refinement only changes the query. For one-hot features with a fixed
number of groups ||f_i|| is constant, so inner product, cosine and Euclidean neighbours coincide.

Section 6, fashion trends:

    influence[t, k] = sum over K' of (E h(k)) ⊙ w(t) = (w E)[t, k]                           eq. 8

The paper leaves the drift delta_E(t) out of eq. 8; ``include_drift=True`` adds it (the column
sums of E_t). A latent dimension's sign is arbitrary (theta_u and a row of E can flip together),
so eq. 8 reads as a trend across epochs rather than an absolute popularity. Its companion
``feature_popularity`` gives beta'(t)_k, the bias every user's score of an item with feature k
receives at epoch t: the global appeal of the feature, whose drift shows a trend directly.

NumPy only: this module runs on ``model.parameters()`` and never imports TensorFlow.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Shapes of the parameters, in named dimensions bound on first use and checked afterwards.
_SHAPES: dict[str, tuple[str, ...]] = {
    "theta_user": ("U", "K'"), "E": ("K'", "F"),
    "gamma_user": ("U", "K"), "gamma_item": ("I", "K"), "beta_item": ("I",),
    "beta_visual": ("F",),
    "w": ("T", "K'"), "b": ("T", "F"), "delta_E": ("T", "K'", "F"), "delta_beta": ("T", "F"),
}
_REQUIRED = ("theta_user", "E")
_GROUPS = (("gamma_user", "gamma_item"), ("w", "b", "delta_E", "delta_beta"))


def _check_parameters(parameters: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The known parameters as float64 arrays, after checking keys that belong together."""
    missing = [key for key in _REQUIRED if key not in parameters]
    if missing:
        raise ValueError(f"`parameters` lacks {missing}: the visual part theta_user, E is needed. "
                         f"Received keys: {sorted(parameters)}")
    for group in _GROUPS:
        present = [key for key in group if key in parameters]
        if present and len(present) < len(group):
            absent = [key for key in group if key not in parameters]
            raise ValueError(f"`parameters` has {present} but lacks {absent}: "
                             f"{list(group)} come together or not at all")
    return {key: np.asarray(parameters[key], dtype=np.float64)
            for key in _SHAPES if key in parameters}


def _bind_dimensions(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[str, ...]]
                     ) -> dict[str, int]:
    """Binds each named dimension to its size, raising on the first array that disagrees."""
    sizes: dict[str, int] = {}
    for key, array in arrays.items():
        names = shapes[key]
        if array.ndim != len(names):
            raise ValueError(f"`{key}` must be {len(names)}-D {list(names)}. "
                             f"Received shape {array.shape}")
        for name, size in zip(names, array.shape):
            if sizes.setdefault(name, size) != size:
                raise ValueError(f"`{key}` has {name} = {size} along its shape {array.shape}, "
                                 f"but {name} = {sizes[name]} elsewhere")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"`{key}` has non-finite values")
    return sizes


def _normalise(p: np.ndarray) -> np.ndarray:
    """N(p): divides by the sum of |p| along the last axis (see the module docstring); N(0) = 0."""
    total = np.abs(p).sum(axis=-1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0)


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not np.isscalar(value) or not value > 0 \
            or not np.isfinite(value):
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    return float(value)


def _check_index(value: Any, name: str, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 0 <= value < size:
        raise ValueError(f"`{name}` must be an integer in [0, {size}). Received: {name}={value!r}")
    return int(value)


class InteractiveRecommender:
    """Affinity vectors over interpretable features, refined by item and feature clicks (I-VBPR).

    Args:
        parameters: a trained VBPR / TVBPR model's ``parameters()``: NumPy arrays "theta_user"
            [U, K'] and "E" [K', F] (required); "gamma_user" [U, K] with "gamma_item" [I, K],
            "beta_item" [I], "beta_visual" [F] (beta'), and for T epochs "w" [T, K'], "b" [T, F],
            "delta_E" [T, K', F], "delta_beta" [T, F] (all four or none). An absent part is zero
            in the predictor; other keys are ignored.
        item_features: float [I, F], the interpretable features f_i of every item.
        feature_names: F unique names of the features ("colour=red", ...).
        epoch: TVBPR epoch in [0, T) whose E_t and beta'(t) are used; None = the last. Must be
            None or 0 for a model without epochs.
        phi: default step of eq. 6 (towards an item), > 0.
        phi_prime: default step of eq. 7 (towards a feature), > 0. After N, sum |p_u| = 1, so
            0.1 makes one click worth a tenth of the whole current affinity vector.
        sample_size: size of the random item sample R(I) of eq. 5; None = every item.
        seed: seed of R(I) (drawn once, at construction, for every user).

    Example:

        rec = InteractiveRecommender(model.parameters(), features, names)
        p = rec.affinity(7)                              # [F], eq. 5
        items, scores = rec.recommend(p, k=10, exclude=seen_items)
        p = rec.towards_item(p, items[2])                # eq. 6: "more like this"
        p = rec.towards_feature(p, "colour=blue")        # eq. 7: "more blue"
        items, scores = rec.recommend(p, k=10, exclude=seen_items)
        trend = rec.feature_influence()                  # eq. 8: {"values": [T, F], ...}
    """

    def __init__(self, parameters: Mapping[str, Any], item_features: Any,
                 feature_names: Sequence[str], epoch: int | None = None, phi: float = 0.1,
                 phi_prime: float = 0.1, sample_size: int | None = 100, seed: int = 0):
        arrays = _check_parameters(parameters)
        features = np.asarray(item_features, dtype=np.float64)
        sizes = _bind_dimensions({"item_features": features, **arrays},
                                 {"item_features": ("I", "F"), **_SHAPES})
        names = tuple(feature_names)
        if len(names) != sizes["F"] or len(set(names)) != len(names) \
                or not all(isinstance(name, str) for name in names):
            raise ValueError(f"`feature_names` must be {sizes['F']} unique strings, one per "
                             f"feature. Received {len(names)} names: {list(names)[:8]}")
        if sample_size is not None and (isinstance(sample_size, bool)
                                        or not isinstance(sample_size, int) or sample_size < 1):
            raise ValueError(f"`sample_size` must be a positive integer or None. "
                             f"Received: sample_size={sample_size!r}")
        self.parameters = arrays
        self.item_features = features
        self.feature_names = names
        self.phi = _positive(phi, "phi")
        self.phi_prime = _positive(phi_prime, "phi_prime")
        self.sample_size = sample_size
        self.seed = seed
        self.n_users, self.n_items, self.n_features = sizes["U"], sizes["I"], sizes["F"]
        self.n_epochs = sizes.get("T", 1)
        self.epoch = self._check_epoch(epoch)
        n_sample = self.n_items if sample_size is None else min(sample_size, self.n_items)
        self.sample_items = np.sort(np.random.default_rng(seed).choice(
            self.n_items, n_sample, replace=False))
        self._kernel, self._visual_bias = self._epoch_kernel_and_bias(self.epoch)

    def _check_epoch(self, epoch: int | None) -> int:
        if epoch is None:
            return self.n_epochs - 1
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) \
                or not 0 <= epoch < self.n_epochs:
            raise ValueError(f"`epoch` must be an integer in [0, {self.n_epochs}) (the model has "
                             f"{self.n_epochs} epoch(s)) or None. Received: epoch={epoch!r}")
        return int(epoch)

    def _epoch_kernel_and_bias(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """E_t [K', F] = diag(w(t)) E + delta_E(t) and beta'(t) [F] = beta' ⊙ b(t) + delta_beta(t)
        at ``epoch`` (E and beta' themselves without epochs)."""
        params = self.parameters
        kernel = params["E"]
        bias = params.get("beta_visual", np.zeros(self.n_features))
        if "w" in params:
            kernel = kernel * params["w"][epoch][:, None] + params["delta_E"][epoch]
            bias = bias * params["b"][epoch] + params["delta_beta"][epoch]
        return kernel, bias

    def feature_index(self, feature: int | str) -> int:
        """The column of ``feature``, given as an index or as one of ``feature_names``."""
        if isinstance(feature, str):
            if feature not in self.feature_names:
                close = difflib.get_close_matches(feature, self.feature_names, n=3, cutoff=0.5)
                hint = f"; did you mean {close}?" if close else \
                    f"; known: {list(self.feature_names)[:10]}"
                raise KeyError(f"Unknown feature {feature!r}{hint}")
            return self.feature_names.index(feature)
        return _check_index(feature, "feature", self.n_features)

    def _check_affinity(self, p_u: Any) -> np.ndarray:
        p = np.asarray(p_u, dtype=np.float64)
        if p.shape != (self.n_features,) or not np.all(np.isfinite(p)):
            raise ValueError(f"`p_u` must be a finite affinity vector of shape "
                             f"({self.n_features},). Received shape {p.shape}")
        return p

    def _check_indices(self, values: Any, name: str, size: int) -> np.ndarray:
        indices = np.asarray(values)
        if indices.size and (not np.issubdtype(indices.dtype, np.integer)
                             or indices.min() < 0 or indices.max() >= size):
            raise ValueError(f"`{name}` must hold integer indices in [0, {size}). "
                             f"Received: {name}={values!r}")
        return indices.astype(np.int64)

    def affinity(self, users: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """Eq. 5 then N: each user's normalised response to each feature, at ``self.epoch``.

        Args:
            users: a user index, or int [n] of them.

        Returns:
            float [F] for one user, [n, F] for several; each row has sum |p_u,k| = 1.
        """
        u = self._check_indices(users, "users", self.n_users)
        params, sample = self.parameters, self.sample_items
        # Item terms of eq. 5, summed over R(I): one constant per user (see the module docstring).
        item_terms = np.zeros(u.shape)
        if "beta_item" in params:
            item_terms = item_terms + params["beta_item"][sample].sum()
        if "gamma_user" in params:
            item_terms = item_terms + params["gamma_user"][u] @ params["gamma_item"][sample].sum(0)
        # theta_u . (E_t h(k)) + beta'(t) . h(k), for every k at once.
        responses = params["theta_user"][u] @ self._kernel + self._visual_bias
        return _normalise(item_terms[..., None] + len(sample) * responses)

    def recommend(self, p_u: Any, k: int = 10, exclude: Iterable[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The k items with the largest p_u . f_i (maximum inner product over the item features).

        Args:
            p_u: float [F], an affinity vector (from ``affinity`` or a refinement).
            k: number of items; fewer come back when fewer are left after ``exclude``.
            exclude: item indices never to return (e.g. the user's previously reviewed items).

        Returns:
            (items int64 [k], scores float [k]), best first; equal scores in item order.
        """
        p = self._check_affinity(p_u)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
        scores = self.item_features @ p
        order = np.argsort(-scores, kind="stable")
        if exclude is not None:
            skipped = self._check_indices(list(exclude), "exclude", self.n_items)
            order = order[~np.isin(order, skipped)]
        top = order[:k]
        return top, scores[top]

    def towards_item(self, p_u: Any, item: int, phi: float | None = None) -> np.ndarray:
        """Eq. 6: N(p_u + phi f_i), the affinity vector moved towards item ``item``'s features."""
        p = self._check_affinity(p_u)
        i = _check_index(item, "item", self.n_items)
        step = self.phi if phi is None else _positive(phi, "phi")
        return _normalise(p + step * self.item_features[i])

    def towards_feature(self, p_u: Any, feature: int | str, phi_prime: float | None = None
                        ) -> np.ndarray:
        """Eq. 7: N(p_u + phi' h(k)), the affinity vector moved towards feature k.

        ``feature`` is an index or one of ``feature_names``."""
        p = self._check_affinity(p_u)
        k = self.feature_index(feature)
        step = self.phi_prime if phi_prime is None else _positive(phi_prime, "phi_prime")
        boosted = p.copy()
        boosted[k] += step
        return _normalise(boosted)

    def feature_influence(self, include_drift: bool = False) -> dict[str, Any]:
        """Eq. 8: each feature's time-weighted influence on the latent visual dimensions.

        Args:
            include_drift: also add delta_E(t) h(k) (not in the paper's eq. 8), giving the
                column sums of E_t.

        Returns:
            {"values": float [T, F] with values[t, k] = sum over K' of (E h(k)) ⊙ w(t),
             "feature_names": the F names, "epochs": int [T]}; T = 1 and w = 1 without epochs.
        """
        params = self.parameters
        weights = params.get("w", np.ones((1, params["E"].shape[0])))
        values = weights @ params["E"]
        if include_drift and "delta_E" in params:
            values = values + params["delta_E"].sum(axis=1)
        return self._trend(values)

    def feature_popularity(self) -> dict[str, Any]:
        """beta'(t)_k = beta'_k b(t)_k + delta_beta(t)_k: the global appeal of feature k at epoch t,
        added to every user's score of an item with that feature (the visual-bias drift).

        Returns:
            {"values": float [T, F], "feature_names": the F names, "epochs": int [T]}.
        """
        values = np.stack([self._epoch_kernel_and_bias(t)[1] for t in range(self.n_epochs)])
        return self._trend(values)

    def _trend(self, values: np.ndarray) -> dict[str, Any]:
        return {"values": values, "feature_names": self.feature_names,
                "epochs": np.arange(self.n_epochs)}
