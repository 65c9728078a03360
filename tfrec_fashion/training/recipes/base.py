"""The recipe interface, and how a model config finds its recipe (``RECIPE`` on the config
class, imported when first needed)."""

from __future__ import annotations

import abc
import pkgutil
from typing import Any, ClassVar

import tfrec_fashion  # noqa: F401
import tensorflow as tf

from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.evaluation.protocols import get_protocol
from tfrec_fashion.training.run_config import TrainConfig
from tfrec_fashion.training.serving_parts import (  # noqa: F401  (ItemEmbedder: recipes' API)
    ItemEmbedder, Parts, retrieval_parts)


class Recipe(abc.ABC):
    """How one model family is trained and evaluated by the shared harness.

    Args:
        model_config: the model's config dataclass (its fields are constructor arguments).
        train_config: the run's ``TrainConfig``.
        seed: the run's seed, for data sampling.

    The harness calls, in order: ``prepare(dataset)`` (splits, samplers, anything derived from
    the data), ``build_model()`` inside the distribution strategy's scope, ``datasets()``,
    ``callbacks(model)`` (e.g. a validation metric logged each epoch so the best epoch is chosen
    on validation), and after training ``evaluate(model)``.

    Every recipe declares the evaluation protocol it is held to (``protocol``, a name in
    ``evaluation.protocols.PROTOCOLS``); the protocol's adapters here (``implicit.py``,
    ``ratings.py``) build its evaluation and pass it what the model gives, so a model's recipe
    keeps only the model-specific hooks (``user_vectors``, ``item_vectors``, ``predict``).
    """

    #: The evaluation protocol: "implicit", "ratings", ... (``evaluation.protocols``); the
    #: harness records it in metrics.json, and tables and the demo read runs by it.
    protocol: ClassVar[str]

    def __init__(self, model_config: Any, train_config: TrainConfig, seed: int = 0):
        self.model_config = model_config
        self.train_config = train_config
        self.seed = seed

    @abc.abstractmethod
    def prepare(self, dataset: FashionDataset) -> None:
        """Splits the data and keeps what the other steps need."""

    @abc.abstractmethod
    def build_model(self) -> tf.keras.Model:
        """Returns the uncompiled Keras model (the harness compiles it with the optimizer)."""

    @abc.abstractmethod
    def datasets(self) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
        """Returns the (train, validation) tf.data pipelines; validation may be None."""

    def callbacks(self, model: tf.keras.Model) -> list[tf.keras.callbacks.Callback]:
        """Extra callbacks run before checkpointing (so their logs can be monitored)."""
        return []

    @abc.abstractmethod
    def evaluate(self, model: tf.keras.Model) -> dict[str, float]:
        """Returns the held-out metrics of a trained model (and oracle/baseline rows if known)."""

    def protocol_evaluation(self, dataset: FashionDataset) -> Any:
        """The evaluation of this recipe's ``protocol`` on ``dataset`` (its split, metrics and
        baselines), e.g. an ``evaluation.implicit.ImplicitEvaluation``."""
        evaluation = get_protocol(self.protocol).evaluation_class()
        return evaluation(dataset, seed=self.seed, model_name=self.model_config.name)

    def item_embedder(self, model: tf.keras.Model) -> ItemEmbedder | None:
        """How the export embeds a new item from its content; None for id-only models."""
        return None

    def embeddings(self, model) -> Any:
        """The customer embeddings a run shares with later models (``data.embeddings``,
        ``<run_dir>/embeddings.npz``: PSA-Net reads them), or None for a recipe that learns
        none (the rating recipes return them)."""
        return None

    def serving_parts(self, model) -> Parts:
        """What the export serves, written into the run directory when training ends
        (``training.serving_parts``): by default the retrieval head's parts, from the
        recipe's ``user_vectors(model)``, ``item_vectors(model)`` and ``item_embedder(model)``.
        A family with another head returns that head's parts."""
        return retrieval_parts(self, model)


def recipe_class(config_class: type) -> type[Recipe]:
    """The recipe a model config class names in ``RECIPE`` ("module:Class"), imported now, so
    the CLI reads and checks a config before TensorFlow loads."""
    path = getattr(config_class, "RECIPE", None)
    if not isinstance(path, str):
        raise TypeError(f"{config_class.__name__} names no recipe: give it "
                        "RECIPE: ClassVar[str] = 'module:RecipeClass' (training.model_configs)")
    recipe = pkgutil.resolve_name(path)
    if not (isinstance(recipe, type) and issubclass(recipe, Recipe)):
        raise TypeError(f"{config_class.__name__}.RECIPE must name a Recipe subclass. "
                        f"Received: RECIPE={path!r} -> {recipe!r}")
    return recipe


def get_recipe(model_config: Any, train_config: TrainConfig, seed: int = 0) -> Recipe:
    """Instantiates the recipe ``model_config``'s class names (``RECIPE``)."""
    return recipe_class(type(model_config))(model_config, train_config, seed)


class SolverRecipe(Recipe):
    """A recipe whose model is fitted by its own solver instead of Keras ``fit`` (Partial
    Dual's Riemannian solvers in SciPy). The harness calls ``prepare``, ``solve``,
    ``save_model``, ``evaluate`` and ``solver_summary``; ``load_model`` rebuilds a finished run.
    """

    def build_model(self):
        raise TypeError(f"{self.model_config.name} is fitted by its solver, not Keras fit")

    def datasets(self):
        raise TypeError(f"{self.model_config.name} is fitted by its solver, not Keras fit")

    @abc.abstractmethod
    def solve(self, state_dir, log_dir):
        """Fits and returns the model; checkpoints into ``state_dir`` as it goes and, when
        that folder holds a checkpoint of an interrupted run, resumes from it."""

    @abc.abstractmethod
    def save_model(self, model, directory) -> None:
        """Writes the fitted model into ``directory``."""

    @abc.abstractmethod
    def load_model(self, directory):
        """Reads a model written by ``save_model``."""

    def solver_summary(self, model) -> dict[str, Any]:
        """Facts for metrics.json: iterations, time to converge, final gap, rank, ..."""
        return {}

    def history(self, model) -> dict[str, list[float]]:
        """Per-iteration log, column -> values (the ``TrainResult.history``)."""
        return {}
