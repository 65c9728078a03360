"""Which model versions are served, kept in step with the file system while requests run.

:class:`ModelManager` reads a TF Serving ``models.config`` (see ``model_config.py`` for base
path resolution and version policies) and runs one background thread that, every
``poll_seconds`` (``tensorflow_model_server --file_system_poll_wait_seconds``):

1. re-reads ``models.config`` when the file changed (models added, removed, policies and labels
   updated). A config that no longer parses, or whose ``version_labels`` point at a version that
   is not available for inference (below), is refused: the error is logged once and the
   previous config kept, and the file is checked again on every pass, so a refused config is
   taken as soon as the version its label names is exported;
2. for each model, lists the complete versions on disk (integer directories holding
   ``saved_model.pb``; ``.tmp-*`` exports in progress are invisible; an integer directory
   without ``saved_model.pb`` is skipped with one warning naming it) and applies the policy;
3. loads each wanted version that is not loaded: ``tf.saved_model.load`` and the approximate
   index (``servable.py``), then replays ``assets.extra/tf_serving_warmup_requests`` (a TFRecord
   of ``PredictionLog``, ``predict_log.request`` each) through the same Predict code clients use.
   Only then is the version AVAILABLE. A load or warm-up that fails marks the version END with
   the error in its status; it is retried only when its ``saved_model.pb`` changes;
4. unloads versions the policy no longer wants or that were deleted, but only once a wanted
   version is available (TF Serving's availability-preserving policy): a new version that fails
   leaves the previous one serving.

Swaps are atomic: each model's available versions are one dict replaced under a lock, and a
request holds a reference to the :class:`~.servable.Servable` it got, so a version unloaded
mid-request finishes that request. States follow ``ModelVersionStatus.State``: LOADING ->
AVAILABLE -> UNLOADING -> END (or LOADING -> END with an error).

A version label may point only at a version *available for inference*: one the model's version
policy serves out of the versions on disk that has not failed to load, i.e. AVAILABLE, or LOADING
/ about to load (TF Serving, without ``--allow_version_labels_for_unavailable_models``, accepts
only AVAILABLE; a version on disk that is still loading is accepted here, so a config can add a
version and label it in one edit, and a request for the label answers NOT_FOUND until it loads).

Start-up, as ``ServerCore`` (TF Serving's ``WaitUntilModelsAvailable``):
:meth:`ModelManager.load_until_available` loads every configured model in the calling thread
and returns once each has an available version; a version that fails to load raises
:class:`ModelLoadError`; while a model has no version on disk it waits (logging which model it
waits for), up to an optional timeout. The server listens only after it returns.

Usage::

    manager = ModelManager("/exports/models.config", poll_seconds=1.0)
    manager.load_until_available(timeout=600)           # optional: what start_server does
    manager.check_version_labels()
    manager.start()
    manager.wait_until_available("vbpr", timeout=60)
    servable = manager.servable("vbpr")                 # latest; or version=3 / label="stable"
    manager.stop()
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from . import model_config
from .contract import WARMUP_FILE
from .errors import (
    ServingError,
    from_exception,
    invalid_argument,
    not_found,
    tf_error_code,
)
from .predict import predict
from .servable import Servable, import_ann_index

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State


class ModelLoadError(RuntimeError):
    """A configured model's version failed to load while the server was starting."""


@dataclasses.dataclass(frozen=True)
class VersionState:
    """A version's ``ModelVersionStatus``: its state and, after a failure, the error.

    ``fingerprint`` identifies the ``saved_model.pb`` that failed, so the same files are not
    loaded again on every poll.
    """

    state: int
    error_code: int = 0
    error_message: str = ""
    fingerprint: tuple | None = None

    @property
    def failed(self) -> bool:
        return self.state == State.END and self.error_code != 0


@dataclasses.dataclass
class ModelStream:
    """One configured model: its config, where its versions live, what is loaded."""

    config: model_server_config_pb2.ModelConfig
    base_path: str
    servables: dict[int, Servable] = dataclasses.field(default_factory=dict)  # replaced whole
    states: dict[int, VersionState] = dataclasses.field(default_factory=dict)
    warned_empty: bool = False
    warned_incomplete: set[str] = dataclasses.field(default_factory=set)  # directories

    @property
    def name(self) -> str:
        return self.config.name


