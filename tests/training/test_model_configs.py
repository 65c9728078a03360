"""Every model config agrees with its model's constructor: each field is a constructor argument
with the constructor's default (or one the recipe reads itself, listed in ``RECIPE_FIELDS``), so
a YAML file and a direct ``Model(...)`` call mean the same model, and recipes pass the fields
with ``model_arguments`` instead of copying them one by one. Each config is the model's one
registration: its ``RECIPE`` imports to the recipe that trains it, held to a registered
evaluation protocol."""

import dataclasses
import inspect

import pytest

from tfrec_fashion.evaluation.protocols import PROTOCOLS
from tfrec_fashion.models.complete_the_look import CompleteTheLook
from tfrec_fashion.models.dvbpr import DVBPR
from tfrec_fashion.models.lsgan import ConditionalLSGAN
from tfrec_fashion.models.pair_compatibility import PairCompatibility
from tfrec_fashion.models.pan import PAN
from tfrec_fashion.models.partial_dual import PartialDual
from tfrec_fashion.models.psa_net import PSANet
from tfrec_fashion.models.stynet import StyNet
from tfrec_fashion.models.two_tower import TwoTowerRetrieval
from tfrec_fashion.models.vbpr import VBPR
from tfrec_fashion.training.model_configs import MODEL_CONFIGS, model_arguments
from tfrec_fashion.training.recipes import Recipe, get_recipe, recipe_class
from tfrec_fashion.training.run_config import TrainConfig

# The model class each registered config builds (its recipe's ``build_model``).
MODELS = {"two_tower": TwoTowerRetrieval, "bpr_mf": VBPR, "vbpr": VBPR, "tvbpr": VBPR,
          "ivbpr": VBPR, "dvbpr": DVBPR, "stynet": StyNet, "partial_dual": PartialDual,
          "pair_compatibility": PairCompatibility, "psa_net": PSANet, "pan": PAN,
          "complete_the_look": CompleteTheLook, "design_gan": ConditionalLSGAN}


def test_every_registered_config_is_checked_here():
    assert set(MODEL_CONFIGS.names()) == set(MODELS)


def _base_config(config_class):
    """The config a preset extends (TVBPR, I-VBPR -> VBPR), or the class itself."""
    registered = set(MODEL_CONFIGS.classes.values())
    bases = [base for base in config_class.__mro__[1:] if base in registered]
    return bases[0] if bases else config_class


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_fields_are_constructor_arguments_with_its_defaults(name):
    config_class = MODEL_CONFIGS.classes[name]
    parameters = inspect.signature(MODELS[name].__init__).parameters
    recipe_fields = set(config_class.RECIPE_FIELDS) if hasattr(config_class, "RECIPE_FIELDS") \
        else set()
    base = _base_config(config_class)
    for field in dataclasses.fields(config_class):
        if field.name == "name" or field.name in recipe_fields:
            continue
        assert field.name in parameters, (
            f"{name}: config field {field.name!r} is no argument of {MODELS[name].__name__}; "
            "name it as the constructor does, or list it in RECIPE_FIELDS")
        default = parameters[field.name].default
        if base is not config_class and getattr(base(), field.name) != field.default:
            continue  # a preset's own default (TVBPR's n_time_epochs)
        assert default is not inspect.Parameter.empty and default == field.default, (
            f"{name}.{field.name}: config default {field.default!r}, "
            f"{MODELS[name].__name__} default {default!r}")
    for field in recipe_fields:
        assert field in {f.name for f in dataclasses.fields(config_class)}, field


@pytest.mark.parametrize("name", sorted(MODELS))
def test_presets_change_defaults_not_fields(name):
    config_class = MODEL_CONFIGS.classes[name]
    base = _base_config(config_class)
    assert [f.name for f in dataclasses.fields(config_class)] == \
        [f.name for f in dataclasses.fields(base)]


def test_model_arguments_leave_out_the_name_and_the_recipes_fields():
    arguments = model_arguments(MODEL_CONFIGS.classes["vbpr"]())
    assert "name" not in arguments and "feature_source" not in arguments
    assert arguments["l2_embedding"] == 0.0001
    assert model_arguments(MODEL_CONFIGS.classes["dvbpr"]()) == {"lambda_theta": 1.0}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_config_names_a_recipe_that_imports_and_declares_a_protocol(name):
    config_class = MODEL_CONFIGS.classes[name]
    recipe = recipe_class(config_class)
    assert issubclass(recipe, Recipe) and not inspect.isabstract(recipe), config_class.RECIPE
    assert recipe.protocol in PROTOCOLS, f"{recipe.__name__}.protocol={recipe.protocol!r}"
    built = get_recipe(config_class(), TrainConfig(), seed=3)
    assert type(built) is recipe and built.seed == 3


def test_a_config_without_a_recipe_is_refused_by_name():
    @dataclasses.dataclass
    class Orphan:
        name: str = "orphan"

    with pytest.raises(TypeError, match="Orphan names no recipe: give it RECIPE"):
        get_recipe(Orphan(), TrainConfig())

    @dataclasses.dataclass
    class Misnamed:
        RECIPE = "tfrec_fashion.training.model_configs:MODEL_CONFIGS"
        name: str = "misnamed"

    with pytest.raises(TypeError, match=r"Misnamed.RECIPE must name a Recipe subclass. "
                                        r"Received: RECIPE='tfrec_fashion.training.model_configs:"
                                        r"MODEL_CONFIGS'"):
        get_recipe(Misnamed(), TrainConfig())
