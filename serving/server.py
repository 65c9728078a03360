"""A gRPC server speaking TensorFlow Serving's API, so TF Serving clients work unchanged.

Services (the official ``tensorflow_serving.apis`` protos and stubs):

- ``tensorflow.serving.PredictionService``: Predict (``model_spec`` name / version /
  version_label / signature_name, ``output_filter``; the response's ``model_spec`` says which
  version answered), GetModelMetadata (``metadata_field: "signature_def"``), Classify / Regress /
  MultiInference (UNIMPLEMENTED: our signatures are Predict signatures; the message lists them).
- ``tensorflow.serving.ModelService``: GetModelStatus (HandleReloadConfigRequest is
  UNIMPLEMENTED: edit ``models.config`` instead, it is re-read on change).
- ``grpc.health.v1.Health``: service ``""`` is SERVING while every configured model has an
  available version, and each model name is SERVING while that model has one; everything is
  NOT_SERVING from the moment shutdown begins.
- Optionally TF Serving's REST API on a second port (``rest.py``).

Start-up, as ``tensorflow_model_server``: the configured models are loaded (and warmed up)
first, and the gRPC and REST ports are bound and opened only once every configured model has an
available version, so a client that connects as soon as the port opens is answered. A version
that fails to load at start-up stops start-up (``ModelLoadError``, naming the model and the
error); a model with no version on disk yet is waited for, logging which, for
``startup_timeout`` seconds (default: forever, as TF Serving). A version label that points at a
version not available for inference refuses the config (``ValueError``, TF Serving's
"Request to assign label to version N of model M, which is not currently available for
inference"); the ports are checked before loading, so a port in use fails at once. The gRPC port
is bound exclusively (no ``SO_REUSEPORT``): a second server on the same port is an ``OSError``
naming the address, not a silent second listener.

After start-up, versions are loaded, warmed up, swapped and unloaded in the background
(``model_manager.py``); bad requests get TF Serving's status codes with messages naming the
problem (``errors.py``, ``predict.py``); nothing a client sends can stop the server.

Shutdown drains: :meth:`Server.stop` (and SIGTERM / SIGINT on the command line) sets health
NOT_SERVING, stops accepting calls (new gRPC calls get UNAVAILABLE), lets calls in flight finish
for up to ``grace`` seconds (``--shutdown_grace_seconds``, default 30), then unloads the models.

Python::

    from tfrec_fashion_serving.server import start_server

    server = start_server("/exports/models.config", port=0, rest_port=0, poll_seconds=1.0)
    print(server.port, server.rest_port)        # the ports actually bound; models are loaded
    ...
    server.stop(grace=30)

Command line (flags named as ``tensorflow_model_server``'s)::

    python -m tfrec_fashion_serving.server --model_config_file=/exports/models.config \\
        --port=8500 --rest_api_port=8501 --file_system_poll_wait_seconds=1 \\
        --model_startup_timeout_seconds=600 --shutdown_grace_seconds=30

Exit status: 0 after a signal-initiated shutdown; 1 when a model failed to load or did not
become available within ``--model_startup_timeout_seconds``; 2 for a bad config or flag, or a
port that could not be bound.

Differences from ``tensorflow_model_server``: ``--host`` defaults to 127.0.0.1 (pass 0.0.0.0
to listen on every interface); ``--port=0`` binds a free port and logs it; base paths under
``/models`` that do not exist map next to ``models.config`` (``model_config.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent import futures

import grpc
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from . import service
from .errors import ServingError, from_exception
from .limits import DEFAULT_LIMITS, Limits
from .limits import add_flags as add_limit_flags
from .limits import from_args as limits_from_args
from .model_manager import ModelLoadError, ModelManager
from .predict import Deadline, predict
from .rest import RestServer
from .servable import import_ann_index
from .ui import page_url

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30.0
OVERALL_HEALTH = ""


def _answer(context: grpc.ServicerContext, compute: Callable[[], object], what: str):
    """``compute()``'s response, or the call aborted with the ServingError's code and message."""
    try:
        return compute()
    except ServingError as error:
        failure = error
    except Exception as error:  # noqa: BLE001 - a bug answers INTERNAL, the server carries on
        log.exception("%s failed", what)
        failure = from_exception(error, what)
    context.abort(failure.code, failure.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over a :class:`ModelManager`."""

    def __init__(self, manager: ModelManager, limits: Limits = DEFAULT_LIMITS):
        self.manager = manager
        self.limits = limits

    def Predict(self, request, context):
        return _answer(context, lambda: predict(
            service.servable_for(self.manager, request.model_spec), request,
            Deadline.of(context), self.limits), "Predict")

    def GetModelMetadata(self, request, context):
        return _answer(context, lambda: service.metadata_response(
            service.servable_for(self.manager, request.model_spec),
            list(request.metadata_field)), "GetModelMetadata")

    def Classify(self, request, context):
        return self._refuse(request.model_spec, "Classify", context)

    def Regress(self, request, context):
        return self._refuse(request.model_spec, "Regress", context)

    def MultiInference(self, request, context):
        if not request.tasks:
            refusal = service.refuse_method("MultiInference")
            context.abort(refusal.code, refusal.message)
        return self._refuse(request.tasks[0].model_spec, "MultiInference", context)

    def _refuse(self, spec, method: str, context):
        def refusal():
            servable = service.servable_for(self.manager, spec)
            raise service.refuse_unsupported(servable, spec.signature_name, method)

        return _answer(context, refusal, method)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: GetModelStatus."""

    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        return _answer(context, lambda: service.status_response(
            self.manager, request.model_spec), "GetModelStatus")

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not supported: edit the models.config file "
                      "instead; the server re-reads it when it changes")


class HealthReporter:
    """Keeps ``grpc.health.v1`` statuses in step with the models' available versions."""

    def __init__(self, manager: ModelManager, servicer: health.HealthServicer):
        self.manager = manager
        self.servicer = servicer
        self._reported: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self) -> None:
        statuses = {name: self._status(bool(self.manager.available_versions(name)))
                    for name in self.manager.model_names()}
        statuses[OVERALL_HEALTH] = self._status(  # as TF Serving: every configured model
            all(status == health_pb2.HealthCheckResponse.SERVING for status in statuses.values()))
        with self._lock:
            for name in set(self._reported) - set(statuses):  # models removed from the config
                statuses[name] = health_pb2.HealthCheckResponse.NOT_SERVING
            for name, status in statuses.items():
                if self._reported.get(name) != status:
                    self.servicer.set(name, status)
            self._reported = statuses

    @staticmethod
    def _status(serving: bool) -> int:
        return (health_pb2.HealthCheckResponse.SERVING if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING)


