"""Configuration: YAML files -> typed dataclasses -> constructor arguments.

Every config section is a ``@dataclasses.dataclass`` whose fields are plain values, so a section
maps one to one onto a constructor. ``load_config`` reads a YAML file, applies command-line
overrides (``--set train.epochs=3``), and builds the dataclass tree, checking every key and type:
an unknown or mistyped key fails with a one-line ``ConfigError`` naming the key and the file.

Sections that choose between implementations (which model, which data source) are *tagged*: the
YAML mapping carries ``name:`` and a ``Registry`` maps that name onto the dataclass to build::

    MODEL_CONFIGS = Registry("model")

    @MODEL_CONFIGS.register("two_tower")
    @dataclasses.dataclass
    class TwoTowerConfig:
        name: str = "two_tower"
        embedding_dim: int = 32

A field annotated with ``Tagged[MODEL_CONFIGS]``-style metadata (see ``tagged``) is parsed by
looking ``name`` up in the registry.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml

from tfrec_fashion.errors import ConfigError

T = TypeVar("T")


class Registry:
    """Maps the ``name`` of a tagged config section onto the dataclass that holds it.

    Args:
        section: what the names name, for messages ("model", "data source").
        populate: modules whose import registers the classes; imported on first lookup, so
            that reading a config never depends on what the caller happened to import.
    """

    def __init__(self, section: str, populate: tuple[str, ...] = ()):
        self.section = section
        self.populate = populate
        self._classes: dict[str, type] = {}
        self._populated = not populate

    @property
    def classes(self) -> dict[str, type]:
        if not self._populated:
            self._populated = True
            for module in self.populate:
                importlib.import_module(module)
        return self._classes

    def register(self, name: str):
        """Class decorator registering a dataclass under ``name``."""

        def decorator(cls: type) -> type:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} must be a dataclass to be registered")
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.section} config {name!r} is registered twice")
            self._classes[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self.classes)


def tagged(registry: Registry, default: str | None = None) -> Any:
    """A dataclass field whose value is built by ``registry`` from the mapping's ``name`` key."""
    metadata = {"registry": registry, "default_name": default}
    if default is None:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(
        default_factory=lambda: registry.classes[default](), metadata=metadata)


# ----------------------------------------------------------------------------- parsing
def from_dict(cls: type[T], data: Any, source: str = "<config>", prefix: str = "") -> T:
    """Builds dataclass ``cls`` from a mapping, checking keys and types recursively.

    Args:
        cls: the dataclass to build.
        data: a mapping (e.g. parsed YAML).
        source: where the data came from (a file name), used in error messages.
        prefix: dotted path of ``data`` inside the whole config, used in error messages.

    Raises:
        ConfigError: naming the key, what was expected, what was received, and the source.
    """
    where = f"'{prefix}'" if prefix else "the top level"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{source}: unknown key '{_join(prefix, key)}'{_suggest(key, fields)}")
    values = {}
    for name, field in fields.items():
        key = _join(prefix, name)
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        registry = field.metadata.get("registry")
        if registry is not None:
            values[name] = _from_registry(registry, data[name], source, key,
                                          field.metadata.get("default_name"))
        else:
            values[name] = _convert(hints[name], data[name], source, key)
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{source}: {where}: {error}") from None


def _from_registry(registry: Registry, data: Any, source: str, key: str,
                   default_name: str | None = None) -> Any:
    if isinstance(data, Mapping) and "name" not in data and default_name is not None:
        data = {"name": default_name, **data}
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(f"{source}: '{key}' must be a mapping with a 'name' "
                          f"(one of {registry.names()}), got {_describe(data)}")
    name = data["name"]
    if name not in registry.classes:
        raise ConfigError(f"{source}: unknown {registry.section} '{key}.name: {name}'"
                          f"{_suggest(str(name), registry.classes)}; known: {registry.names()}")
    return from_dict(registry.classes[name], data, source, key)


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, source, key)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: '{key}' expects {_type_name(hint)}, got {_describe(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' expects a list, got {_describe(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: '{key}' expects {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, source, f"{key}[{i}]")
                         for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' expects a mapping, got {_describe(value)}")
        value_hint = args[1] if args else Any
        return {str(k): _convert(value_hint, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' expects true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' expects an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' expects a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' expects a string, got {_describe(value)}")
        return value
    raise TypeError(f"config type {hint!r} of '{key}' is not supported")


# ----------------------------------------------------------------------------- files and overrides
class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: PyYAML follows YAML 1.1, where ``1e-3`` (no
    dot) is a string, so ``learning_rate: 1e-3`` or ``--set train.learning_rate=1e-3`` would fail
    as "expects a number"; every other YAML person writes it so."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2's floats (``1e-3`` is a number); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | Path) -> dict:
    """Reads a YAML mapping, turning syntax errors into a one-line ConfigError with the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {_describe(data)}")
    return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Returns a copy of ``data`` with each ``dotted.key=value`` applied (value parsed as YAML).

    Overrides may create keys; unknown keys are caught by ``from_dict`` like any other.
    """
    import copy

    data = copy.deepcopy(data)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. train.epochs=3")
        try:
            value = parse_yaml(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {override!r}: the value is not valid YAML") from None
        node = data
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {override!r}: '{'.'.join(parts[:i + 1])}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = (), base: dict | None = None,
                base_source: str = "<defaults>") -> T:
    """Builds ``cls`` from layers, each overriding the one before: ``base`` (e.g. a preset's
    values), the YAML file at ``path``, then the ``KEY=VALUE`` ``overrides``."""
    data = dict(base or {})
    source = base_source
    if path is not None:
        data.update(read_yaml(path))
        source = str(path)
    if overrides:
        source += " with --set " + " ".join(overrides)
    return from_dict(cls, apply_overrides(data, overrides), source)


def to_dict(config: Any) -> Any:
    """Plain-Python (YAML-safe) form of a config dataclass tree; ``from_dict`` inverts it."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def save_config(config: Any, path: str | Path) -> Path:
    """Writes the resolved config as YAML (what a run actually used)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    return path


# ----------------------------------------------------------------------------- messages
def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _suggest(key: str, known: Mapping | list) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")
