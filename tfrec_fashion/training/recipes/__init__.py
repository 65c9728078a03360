"""Recipes: for each model family, how its data is prepared, its model built and handed to its
evaluation protocol.

A recipe is the only model-specific piece the training harness needs; everything else (seeds,
distribution, ``fit``, checkpoints, resume, logs) is shared. It declares its evaluation
protocol (``protocol``, see ``evaluation.protocols``) and inherits the protocol's adapter
(``implicit.ImplicitRankingRecipe``, ``ratings.RatingRecipe``, ``pairs.PairVoteRecipe``),
so it keeps only what is its model's own: inputs, ``build_model``, ``datasets``, and how to read
the model's vectors or predictions. Item content comes from ``layers.item_content``.

Add a model by writing its config dataclass in ``training/model_configs.py`` (registered once
with ``@MODEL_CONFIGS.register("name")``, naming its recipe in ``RECIPE = "module:Class"``) and
the recipe class here; ``get_recipe`` imports the recipe a config names when it is first needed.
"""

from __future__ import annotations

from tfrec_fashion.training.recipes.base import (ItemEmbedder, Recipe, SolverRecipe, get_recipe,
                                                 recipe_class)

__all__ = ["ItemEmbedder", "Recipe", "SolverRecipe", "get_recipe", "recipe_class"]
