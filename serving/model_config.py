"""Reading a TF Serving ``models.config`` and deciding which versions of each model to serve.

A ``models.config`` is a text-format ``tensorflow.serving.ModelServerConfig``, the file
``tensorflow_model_server --model_config_file`` reads and ``tfrec_fashion_export`` writes::

    model_config_list {
      config {
        name: "vbpr"
        base_path: "/models/vbpr"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }     # or all {} / specific {...}
        version_labels { key: "stable" value: 1 }
      }
    }

Pure functions, no threads and no TensorFlow runtime:

- :func:`read_config` parses the file (a clear ``ValueError`` naming the file and the problem).
- :func:`resolve_base_path` finds a model's versions on this machine: an existing absolute path
  as is; a relative path against the directory holding ``models.config``; a path under the
  container root (``/models``, where ``serving/docker-compose.yml`` mounts the export base) that
  does not exist here maps into the directory holding ``models.config``
  (``/models/vbpr`` -> ``<dir of models.config>/vbpr``), so one export base serves both in the
  ``tensorflow/serving`` container and with our server.
- :func:`discover_versions` lists the complete versions under a base path: integer-named
  directories holding ``saved_model.pb``. Anything else (``.tmp-3-abc`` exports in progress, an
  integer directory whose ``saved_model.pb`` is not written yet) is invisible;
  :func:`scan_versions` also names those integer directories, so the server can say why a
  directory that looks like a version is not served.
- :func:`select_versions` applies the version policy: ``latest`` (the ``num_versions`` highest,
  default 1), ``all``, or ``specific``.
- :func:`label_problems` checks ``version_labels``: TF Serving refuses a config whose label
  points at a version that is not available for inference (FAILED_PRECONDITION, "Request to
  assign label to version N of model M, which is not currently available for inference").
"""

from __future__ import annotations

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

ModelConfig = model_server_config_pb2.ModelConfig
SAVED_MODEL_FILE = "saved_model.pb"


def parse_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """The whole ``ModelServerConfig`` at ``path``; ValueError naming the file if malformed."""
    with open(path) as handle:
        text = handle.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"{path} is not a ModelServerConfig text proto: {error}") from None
    return config


def read_config(path: str) -> list[ModelConfig]:
    """The model entries of the ``models.config`` at ``path``.

    Raises:
        ValueError: the file is not a ModelServerConfig text proto, uses ``custom_model_config``,
            names a model twice, or a model has no name, no base_path or a platform other than
            "tensorflow".
    """
    config = parse_config(path)
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path}: custom_model_config is not supported; use model_config_list")
    models = list(config.model_config_list.config)
    _check_models(path, models)
    return models


def _check_models(path: str, models: list[ModelConfig]) -> None:
    names = [model.name for model in models]
    for model in models:
        if not model.name or not model.base_path:
            raise ValueError(f"{path}: every model needs a name and a base_path; got "
                             f"name={model.name!r} base_path={model.base_path!r}")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model.name!r} has model_platform "
                             f"{model.model_platform!r}; only 'tensorflow' is served")
        if names.count(model.name) > 1:
            raise ValueError(f"{path}: model {model.name!r} is configured twice")


def resolve_base_path(base_path: str, config_dir: str, container_root: str = "/models") -> str:
    """Where a model's versions live on this machine (rules in the module docstring)."""
    if not os.path.isabs(base_path):
        return os.path.normpath(os.path.join(config_dir, base_path))
    if os.path.exists(base_path):
        return base_path
    root = container_root.rstrip("/")
    if base_path == root or base_path.startswith(root + "/"):
        return os.path.normpath(os.path.join(config_dir, base_path[len(root):].lstrip("/")))
    return base_path


def discover_versions(base_path: str) -> dict[int, str]:
    """Complete versions under ``base_path``: ``{version: directory}``; {} if it does not exist."""
    return scan_versions(base_path)[0]


def scan_versions(base_path: str) -> tuple[dict[int, str], dict[int, str]]:
    """``(complete, incomplete)`` from one listing of ``base_path``: integer directories with
    ``saved_model.pb``, and those without it (empty, or an export copied in place rather than
    renamed into it), each ``{version: directory}``."""
    complete, incomplete = {}, {}
    for version, directory in _version_directories(base_path):
        has_model = os.path.isfile(os.path.join(directory, SAVED_MODEL_FILE))
        (complete if has_model else incomplete)[version] = directory
    return complete, incomplete


def _version_directories(base_path: str) -> list[tuple[int, str]]:
    try:
        entries = os.listdir(base_path)
    except FileNotFoundError:
        return []
    return [(int(entry), os.path.join(base_path, entry)) for entry in entries
            if entry.isdigit() and os.path.isdir(os.path.join(base_path, entry))]


def select_versions(model: ModelConfig, available: set[int] | list[int]) -> set[int]:
    """The versions ``model``'s version policy asks to serve, out of those on disk."""
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(available)
    if choice == "specific":
        return set(policy.specific.versions) & set(available)
    newest_first = sorted(available, reverse=True)
    return set(newest_first[:max(policy.latest.num_versions, 1)])


def describe_policy(model: ModelConfig) -> str:
    """The policy in words, for logs and error messages."""
    policy = model.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all versions"
    if choice == "specific":
        return f"versions {sorted(policy.specific.versions)}"
    return f"latest {max(policy.latest.num_versions, 1)}"


def label_problems(model: ModelConfig, servable_versions: set[int]) -> list[str]:
    """What is wrong with ``model``'s version labels: one message per label whose version is not
    in ``servable_versions`` (the versions available for inference, see ``ModelManager``)."""
    return [f"Request to assign label to version {version} of model {model.name}, which is not "
            f"currently available for inference (label {label!r}; versions available: "
            f"{sorted(servable_versions)})"
            for label, version in sorted(model.version_labels.items())
            if version not in servable_versions]
