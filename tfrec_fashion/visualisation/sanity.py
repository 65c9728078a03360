"""Sanity checks of attention maps (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

A saliency map can look plausible while explaining nothing: an edge detector draws convincing
outlines of any garment. Two checks tell a map that explains the model's score from one that
does not, each a rank correlation (Spearman, per map, averaged) between two stacks of maps:

- **Model-parameter randomisation** (their section 3): the image network's weights (Phi: every
  layer of the score-of-image but its last, the customers' head) re-initialised to a fresh
  draw of their initialisers, the customers' vectors kept. Maps that explain the trained network
  must not survive losing its weights: mean |rho| below ``PARAMETER_RANDOMISATION_MAX`` (an
  inverted map counts as the same structure, as they also count it).
- **Customer randomisation** (ours, the recommender's analogue of their data randomisation): the
  pair of customers whose vectors are most alike (largest cosine) and the most opposite pair
  (smallest), on the same items. Maps of a *user-conditioned* score must differ more for
  opposite customers than for alike ones: rho(alike) - rho(opposite) at least
  ``CUSTOMER_GAP_MIN``. Saliency and SmoothGrad map |d score / d pixel|, which is the same for
  theta_u and -theta_u: they fail this check by construction, and the line says so.

``sanity_checks`` runs both for a request and returns the numbers; ``sanity_line`` is the one
line ``tfrec-fashion visualize --sanity`` prints (and writes beside the maps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from tfrec_fashion.visualisation.attention import (SCORE_OF_IMAGE, ScoreOfImage, attention_maps,
                                                   user_vectors)

PARAMETER_RANDOMISATION_MAX = 0.7
CUSTOMER_GAP_MIN = 0.3

# a weight's last name component -> the layer attribute holding its initialiser
_INITIALISERS = {"kernel": "kernel_initializer", "bias": "bias_initializer",
                 "depthwise_kernel": "depthwise_initializer", "gamma": "gamma_initializer",
                 "beta": "beta_initializer", "moving_mean": "moving_mean_initializer",
                 "moving_variance": "moving_variance_initializer"}


def rank_correlations(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps of two stacks [..., H, W]. A constant map
    (e.g. a GradCAM that ReLU zeroed: it points nowhere) has no ranking: beside a map that
    points somewhere it counts 0 (they share no structure), beside an equal constant map 1."""
    from scipy.stats import spearmanr

    values = []
    for a, b in zip(first.reshape(-1, *first.shape[-2:]), second.reshape(-1, *second.shape[-2:])):
        if a.std() > 0 and b.std() > 0:
            values.append(spearmanr(a.ravel(), b.ravel())[0])
        else:
            values.append(float(np.array_equal(a, b)))
    return np.array(values)


@contextlib.contextmanager
def reinitialised_image_network(score: ScoreOfImage, seed: int = 1) -> Iterator[ScoreOfImage]:
    """``score`` with every layer but its last (the customers' head) re-drawn from its
    initialisers; the trained weights are put back when the block ends (the score-of-image
    shares its layers with the trained model)."""
    rng = np.random.default_rng(seed)
    saved = []
    try:
        for layer in score.model.layers[:-1]:
            for variable in layer.weights:
                attribute = _INITIALISERS.get(variable.name.split("/")[-1].split(":")[0])
                initialiser = getattr(layer, attribute, None) if attribute else None
                if initialiser is None:
                    continue
                config = initialiser.get_config()
                if "seed" in config:
                    config["seed"] = int(rng.integers(2**31 - 1))
                fresh = type(initialiser).from_config(config)
                saved.append((variable, variable.numpy()))
                variable.assign(fresh(variable.shape, variable.dtype))
        if not saved:
            raise ValueError(f"{score.model.name} has no initialised weights before its head to "
                             "re-initialise")
        yield score
    finally:
        for variable, value in saved:
            variable.assign(value)