class Server:
    """A running server: gRPC (and REST) over a :class:`ModelManager`.

    Attributes:
        port: the bound gRPC port.
        rest_port: the bound REST port, or None without REST.
        manager: the :class:`ModelManager`.
    """

    def __init__(self, manager: ModelManager, grpc_server: grpc.Server, port: int,
                 health_servicer: health.HealthServicer, rest=None):
        self.manager = manager
        self.port = port
        self._grpc_server = grpc_server
        self._health = health_servicer
        self._rest = rest
        self.rest_port = rest.port if rest is not None else None
        self._stopped = threading.Event()

    def wait_until_available(self, model: str, timeout: float = 60.0,
                             version: int | None = None) -> int:
        """Blocks until ``model`` (that version, if given) serves; returns the version."""
        return self.manager.wait_until_available(model, timeout, version)

    def wait(self) -> None:
        """Blocks until the server stops."""
        self._grpc_server.wait_for_termination()

    def stop(self, grace: float | None = DEFAULT_SHUTDOWN_GRACE_SECONDS) -> None:
        """Drains, then unloads every model.

        Health turns NOT_SERVING, new calls are refused (gRPC: UNAVAILABLE), calls in flight
        get up to ``grace`` seconds to finish (gRPC and REST together; 0 or None: cancelled at
        once); then the models are unloaded. A second call returns at once.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        grpc_stopped = self._grpc_server.stop(grace)  # refuses new calls now, drains in flight
        if self._rest is not None:
            self._rest.stop(grace or 0.0)
        grpc_stopped.wait()
        self.manager.stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_server(model_config_file: str | None = None, host: str = "127.0.0.1",
                 port: int = 8500, rest_port: int | None = None, poll_seconds: float = 1.0, *,
                 models: list[model_server_config_pb2.ModelConfig] | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, max_threads: int = 16,
                 rest_timeout_seconds: float = 30.0, container_root: str = "/models",
                 ann_loader: Callable[[str], object] | None = import_ann_index,
                 limits: Limits = DEFAULT_LIMITS, wait_for_models: bool = True,
                 startup_timeout: float | None = None) -> Server:
    """Loads the configured models, then starts listening (see the module docstring).

    Args:
        model_config_file: a TF Serving ``models.config`` (or ``models``, a list of
            ``ModelConfig``, for one model given on the command line).
        host: the interface to listen on.
        port: the gRPC port; 0 picks a free one (``Server.port`` says which).
        rest_port: TF Serving's REST API on this port (0 picks one); None: no REST.
        poll_seconds: how often new versions and config changes are looked for.
        max_message_size: gRPC max send message length in bytes (requests are bounded by
            ``limits.max_request_bytes``).
        max_threads: gRPC worker threads (REST answers each connection in its own thread).
        rest_timeout_seconds: REST predict deadline.
        container_root: the container path export base paths start with.
        ann_loader: loads ``assets.extra/ann/`` (None: no approximate index).
        limits: per-request bounds (``limits.py``), enforced by gRPC and REST alike.
        wait_for_models: load the configured models before listening and return once each
            has an available version (TF Serving's start-up); False listens at once and loads
            in the background (for tests that export versions after starting).
        startup_timeout: with ``wait_for_models``, seconds to wait for a model with no version
            on disk; None waits forever, as TF Serving.

    Raises:
        ValueError: the model config is invalid, or a version label names a version that is
            not available for inference.
        OSError: a port could not be bound (the message names the address).
        ModelLoadError: a configured model's version failed to load.
        TimeoutError: a model had no available version within ``startup_timeout``.
    """
    _refuse_used_port("gRPC", host, port)  # before minutes of loading, not after
    if rest_port is not None:
        _refuse_used_port("REST", host, rest_port)
    manager = ModelManager(model_config_file, models=models, poll_seconds=poll_seconds,
                           container_root=container_root, ann_loader=ann_loader)
    try:
        if wait_for_models:
            manager.load_until_available(startup_timeout)
        manager.check_version_labels()
        return _listen(manager, host, port, rest_port, max_message_size, max_threads,
                       rest_timeout_seconds, limits)
    except BaseException:
        manager.stop()
        raise


def _listen(manager: ModelManager, host: str, port: int, rest_port: int | None,
            max_message_size: int, max_threads: int, rest_timeout_seconds: float,
            limits: Limits) -> Server:
    """Binds gRPC (and REST), starts answering and the manager's polling."""
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=limits.grpc_max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", limits.max_request_bytes),
                 ("grpc.max_send_message_length", max_message_size),
                 ("grpc.so_reuseport", 0)])  # a second server on the port must fail
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(manager, limits), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), grpc_server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    bound = _bind(grpc_server, host, port)
    rest = None
    try:
        if rest_port is not None:
            rest = RestServer(manager, host, rest_port, timeout_seconds=rest_timeout_seconds,
                              limits=limits)
    except OSError as error:
        grpc_server.stop(None)
        raise OSError(f"could not bind REST to {_address(host, rest_port)}: {error}") from None
    reporter = HealthReporter(manager, health_servicer)
    reporter.update()
    manager.add_listener(reporter.update)
    grpc_server.start()
    manager.start()
    if rest is not None:
        rest.start()
    return Server(manager, grpc_server, bound, health_servicer, rest)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(grpc_server: grpc.Server, host: str, port: int) -> int:
    address = _address(host, port)
    try:
        bound = grpc_server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"could not bind gRPC to {address} (in use by another server?): "
                      f"{error}") from None
    if bound == 0:
        raise OSError(f"could not bind gRPC to {address} (in use by another server?)")
    return bound


