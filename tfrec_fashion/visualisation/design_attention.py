"""Designs for ``tfrec-fashion visualize``: maps of customers' preference scores over images that
a design GAN generated for a customer (paper 003, III-D), beside the designs themselves.

A design_gan run designs with the customers and the image network of the DVBPR run it names
(``model.dvbpr_run``): a design maximises theta_u . Phi(Delta G(z, c)) - eta (D(G(z, c)) - 1)^2
(eq. 9). What the maps show is the recommender's half of that objective, DVBPR's preference
theta_u . Phi(x) (eq. 6), over each design x resized (nearest neighbour: eq. 9's Delta) to Phi's
input, so a map says which pixels of the design raise or lower the customer's score: the
parts of the garment the ascent was pushed by. It is DVBPR's own score-of-image (``attention``'s
"dvbpr" entry), applied to generated images instead of catalogue ones, so every method and both
sanity checks work as for DVBPR.

The first customer named is the one designed for; the others are columns beside them (how the
same designs score for other tastes). Without ``--category`` the first customer's designs are in
the category of their best catalogue item by DVBPR (retrieval's delta(u, c), eq. 8).

Files (into ``--out``, default ``RUN_DIR/attention``): ``design_attention_<method>.png`` (a
row per design: the design, then each customer's map and score), ``.npz`` (maps [C, n, H, W],
scores [C, n], images [n, H, W, 3], user_ids, design objective [n], category) and with
``--sanity`` ``sanity_design_<method>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from tfrec_fashion.visualisation.attention import (SCORE_OF_IMAGE, AttentionError, _indices,
                                                   attention_maps, plot_attention_grid)
from tfrec_fashion.visualisation.attention_files import WrittenMaps, _file_name
from tfrec_fashion.visualisation.sanity import sanity_checks, sanity_line

MODEL_NAME = "design_gan"
DEFAULT_DESIGNS = 6


def is_design_run(model_section: dict) -> bool:
    """Whether a run's ``model`` config section is a design GAN's (``visualize`` maps its
    designs instead of catalogue items)."""
    return model_section.get("name") == MODEL_NAME


def best_item_category(recipe, user: int) -> str:
    """The category of customer ``user``'s best catalogue item by DVBPR (retrieval's delta(u,
    c), eq. 8): where a design for them is shown when no category is asked for. ``recipe``: a
    design_gan run's (its ``user_vectors``, ``item_vectors``, ``item_category``, ``categories``)."""
    best = int(np.argmax(recipe.item_vectors @ recipe.user_vectors[user]))
    return recipe.categories[int(recipe.item_category[best])]


def write_design_maps(run_dir: str | Path, users: Sequence[str], out: str | Path,
                      method: str, category: str | None = None, n: int | None = None,
                      eta: float | None = None, seed: int = 0,
                      sanity: bool = False) -> tuple[WrittenMaps, str]:
    """Designs ``n`` images (default ``DEFAULT_DESIGNS``, at most the run's restarts) for
    ``users[0]`` in ``category`` and maps every named customer's
    DVBPR preference over them (module docstring); returns what was written and the category.

    Raises:
        AttentionError: no customer, an unknown customer or category, ``n`` outside [1, the
            run's restarts].
    """
    from tfrec_fashion.models.design import upscale
    from tfrec_fashion.training.harness import load_run  # TensorFlow starts here

    if not users:
        raise AttentionError("name at least one customer (--user): the designs are the first "
                             "one's")
    _, recipe, model = load_run(run_dir)
    indices = _indices(users, [str(u) for u in np.asarray(recipe.dataset.users.ids)],
                       "customer")
    restarts = recipe.model_config.design_restarts
    n = min(DEFAULT_DESIGNS, restarts) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= restarts:
        raise AttentionError(f"designs to draw must be in [1, {restarts}] (the run's restarts). "
                             f"Received: n={n!r}")
    categories = list(recipe.categories)
    if category is None:
        category = best_item_category(recipe, indices[0])
    if category not in categories:
        raise AttentionError(f"unknown category {category!r}; this GAN designs "
                             f"{', '.join(categories)}")
    eta = recipe.model_config.design_eta if eta is None else float(eta)
    designer = recipe.designer(model)
    designs, objective = designer.design(indices[0], categories.index(category), n, eta, seed)
    images = upscale(designs, recipe.dvbpr.image_shape[:2]).numpy()  # eq. 9's Delta
    dvbpr_recipe, dvbpr = recipe.dvbpr_recipe, recipe.dvbpr
    score = SCORE_OF_IMAGE["dvbpr"](dvbpr_recipe, dvbpr, recipe.user_vectors[indices])
    maps = attention_maps(score, images, method)
    scores = score.scores(images)
    out = Path(out)
    stem = f"design_attention_{_file_name(method)}"
    labels = [f"design {row + 1}" for row in range(n)]
    captions = [[f"objective {value:.2f}" if column == 0 else "" for value in objective]
                for column in range(len(indices))]
    png = plot_attention_grid(
        images, maps, scores, labels, list(users), out / f"{stem}.png",
        f"{method} attention of each customer's preference theta_u . Phi over {users[0]}'s "
        f"designs in {category!r} (eta {eta:g}, seed {seed})", captions)
    arrays = out / f"{stem}.npz"
    np.savez_compressed(arrays, maps=maps, scores=scores, images=images,
                        user_ids=np.array(list(users)), objective=np.asarray(objective),
                        category=np.array(category))
    line = None
    if sanity:
        checks = sanity_checks("dvbpr", dvbpr_recipe, dvbpr, indices, images, method)
        checks["line"] = line = sanity_line(checks)
        (out / f"sanity_design_{_file_name(method)}.json").write_text(
            json.dumps(checks, indent=2, default=float))
    return WrittenMaps(png, arrays, sanity_line=line), category