def parameter_randomisation(score: ScoreOfImage, images: np.ndarray, method: str,
                            seed: int = 1) -> dict:
    """Mean |rho| between the trained maps and those of the re-initialised image network, over
    the trained maps that point somewhere (vary): a trained map that is flat (a CAM's ReLU found
    nothing raising the score) has no structure to lose and is left out."""
    trained = attention_maps(score, images, method)
    with reinitialised_image_network(score, seed) as randomised:
        random = attention_maps(randomised, images, method)
    trained, random = (maps.reshape(-1, *maps.shape[-2:]) for maps in (trained, random))
    varies = trained.std(axis=(1, 2)) > 0
    rho = _mean(np.abs(rank_correlations(trained[varies], random[varies])))
    return {"mean_abs_rho": rho, "maps": int(varies.sum()),
            "passed": bool(rho < PARAMETER_RANDOMISATION_MAX)}


def customer_randomisation(key: str, recipe, model, images: np.ndarray, method: str,
                           items: Sequence[int] | None = None) -> dict:
    """rho between the maps of the most alike pair of customers and of the most opposite pair
    (cosine of their vectors), on the same images (``items``: theirs, for a pair model)."""
    theta = user_vectors(recipe, model)
    if theta.shape[1] == 0:  # a model that is not personalised: every customer's maps are one
        nan = float("nan")
        return {"alike_cosine": nan, "opposite_cosine": nan, "rho_alike": nan,
                "rho_opposite": nan, "gap": nan, "passed": False}
    unit = theta / np.maximum(np.linalg.norm(theta, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, np.nan)
    alike = np.unravel_index(np.nanargmax(cosine), cosine.shape)
    opposite = np.unravel_index(np.nanargmin(cosine), cosine.shape)
    score = SCORE_OF_IMAGE[key](recipe, model, theta[[*alike, *opposite]], items)
    maps = attention_maps(score, images, method)
    rho_alike = _mean(rank_correlations(maps[0], maps[1]))
    rho_opposite = _mean(rank_correlations(maps[2], maps[3]))
    gap = rho_alike - rho_opposite
    return {"alike_cosine": float(cosine[alike]), "opposite_cosine": float(cosine[opposite]),
            "rho_alike": rho_alike, "rho_opposite": rho_opposite, "gap": gap,
            "passed": bool(np.isfinite(gap) and gap >= CUSTOMER_GAP_MIN)}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def sanity_checks(key: str, recipe, model, users: Sequence[int], images: np.ndarray,
                  method: str, items: Sequence[int] | None = None) -> dict:
    """Both checks for the customers at ``users`` on ``images`` [B, H, W, 3] in [0, 1] (the
    images of ``items``, which a pair model's partners depend on)."""
    from tfrec_fashion.visualisation.attention import build_score_of_image

    score = build_score_of_image(key, recipe, model, users, items)
    return {"method": method, "items": int(len(images)),
            "parameter_randomisation": parameter_randomisation(score, images, method),
            "customer_randomisation": customer_randomisation(key, recipe, model, images, method,
                                                             items)}


def sanity_line(checks: dict) -> str:
    """One line a person reads: each check's number, its bound and whether it passed."""
    parameter, customer = checks["parameter_randomisation"], checks["customer_randomisation"]
    verdict = {True: "passed", False: "FAILED"}
    return (f"sanity ({checks['method']}, {checks['items']} items): parameter randomisation "
            f"mean |rho| {parameter['mean_abs_rho']:.2f} (< {PARAMETER_RANDOMISATION_MAX}: "
            f"{verdict[parameter['passed']]}); customer randomisation rho "
            f"{customer['rho_alike']:.2f} for the most alike customers (cosine "
            f"{customer['alike_cosine']:.2f}) vs {customer['rho_opposite']:.2f} for the most "
            f"opposite ({customer['opposite_cosine']:.2f}), gap {customer['gap']:.2f} "
            f"(>= {CUSTOMER_GAP_MIN}: {verdict[customer['passed']]})")