def _refuse_used_port(what: str, host: str, port: int) -> None:
    """OSError naming ``host:port`` when another socket listens there (port 0: nothing to
    check). A quick probe; the real bind after loading stays exclusive too."""
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            probe.bind(address)
    except OSError as error:
        raise OSError(f"could not bind {what} to {_address(host, port)}: "
                      f"{error.strerror or error}") from None


def build_parser(prog: str = "python -m tfrec_fashion_serving.server"
                 ) -> argparse.ArgumentParser:
    """The command line, with ``tensorflow_model_server``'s flag names."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve exported SavedModels over TensorFlow Serving's gRPC (and REST) API.")
    models = parser.add_argument_group("models (a config file, or one model)")
    models.add_argument("--model_config_file", help="TF Serving models.config (text proto)")
    models.add_argument("--export_base", help="an export base written by `tfrec-fashion "
                        "export`: serves its models.config")
    models.add_argument("--model_name", default="default",
                        help="with --model_base_path: the one model's name")
    models.add_argument("--model_base_path", help="serve one model from this directory")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    parser.add_argument("--rest_api_port", type=int, default=0,
                        help="REST API port (0, the default: no REST API, as TF Serving)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000)
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="how often to look for new versions and config changes")
    parser.add_argument("--max_message_size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE,
                        help="gRPC max send message length in bytes (requests: "
                        "--max_request_bytes)")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="threads one TensorFlow op may use (0: TensorFlow's choice, the "
                        "core count); 1 keeps a large batch's chunk to one core")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="TensorFlow ops run at once (0: TensorFlow's choice)")
    parser.add_argument("--grpc_max_threads", type=int, default=16,
                        help="worker threads answering requests")
    parser.add_argument("--container_model_root", default="/models",
                        help="base paths under this container path map next to models.config")
    parser.add_argument("--model_startup_timeout_seconds", type=float, default=0,
                        help="before listening, how long to wait for a model with no version "
                        "on disk (0, the default: forever, as tensorflow_model_server)")
    parser.add_argument("--shutdown_grace_seconds", type=float,
                        default=DEFAULT_SHUTDOWN_GRACE_SECONDS,
                        help="on SIGTERM / SIGINT, how long requests in flight may take to "
                        "finish before they are cancelled")
    add_limit_flags(parser)
    return parser


def _models_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser):
    if args.export_base:
        if args.model_config_file:
            parser.error("give --export_base or --model_config_file, not both")
        args.model_config_file = os.path.join(args.export_base, "models.config")
        if not os.path.isfile(args.model_config_file):
            parser.error(f"{args.export_base} holds no models.config: export a model into it "
                         "first (tfrec-fashion export RUN_DIR --base ...)")
    if bool(args.model_config_file) == bool(args.model_base_path):
        parser.error("give exactly one of --export_base, --model_config_file and "
                     "--model_base_path")
    if args.model_config_file:
        return None
    return [model_server_config_pb2.ModelConfig(name=args.model_name,
                                                base_path=args.model_base_path,
                                                model_platform="tensorflow")]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Runs the server until SIGINT / SIGTERM; returns the exit status."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    models = _models_from_args(args, parser)  # resolves --export_base first
    # Before TensorFlow's runtime starts (the first op), as tensorflow_model_server's flags.
    if args.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    if args.tensorflow_inter_op_parallelism:
        tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
    try:
        server = start_server(
            args.model_config_file, host=args.host, port=args.port,
            rest_port=args.rest_api_port or None,
            poll_seconds=args.file_system_poll_wait_seconds,
            models=models, max_message_size=args.max_message_size,
            max_threads=args.grpc_max_threads,
            rest_timeout_seconds=args.rest_api_timeout_in_ms / 1000,
            container_root=args.container_model_root, limits=limits_from_args(args),
            startup_timeout=args.model_startup_timeout_seconds or None)
    except (ModelLoadError, TimeoutError) as error:  # TimeoutError is an OSError: first
        print(f"error: models not available, not serving: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # SIGINT while loading: nothing is listening yet
        return 130
    log.info("serving gRPC on %s:%d%s", args.host, server.port,
             f", REST on {args.host}:{server.rest_port}" if server.rest_port else "")
    if server.rest_port:
        print(f"browse page: {page_url(args.host, server.rest_port)}", flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():  # only there can signals be caught
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, frame: stop.set())
    while not stop.wait(0.5):
        pass
    log.info("stopping: health NOT_SERVING, new calls refused, calls in flight get up to "
             "%g s (--shutdown_grace_seconds)", args.shutdown_grace_seconds)
    server.stop(args.shutdown_grace_seconds)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
