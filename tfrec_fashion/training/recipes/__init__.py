"""Recipes: for each model name, how its data is prepared, its model built and evaluated.

A recipe is the only model-specific piece the training harness needs; everything else (seeds,
distribution, ``fit``, checkpoints, resume, logs) is shared. Add a model by writing its config
dataclass in ``training/model_configs.py``, a recipe module here decorated with
``@register_recipe("name")``, and a line in ``RECIPE_MODULES``.
"""

from __future__ import annotations

from tfrec_fashion.training.recipes.base import (ItemEmbedder, RECIPE_MODULES, Recipe,
                                                 SolverRecipe, get_recipe, register_recipe)

__all__ = ["ItemEmbedder", "RECIPE_MODULES", "Recipe", "SolverRecipe", "get_recipe",
           "register_recipe"]