def warm_up(servable: Servable) -> int:
    """Replays the version's warm-up Predict requests; returns how many ran.

    Raises:
        ServingError: a request failed (the version must not become available).
        ValueError: a record is not a Predict log.
    """
    path = os.path.join(servable.path, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        entry = prediction_log_pb2.PredictionLog.FromString(record)
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            raise ValueError(f"{path} record {count}: {kind} warm-up is not supported "
                             "(Predict requests only)")
        try:
            predict(servable, entry.predict_log.request)
        except ServingError as error:
            raise ServingError(error.code, f"warm-up request {count} ({path}): "
                                           f"{error.message}") from None
        count += 1
    return count


def _fingerprint(directory: str) -> tuple:
    stat = os.stat(os.path.join(directory, model_config.SAVED_MODEL_FILE))
    return stat.st_mtime_ns, stat.st_size


class ModelManager:
    """Serves the versions ``models.config`` asks for (see the module docstring).

    Args:
        model_config_file: path of a TF Serving ``models.config``; watched for changes.
        models: instead of a file, model configs (``--model_name`` / ``--model_base_path``);
            relative base paths are then resolved against the working directory.
        poll_seconds: how often the file system (and the config file) is checked.
        container_root: the container path the export's base paths start with.
        ann_loader: ``directory -> AnnIndex`` for ``assets.extra/ann/`` (None: never load).
    """

    def __init__(self, model_config_file: str | None = None, *,
                 models: list[model_server_config_pb2.ModelConfig] | None = None,
                 poll_seconds: float = 1.0, container_root: str = "/models",
                 ann_loader: Callable[[str], object] | None = import_ann_index):
        if (model_config_file is None) == (models is None):
            raise ValueError("give exactly one of model_config_file and models")
        self.config_file = model_config_file and os.path.abspath(model_config_file)
        self.poll_seconds = poll_seconds
        self.container_root = container_root
        self._ann_loader = ann_loader
        self._lock = threading.Lock()
        self._streams: dict[str, ModelStream] = {}
        self._config_stamp = None
        self._refused_stamp = None  # a changed config that was refused, logged once
        self._listeners: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._apply_models(models if models is not None else self._read_config_file())

    # === Background polling ===

    def start(self) -> ModelManager:
        """Starts the polling thread (its first pass runs at once)."""
        self._thread = threading.Thread(target=self._poll_forever, name="model-manager",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stops polling and drops every loaded version."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            for stream in self._streams.values():
                stream.servables = {}

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Calls ``listener()`` after every poll (e.g. to update health checking)."""
        self._listeners.append(listener)

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad pass
                log.exception("model manager poll failed; retrying in %.1f s", self.poll_seconds)
            self._stop.wait(self.poll_seconds)

    def poll_once(self) -> None:
        """One pass: config changes, then each model's versions (see the module docstring)."""
        self._reload_config_if_changed()
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            if self._stop.is_set():
                return
            self._reconcile(stream)
        for listener in self._listeners:
            listener()

    # === Config ===

    def _read_config_file(self) -> list[model_server_config_pb2.ModelConfig]:
        stat = os.stat(self.config_file)
        self._config_stamp = (stat.st_mtime_ns, stat.st_size)
        return model_config.read_config(self.config_file)

    def _reload_config_if_changed(self) -> None:
        if self.config_file is None:
            return
        stamp = None
        try:
            stat = os.stat(self.config_file)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._config_stamp:
                return
            models = model_config.read_config(self.config_file)
            self._check_labels(models)
        except (OSError, ValueError) as error:
            refused = stamp or "unreadable"
            if refused != self._refused_stamp:  # once per edit, not on every pass
                log.error("model config %s refused, keeping the previous one: %s",
                          self.config_file, error)
                self._refused_stamp = refused
            return
        self._config_stamp, self._refused_stamp = stamp, None
        log.info("model config %s changed: serving %s", self.config_file,
                 [model.name for model in models])
        self._apply_models(models)

    def check_version_labels(self) -> None:
        """Refuses the current config if a version label names a version not available for
        inference (see the module docstring).

        Raises:
            ValueError: TF Serving's message for each such label.
        """
        with self._lock:
            models = [stream.config for stream in self._streams.values()]
        self._check_labels(models)

    def _check_labels(self, models: list[model_server_config_pb2.ModelConfig]) -> None:
        problems = [problem for config in models if config.version_labels
                    for problem in model_config.label_problems(
                        config, self._versions_for_labels(config))]
        if problems:
            raise ValueError("; ".join(problems))

    def _versions_for_labels(self, config: model_server_config_pb2.ModelConfig) -> set[int]:
        """The versions of ``config``'s model a label may name: served by its policy, on disk,
        not failed to load (the files unchanged since)."""
        on_disk = model_config.discover_versions(self._base_path(config))
        with self._lock:
            stream = self._streams.get(config.name)
            states = dict(stream.states) if stream else {}
        return {version for version in model_config.select_versions(config, on_disk)
                if not (version in states and states[version].failed
                        and states[version].fingerprint == _fingerprint(on_disk[version]))}

    def _base_path(self, config: model_server_config_pb2.ModelConfig) -> str:
        config_dir = os.path.dirname(self.config_file) if self.config_file else os.getcwd()
        return model_config.resolve_base_path(config.base_path, config_dir, self.container_root)

    def _apply_models(self, models: list[model_server_config_pb2.ModelConfig]) -> None:
        with self._lock:
            streams = {}
            for config in models:
                base_path = self._base_path(config)
                stream = self._streams.get(config.name) or ModelStream(config, base_path)
                stream.config, stream.base_path = config, base_path
                streams[config.name] = stream
            for name in set(self._streams) - set(streams):
                log.info("model %s removed from the config: unloading it", name)
                self._streams[name].servables = {}
            self._streams = streams

    # === Loading and unloading ===

    def _reconcile(self, stream: ModelStream) -> None:
        on_disk, incomplete = model_config.scan_versions(stream.base_path)
        self._warn_incomplete(stream, incomplete)
        if not on_disk and not stream.warned_empty:
            log.warning("no versions of model %s under %s yet (integer directories holding "
                        "saved_model.pb)", stream.name, stream.base_path)
        stream.warned_empty = not on_disk
        wanted = model_config.select_versions(stream.config, on_disk)
        for version in sorted(wanted, reverse=True):  # newest first: available soonest
            if version not in stream.servables and self._should_load(stream, version,
                                                                     on_disk[version]):
                self._load(stream, version, on_disk[version])
        self._unload_unwanted(stream, wanted)

    @staticmethod
    def _warn_incomplete(stream: ModelStream, incomplete: dict[int, str]) -> None:
        for version, directory in sorted(incomplete.items()):
            if directory not in stream.warned_incomplete:
                log.warning("model %s: version directory %s holds no %s, so it is not served "
                            "(empty, or an export still being copied in: write each version "
                            "to a temporary directory and rename it into place)", stream.name,
                            directory, model_config.SAVED_MODEL_FILE)
        stream.warned_incomplete = set(incomplete.values())

    def _should_load(self, stream: ModelStream, version: int, directory: str) -> bool:
        previous = stream.states.get(version)
        return previous is None or not previous.failed or \
            previous.fingerprint != _fingerprint(directory)

    def _load(self, stream: ModelStream, version: int, directory: str) -> None:
        fingerprint = _fingerprint(directory)
        self._set_state(stream, version, VersionState(State.LOADING))
        started = time.monotonic()
        try:
            servable = Servable.load(stream.name, version, directory, self._ann_loader)
            warmed = warm_up(servable)
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the server
            failure = from_exception(error, f"loading {directory}")
            log.error("model %s version %d failed to load; previous versions keep serving: "
                      "%s", stream.name, version, failure)
            self._set_state(stream, version, VersionState(
                State.END, tf_error_code(failure.code), failure.message, fingerprint))
            return
        with self._lock:
            stream.servables = {**stream.servables, version: servable}
            stream.states[version] = VersionState(State.AVAILABLE)
        log.info("model %s version %d available (%.1f s, %d warm-up requests, signatures %s)",
                 stream.name, version, time.monotonic() - started, warmed,
                 servable.signature_names)

    def _unload_unwanted(self, stream: ModelStream, wanted: set[int]) -> None:
        unwanted = set(stream.servables) - wanted
        if not unwanted or (wanted and not wanted & set(stream.servables)):
            return  # nothing to drop, or nothing wanted is available yet: keep serving
        for version in sorted(unwanted):
            self._set_state(stream, version, VersionState(State.UNLOADING))
            with self._lock:
                stream.servables = {v: s for v, s in stream.servables.items() if v != version}
                stream.states[version] = VersionState(State.END)
            log.info("model %s version %d unloaded", stream.name, version)

    def _set_state(self, stream: ModelStream, version: int, state: VersionState) -> None:
        with self._lock:
            stream.states[version] = state

    # === Start-up ===

    def load_until_available(self, timeout: float | None = None) -> None:
        """Loads the configured models in the calling thread and returns once each has an
        available version (TF Serving's start-up; see the module docstring).

        Args:
            timeout: seconds to wait for models with no version on disk; None waits forever.

        Raises:
            ModelLoadError: a version failed to load (or to warm up); names model and error.
            TimeoutError: some model still had no available version after ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        announced = set()
        while True:
            self.poll_once()
            with self._lock:
                streams = list(self._streams.values())
            failures = [f"model {stream.name} version {version} failed to load: "
                        f"{state.error_message}"
                        for stream in streams for version, state in sorted(stream.states.items())
                        if state.failed]
            if failures:
                raise ModelLoadError("; ".join(failures))
            awaited = [stream for stream in streams if not stream.servables]
            if not awaited:
                return
            for stream in awaited:
                if stream.name not in announced:
                    log.info("waiting for model %s before listening: %s", stream.name,
                             self._describe(stream))
                    announced.add(stream.name)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no version of model(s) {[s.name for s in awaited]} became "
                                   f"available within the start-up timeout of {timeout} s: "
                                   + "; ".join(f"{s.name}: {self._describe(s)}"
                                               for s in awaited))
            wait = self.poll_seconds if deadline is None else \
                min(self.poll_seconds, max(deadline - time.monotonic(), 0.0))
            if self._stop.wait(wait):
                raise ModelLoadError("stopped while waiting for models to load")

    # === Lookups (called from request threads) ===

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._streams)

    def available_versions(self, name: str) -> list[int]:
        """Versions of ``name`` that answer requests now (empty for an unknown model)."""
        with self._lock:
            stream = self._streams.get(name)
            return sorted(stream.servables) if stream else []

    def servable(self, name: str, version: int | None = None, label: str | None = None
                 ) -> Servable:
        """The servable a request's ModelSpec names: a version, a label, or the latest.

        Raises:
            ServingError: NOT_FOUND for an unknown model or a version that is not available,
                INVALID_ARGUMENT for an unknown label (TF Serving's codes).
        """
        stream = self._stream(name, f"Latest({name})" if version is None else
                              f"Specific({name}, {version})")
        with self._lock:
            servables, labels = stream.servables, dict(stream.config.version_labels)
        if label:
            version = self._label_version(name, label, labels)
        if version is None:
            if not servables:
                raise not_found(f"Servable not found for request: Latest({name}): no version of "
                                f"model {name!r} is available yet ({self._describe(stream)})")
            return servables[max(servables)]
        if version not in servables:
            raise not_found(f"Servable not found for request: Specific({name}, {version}): "
                            f"available versions of {name!r}: {sorted(servables)}")
        return servables[version]

    def version_states(self, name: str, version: int | None = None, label: str | None = None
                       ) -> list[tuple[int, VersionState]]:
        """``[(version, state)]``, newest first, as GetModelStatus reports them.

        Raises:
            ServingError: NOT_FOUND when the model or the version is unknown.
        """
        with self._lock:
            stream = self._streams.get(name)
            states = dict(stream.states) if stream else {}
            labels = dict(stream.config.version_labels) if stream else {}
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        if label:
            version = self._label_version(name, label, labels)
        if version is None:
            return sorted(states.items(), reverse=True)
        if version not in states:
            raise not_found(f"Could not find version {version} of model {name}")
        return [(version, states[version])]

    def wait_until_available(self, name: str, timeout: float = 60.0,
                             version: int | None = None) -> int:
        """Blocks until ``name`` (or that version of it) is available; returns the version.

        Raises:
            TimeoutError: not available in time; the message gives the versions' states.
        """
        deadline = time.monotonic() + timeout
        while True:
            versions = self.available_versions(name)
            if versions and (version is None or version in versions):
                return version if version is not None else max(versions)
            if time.monotonic() > deadline:
                stream = self._streams.get(name)
                raise TimeoutError(f"model {name!r} version {version or 'any'} not available "
                                   f"after {timeout} s: "
                                   f"{self._describe(stream) if stream else 'not configured'}")
            time.sleep(0.02)

    def _stream(self, name: str, request: str) -> ModelStream:
        with self._lock:
            stream = self._streams.get(name)
            names = sorted(self._streams)
        if stream is None:
            raise not_found(f"Servable not found for request: {request}: model {name!r} is not "
                            f"in the model config; models served: {names}")
        return stream

    @staticmethod
    def _label_version(name: str, label: str, labels: dict[str, int]) -> int:
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label} (labels of "
                                   f"model {name!r}: {labels or 'none'})")
        return labels[label]

    def _describe(self, stream: ModelStream) -> str:
        """Versions and states in words, e.g. "version 2 LOADING; version 1 END (error ...)"."""
        with self._lock:
            states = sorted(stream.states.items(), reverse=True)
        if not states:
            return (f"no versions found under {stream.base_path} "
                    f"({model_config.describe_policy(stream.config)})")
        return "; ".join(
            f"version {version} {State.Name(state.state)}"
            + (f" ({state.error_message})" if state.error_message else "")
            for version, state in states)
