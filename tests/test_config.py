"""Config loading: strict keys and types with errors naming the key and the file, overrides,
tagged sections, and every shipped config in configs/ loading cleanly."""

import dataclasses
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from tfrec_fashion.config import (Registry, apply_overrides, from_dict, load_config, save_config,
                                  tagged, to_dict)
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.run_config import RunConfig

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
SHAPES = Registry("shape")


@SHAPES.register("circle")
@dataclasses.dataclass
class Circle:
    name: str = "circle"
    radius: float = 1.0


@dataclasses.dataclass
class Inner:
    size: int = 3
    mode: Literal["a", "b"] = "a"
    scale: Optional[float] = None
    tags: list[str] = dataclasses.field(default_factory=list)
    pair: tuple[int, int] = (1, 2)


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    shape: object = tagged(SHAPES, default="circle")
    flag: bool = False


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_values_are_typed_and_defaults_kept(tmp_path):
    path = write(tmp_path, "inner: {size: 5, mode: b, scale: 2, tags: [x, y], pair: [3, 4]}\n"
                           "shape: {name: circle, radius: 3}\n")
    config = load_config(Outer, path)
    assert config.inner == Inner(size=5, mode="b", scale=2.0, tags=["x", "y"], pair=(3, 4))
    assert isinstance(config.inner.scale, float)
    assert config.shape == Circle(radius=3.0)
    assert config.flag is False


@pytest.mark.parametrize("text, message", [
    ("inner: {sise: 5}\n", r"c\.yaml: unknown key 'inner\.sise' \(did you mean 'size'\?\)"),
    ("flagg: true\n", r"c\.yaml: unknown key 'flagg' \(did you mean 'flag'\?\)"),
    ("inner: {size: ten}\n", r"c\.yaml: 'inner\.size' expects an integer, got str 'ten'"),
    ("inner: {size: 2.5}\n", r"'inner\.size' expects an integer, got float 2\.5"),
    ("inner: {mode: c}\n", r"'inner\.mode' must be one of \['a', 'b'\], got 'c'"),
    ("flag: yes please\n", r"'flag' expects true or false"),
    ("inner: {tags: x}\n", r"'inner\.tags' expects a list"),
    ("inner: {pair: [1]}\n", r"'inner\.pair' expects 2 values, got 1"),
    ("inner: 3\n", r"'inner' must be a mapping, got int 3"),
    ("shape: {name: square}\n", r"unknown shape 'shape\.name: square'; known: \['circle'\]"),
    ("shape: 5\n", r"'shape' must be a mapping with a 'name'"),
    ("shape: {name: circle, radios: 2}\n", r"unknown key 'shape\.radios' \(did you mean 'radius'"),
    ("- 1\n- 2\n", r"the top level must be a mapping"),
    ("inner: {size: [1, 2}\n", r"c\.yaml: line 1, column \d+: invalid YAML"),
])
def test_bad_configs_fail_in_one_line_naming_key_and_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(Outer, write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.yaml does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_overrides_are_parsed_as_yaml_and_validated(tmp_path):
    path = write(tmp_path, "inner: {size: 5}\n")
    config = load_config(Outer, path, ["inner.size=7", "flag=true", "shape.radius=0.5",
                                       "inner.tags=[a, b]"])
    assert (config.inner.size, config.flag, config.shape.radius) == (7, True, 0.5)
    assert config.inner.tags == ["a", "b"]
    with pytest.raises(ConfigError, match=r"with --set inner\.sise=1: unknown key 'inner\.sise'"):
        load_config(Outer, path, ["inner.sise=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(Outer, path, ["inner.size"])
    with pytest.raises(ConfigError, match="'inner.size' is not a mapping"):
        apply_overrides({"inner": {"size": 1}}, ["inner.size.x=1"])


def test_exponent_floats_are_numbers_in_files_overrides_and_sweeps(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 as a string; users write it for learning rates everywhere.
    from tfrec_fashion.training.sweep import parse_sweep

    path = write(tmp_path, "shape: {name: circle, radius: 1e-3}\n")
    assert load_config(Outer, path).shape.radius == pytest.approx(1e-3)
    assert load_config(Outer, path, ["shape.radius=2.5E+2"]).shape.radius == 250.0
    assert load_config(Outer, path, ["inner.tags=[1e-3x]"]).inner.tags == ["1e-3x"]
    assert parse_sweep(["train.learning_rate=1e-3,5e-3"]) == [["train.learning_rate=0.001"],
                                                             ["train.learning_rate=0.005"]]


def test_to_dict_round_trips_through_yaml(tmp_path):
    config = Outer(inner=Inner(size=9, tags=["q"], pair=(5, 6)), shape=Circle(radius=2.0), flag=True)
    path = save_config(config, tmp_path / "saved.yaml")
    assert from_dict(Outer, yaml.safe_load(path.read_text())) == config
    assert to_dict(config)["shape"] == {"name": "circle", "radius": 2.0}


def test_run_config_requires_a_model_and_checks_values(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        load_config(RunConfig, write(tmp_path, "seed: 1\n"))
    with pytest.raises(ConfigError, match=r"train\.epochs must be positive\. Received: epochs=0"):
        load_config(RunConfig, write(tmp_path, "model: {name: two_tower}\ntrain: {epochs: 0}\n"))
    with pytest.raises(ConfigError, match=r"'train\.strategy' must be one of"):
        load_config(RunConfig, write(tmp_path, "model: {name: two_tower}\n"
                                               "train: {strategy: tpu}\n"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    from tfrec_fashion.cli import config_class_for

    config = load_config(config_class_for(path), path)
    assert to_dict(config)
