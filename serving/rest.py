"""TensorFlow Serving's REST API (``--rest_api_port``), over the same models and checks as gRPC.

Endpoints (``[/versions/N | /labels/L]`` picks a version; without it, the latest)::

    GET  /v1/models/NAME[/versions/N|/labels/L]            status, as TF Serving:
         {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   {"model_spec": {...}, "metadata":
                                                            {"signature_def": {...}}}
    POST /v1/models/NAME[/versions/N|/labels/L]:predict
    POST /v1/models/NAME[/versions/N|/labels/L]:classify   501, gRPC's UNIMPLEMENTED message
    POST /v1/models/NAME[/versions/N|/labels/L]:regress    (our signatures are Predict ones)
    GET  /ui/, /ui/api/...                                 the browse page and its JSON API
                                                           (``ui.py``; not TF Serving's)

Predict bodies, as TF Serving's:

    row format       {"signature_name": "recommend", "instances": [{"user_id": "u1", "k": 5}, ...]}
                     -> {"predictions": [{"item_ids": [...], "scores": [...], ...}, ...]}
    columnar format  {"signature_name": "recommend", "inputs": {"user_id": ["u1"], "k": [5]}}
                     -> {"outputs": {"item_ids": [[...]], "scores": [[...]], ...}}

An instance may be a bare value (and ``inputs`` a bare tensor) when the signature has a single
input without a default. Inputs a request leaves out take the SignatureDef's defaults. Strings
are JSON strings (``{"b64": "..."}`` for binary input); numbers are JSON numbers (``true`` /
``false`` only for DT_BOOL inputs, a float never for an integer input); string outputs come back
as JSON strings (bytes decoded as UTF-8, or ``{"b64": ...}`` when they are not UTF-8 or the
output alias ends in ``_bytes``, TF Serving's rule); -inf scores are written ``-Infinity``.
Errors are ``{"error": "..."}`` with TF Serving's HTTP status for the gRPC code (400, 404, 500,
501, 504).

Hostile traffic costs a bounded amount (the :class:`~.limits.Limits` flags):

    --max_request_bytes      a Content-Length over it is 413, answered from the headers: the
                             body is never read or waited for (what already arrived is
                             discarded), and the connection is closed. A POST without
                             Content-Length, or with Transfer-Encoding (chunked), is 411; a
                             Content-Length that is not one non-negative integer is 400 (these
                             close the connection too).
    --rest_api_read_timeout_seconds
                             a connection may wait this long idle for its next request, and a
                             request, from its first byte, must arrive whole (headers and body)
                             within it; else the connection is closed (408 when its headers
                             were in but the body did not arrive), so a client that trickles
                             bytes holds a thread no longer than one that sends nothing.
    --rest_api_max_connections
                             connections served at once (each holds a thread); one more is
                             answered 503 at once from the accepting thread and closed.

JSON nested too deeply for the parser or the conversion (about 1000 levels; no tensor needs more
than numpy's 64) is 400. :meth:`RestServer.stop` drains: the port is closed (a connection
accepted meanwhile is answered 503), idle connections are closed, requests in flight get
``grace`` seconds to finish (answered with ``Connection: close``), then theirs are closed.

Validation, defaults, running and errors are ``predict.py``'s, shared with gRPC; only the JSON
to numpy conversion (:func:`array_from_json`), the JSON layout and HTTP live here.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import reprlib
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2

from . import service, ui
from .errors import (
    ServingError,
    from_exception,
    http_status,
    invalid_argument,
    not_found,
)
from .limits import DEFAULT_LIMITS, Limits
from .model_manager import ModelManager
from .predict import (
    Deadline,
    dtype_name,
    find_signature,
    output_aliases,
    prepare_inputs,
    run_signature,
)

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<method>[A-Za-z]+))?$")
_METHODS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
# The deepest JSON nesting read as a tensor (numpy's ndarray.flat handles at most 32 dimensions).
MAX_JSON_RANK = 32
# Closing a connection discards at most this much of the input already received and unread.
DISCARD_BYTES = 1024 * 1024


# === JSON <-> numpy ===

def array_from_json(signature_name: str, alias: str, info, value) -> np.ndarray:
    """A JSON value as a numpy array of the SignatureDef's dtype (INVALID_ARGUMENT otherwise)."""
    where = f"Input {alias!r} of signature {signature_name!r}"
    _check_depth(where, value)
    try:
        if info.dtype == types_pb2.DT_STRING:
            array = _array(where, _to_bytes(where, value), dtype=object)
            if any(not isinstance(item, bytes) for item in array.flat):
                raise invalid_argument(f"{where} expects a tensor of strings, received "
                                       f"{_shown(value)}")
            return array
        return _numeric_array(where, info.dtype, value)
    except RecursionError:
        raise invalid_argument(f"{where}: JSON nested too deeply to be a tensor") from None


def _check_depth(where: str, value) -> None:
    """INVALID_ARGUMENT for lists nested more than numpy's 32 dimensions deep, found along the
    first items without recursion (shallower rank mismatches are ``check_shape``'s)."""
    depth, item = 0, value
    while isinstance(item, list) and item:
        depth, item = depth + 1, item[0]
        if depth > MAX_JSON_RANK:
            raise invalid_argument(f"{where}: JSON nested too deeply: lists more than "
                                   f"{MAX_JSON_RANK} deep; "
                                   f"a tensor has at most {MAX_JSON_RANK} dimensions")


def _shown(value) -> str:
    """A value for a message, cut short: a request's value may be megabytes long or deep."""
    return reprlib.repr(value)


def _array(where: str, value, dtype=None) -> np.ndarray:
    try:
        return np.array(value, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise invalid_argument(f"{where}: not a rectangular tensor ({error})") from None


def _to_bytes(where: str, value):
    if isinstance(value, list):
        return [_to_bytes(where, item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as error:
            raise invalid_argument(f"{where}: invalid base64 in {_shown(value)}: {error}"
                                   ) from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid_argument(f"{where} expects strings, received {_shown(value)}")


def _numeric_array(where: str, dtype: int, value) -> np.ndarray:
    numpy_dtype = tf.as_dtype(dtype).as_numpy_dtype
    array = _array(where, value)
    if numpy_dtype == np.bool_:
        allowed = "b"
    else:  # JSON true / false are not numbers, even where numpy would read them as 1 / 0
        allowed = "iu" if np.issubdtype(numpy_dtype, np.integer) else "iuf"
    if array.size and array.dtype.kind not in allowed:
        raise invalid_argument(f"{where} expects {dtype_name(dtype)}, received {_shown(value)}")
    if array.size and numpy_dtype != np.bool_ and _has_boolean(value):
        raise invalid_argument(f"{where} expects {dtype_name(dtype)}, received a boolean "
                               f"(true / false are not numbers) in {_shown(value)}")
    if array.size and np.issubdtype(numpy_dtype, np.integer):
        limits = np.iinfo(numpy_dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise invalid_argument(f"{where} expects {dtype_name(dtype)}; {_shown(value)} is "
                                   "out of range")
    return array.astype(numpy_dtype)


def _has_boolean(value) -> bool:
    """Whether a rectangular JSON value holds a boolean among numbers ([1, true] reads as
    int64 [1, 1] in numpy)."""
    return bool in set(map(type, np.array(value, dtype=object).flat))


def json_value(alias: str, array: np.ndarray):
    """An output array as JSON: nested lists, bytes as UTF-8 strings (TF Serving's rules)."""
    if array.dtype == np.float32 and array.size:  # float32's shortest repr, not its double's
        array = np.array([float(str(x)) for x in array.ravel()], dtype=object).reshape(array.shape)
    return _jsonable(array.tolist(), as_b64=alias.endswith("_bytes"))


def _jsonable(value, as_b64: bool):
    if isinstance(value, list):
        return [_jsonable(item, as_b64) for item in value]
    if isinstance(value, bytes):
        if not as_b64:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


# === Request bodies ===

def parse_predict_body(body: bytes) -> tuple[str, object, bool]:
    """``(signature_name, instances or inputs, row_format)`` of a :predict body."""
    try:
        document = json.loads(body or b"null")
    except ValueError as error:
        raise invalid_argument(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: JSON nested too deeply (about 1000 levels "
                               f"is the parser's limit; a tensor needs at most {MAX_JSON_RANK})"
                               ) from None
    if not isinstance(document, dict):
        raise invalid_argument("the request body must be a JSON object with 'instances' or "
                               "'inputs'")
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument("'signature_name' key must be a string value.")
    if ("instances" in document) == ("inputs" in document):
        raise invalid_argument("the JSON object must have exactly one of 'instances' (row "
                               "format) or 'inputs' (columnar format)")
    row_format = "instances" in document
    return signature_name, document["instances" if row_format else "inputs"], row_format


def signature_name_of(body: bytes) -> str:
    """The ``signature_name`` of any JSON object body, "" when there is none (for the answer to
    :classify and :regress, which never reads the body as a predict body)."""
    try:
        name = json.loads(body).get("signature_name", "")
    except (ValueError, RecursionError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def _is_named(value) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _single_input(signature_name: str, signature) -> str:
    """The one input a bare (unnamed) value feeds: the only input, or the only required one."""
    required = [alias for alias in signature.inputs if alias not in signature.defaults]
    candidates = list(signature.inputs) if len(signature.inputs) == 1 else required
    if len(candidates) != 1:
        raise invalid_argument(f"signature {signature_name!r} has inputs "
                               f"{sorted(signature.inputs)}: name them (objects in "
                               "'instances', or an object as 'inputs')")
    return candidates[0]


def columns(signature_name: str, signature, payload, row_format: bool) -> dict[str, object]:
    """Named input values (columnar) from either request format."""
    if not row_format:
        return payload if _is_named(payload) else {_single_input(signature_name, signature):
                                                   payload}
    if not isinstance(payload, list) or not payload:
        raise invalid_argument("'instances' must be a non-empty list")
    if not any(_is_named(instance) for instance in payload):
        return {_single_input(signature_name, signature): payload}
    names = [sorted(instance) if _is_named(instance) else None for instance in payload]
    for index, keys in enumerate(names):
        if keys != names[0]:
            raise invalid_argument(f"every instance must name the same inputs: instance 0 has "
                                   f"{names[0]}, instance {index} has {keys or 'a bare value'}")
    return {alias: [instance[alias] for instance in payload] for alias in names[0]}


def predictions(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """The response body: ``predictions`` (rows) or ``outputs`` (columns)."""
    if not row_format:
        values = {alias: json_value(alias, array) for alias, array in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {alias: array.shape[0] if array.ndim else None for alias, array in outputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise invalid_argument(f"outputs have different batch sizes {sizes}: ask for the "
                               "columnar format ('inputs') instead of 'instances'")
    values = {alias: json_value(alias, array) for alias, array in outputs.items()}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    batch = next(iter(sizes.values()))
    return {"predictions": [{alias: value[row] for alias, value in values.items()}
                            for row in range(batch)]}


# === Server ===

class _Refusal(Exception):
    """A request answered from its headers alone (HTTP ``status``), then the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _RequestReader(io.RawIOBase):
    """A connection's input under ``--rest_api_read_timeout_seconds``: it waits ``seconds`` idle
    for a request, and once a request's first byte is in, the whole request (headers and body)
    must arrive within ``seconds``, however slowly its bytes trickle."""

    def __init__(self, raw: io.RawIOBase, connection: socket.socket, seconds: float):
        super().__init__()
        self._raw = raw
        self._connection = connection
        self.seconds = seconds
        self.idle = True  # no byte of the next request yet (stop() may close it)
        self._deadline = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        timeout = self.seconds if self.idle else self._deadline - time.monotonic()
        if timeout <= 0:
            raise TimeoutError(f"the request did not arrive within {self.seconds} s")
        self._connection.settimeout(timeout)
        received = self._raw.readinto(buffer)
        if self.idle and received:
            self.idle, self._deadline = False, time.monotonic() + self.seconds
        return received

    def next_request(self) -> None:
        """Waits idle for the next request."""
        self.idle = True

    def request_read(self) -> None:
        """The request is in: the answer is written under the plain timeout."""
        self._connection.settimeout(self.seconds)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _Handler(BaseHTTPRequestHandler):
    """Routes the requests of one connection; every answer is JSON but the browse page's."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # the socket's raw input, which setup() puts under the read timeout

    def setup(self) -> None:
        self.timeout = self.server.limits.rest_api_read_timeout_seconds
        super().setup()
        self._reader = _RequestReader(self.rfile, self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self.server.attach(self.request, self._reader)

    def handle(self) -> None:
        while True:
            self._reader.next_request()
            self.handle_one_request()
            if self.close_connection or self.server.stopping:
                return

    def handle_expect_100(self) -> bool:
        try:  # refused before the client sends a body it was going to send on "100 Continue"
            self._body_length()
        except _Refusal as refusal:
            self._send_json(refusal.status, {"error": refusal.message}, close=True)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._respond(self._get)

    def do_POST(self):
        self._respond(self._post)

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def _respond(self, handle) -> None:
        try:
            body = self._read_body()
        except _Refusal as refusal:
            self._send_json(refusal.status, {"error": refusal.message}, close=True)
            return
        try:
            status, answer = 200, handle(self._route(), body)
        except ServingError as error:
            status, answer = http_status(error.code), {"error": error.message}
        except Exception as error:  # noqa: BLE001 - a bug answers 500, the server carries on
            log.exception("REST %s %s failed", self.command, self.path)
            status, answer = 500, {"error": from_exception(error, "REST request").message}
        if isinstance(answer, ui.Response):
            self._send(answer.status, answer.body, answer.content_type, answer.headers)
        else:
            self._send_json(status, answer)

    def _body_length(self) -> int:
        """The body's declared size (a GET may have none): :class:`_Refusal` for a body this
        server will not read (411 unsized, 400 malformed, 413 over ``max_request_bytes``)."""
        if "Transfer-Encoding" in self.headers:
            raise _Refusal(411, f"Transfer-Encoding {_shown(self.headers['Transfer-Encoding'])} "
                                "is not supported: send the body with a Content-Length")
        values = [value.strip() for value in self.headers.get_all("Content-Length", [])]
        if not values:
            if self.command == "POST":
                raise _Refusal(411, "a POST needs a Content-Length header (the body's size in "
                                    "bytes)")
            return 0
        if len(set(values)) != 1 or not re.fullmatch(r"[0-9]{1,30}", values[0]):
            raise _Refusal(400, f"invalid Content-Length {_shown(', '.join(values))}: expected "
                                "one non-negative integer")
        try:
            self.server.limits.check_body_size(int(values[0]), "request body")
        except ServingError as error:
            raise _Refusal(413, error.message) from None
        return int(values[0])

    def _read_body(self) -> bytes:
        length = self._body_length()
        try:
            body = self.rfile.read(length) if length else b""
        except TimeoutError:
            raise _Refusal(408, f"the request body ({length} bytes declared) did not arrive "
                                f"within {self.timeout} s (--rest_api_read_timeout_seconds)"
                           ) from None
        if len(body) < length:
            raise _Refusal(400, f"the request body ended after {len(body)} of the {length} "
                                "bytes its Content-Length declares")
        return body

    def _send_json(self, status: int, answer: dict, close: bool = False) -> None:
        self._send(status, json.dumps(answer).encode("utf-8"), "application/json", close=close)

    def _send(self, status: int, payload: bytes, content_type: str,
              headers: tuple[tuple[str, str], ...] = (), close: bool = False) -> None:
        self._reader.request_read()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        if close or self.server.stopping:
            self.send_header("Connection", "close")  # also ends this connection's loop
        self.end_headers()
        self.wfile.write(payload)

    def _route(self) -> dict:
        path = urllib.parse.urlsplit(self.path).path
        if ui.handles(path):
            return {"ui": path}
        match = _PATH.match(path)
        if match is None:
            raise not_found(f"Malformed request: {self.command} {self.path}; expected "
                            "/v1/models/NAME[/versions/N|/labels/L][/metadata|:predict]")
        route = {key: urllib.parse.unquote(value) if isinstance(value, str) else value
                 for key, value in match.groupdict().items()}
        spec = model_pb2.ModelSpec(name=route["name"])
        if route["version"] is not None:
            spec.version.value = int(route["version"])
        elif route["label"] is not None:
            spec.version_label = route["label"]
        route["spec"] = spec
        return route

    def _get(self, route: dict, body: bytes) -> dict | ui.Response:
        if "ui" in route:
            return ui.answer(self.server.manager, "GET", route["ui"])
        if route["method"] is not None:
            raise invalid_argument(f"{route['method']} needs POST")
        manager = self.server.manager
        if route["metadata"]:
            servable = service.servable_for(manager, route["spec"])
            response = service.metadata_response(servable, [service.SIGNATURE_DEF_FIELD])
            return {"model_spec": _to_json(response.model_spec),
                    "metadata": {service.SIGNATURE_DEF_FIELD:
                                 _to_json(service.signature_def_map(servable))}}
        return _to_json(service.status_response(manager, route["spec"]))

    def _post(self, route: dict, body: bytes) -> dict | ui.Response:
        if "ui" in route:
            return ui.answer(self.server.manager, "POST", route["ui"])
        method = _METHODS.get(route["method"] or "")
        if method is None or route["metadata"]:
            raise not_found(f"Malformed request: POST {self.path}; expected "
                            f"/v1/models/NAME[/versions/N|/labels/L]:predict")
        servable = service.servable_for(self.server.manager, route["spec"])
        if method != "Predict":  # a Classify / Regress body is not a predict body
            raise service.refuse_unsupported(servable, signature_name_of(body), method)
        signature_name, payload, row_format = parse_predict_body(body)
        name, signature = find_signature(servable, signature_name)
        limits = self.server.limits
        inputs = prepare_inputs(name, signature, columns(name, signature, payload, row_format),
                                array_from_json, limits, servable.default_inputs(name))
        outputs = run_signature(servable, name, inputs, output_aliases(name, signature, []),
                                Deadline.after(self.server.timeout_seconds), limits)
        return predictions(outputs, row_format)


def _to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _shutdown(connection: socket.socket, how: int) -> None:
    try:
        connection.shutdown(how)
    except OSError:  # already closed by its client
        pass


def _close(connection: socket.socket) -> None:
    """Closes a connection without waiting. Input already received and unread (a body refused
    from its headers) is discarded first: closing on unread input sends a reset, which may
    reach the client before it has read our answer."""
    _shutdown(connection, socket.SHUT_WR)
    discarded = 0
    try:
        connection.setblocking(False)
        while discarded < DISCARD_BYTES:
            chunk = connection.recv(65536)
            if not chunk:
                break
            discarded += len(chunk)
    except OSError:  # nothing more
        pass
    connection.close()


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``limits.rest_api_max_connections`` of them."""

    daemon_threads = True
    block_on_close = False  # drain() waits for connections itself, for at most its grace

    def __init__(self, address, manager: ModelManager, timeout_seconds: float,
                 limits: Limits):
        self.manager = manager
        self.timeout_seconds = timeout_seconds
        self.limits = limits
        self.stopping = False
        # connection -> its reader (None until its thread has set it up)
        self._connections: dict[socket.socket, _RequestReader | None] = {}
        self._changed = threading.Condition()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address) -> None:
        """Serves the connection on a thread of its own, or refuses it at once (503) on the
        accepting thread when the server is full or stopping."""
        with self._changed:
            refusal = self._refusal()
            if refusal is None:
                self._connections[request] = None
        if refusal is not None:
            self._refuse(request, refusal)
            return
        threading.Thread(target=self.process_request_thread, args=(request, client_address),
                         name=f"rest-{self.server_address[1]}-connection", daemon=True).start()

    def _refusal(self) -> str | None:
        if self.stopping:
            return "The server is shutting down"
        if len(self._connections) >= self.limits.rest_api_max_connections:
            return (f"The server is serving {len(self._connections)} REST connections, its "
                    "limit (--rest_api_max_connections); try again later")
        return None

    def _refuse(self, request: socket.socket, message: str) -> None:
        payload = json.dumps({"error": message}).encode("utf-8")
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode("ascii")
        try:
            request.setblocking(False)  # a new socket's send buffer takes it whole: no waiting
            request.send(head + payload)
        except OSError:
            pass
        _close(request)

    def attach(self, request: socket.socket, reader: _RequestReader) -> None:
        with self._changed:
            self._connections[request] = reader

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._changed:
                del self._connections[request]
                self._changed.notify_all()

    def shutdown_request(self, request: socket.socket) -> None:
        _close(request)

    def handle_error(self, request, client_address) -> None:
        log.debug("REST connection from %s ended", client_address, exc_info=True)

    def drain(self, grace: float) -> None:
        """Closes idle connections now, gives the others up to ``grace`` seconds to finish
        their request, then closes them (call once no connection is accepted any more)."""
        with self._changed:
            for connection, reader in self._connections.items():
                if reader is None or reader.idle:
                    _shutdown(connection, socket.SHUT_RD)  # its thread reads end-of-input
            self._changed.wait_for(lambda: not self._connections, timeout=grace)
            for connection in self._connections:
                _shutdown(connection, socket.SHUT_RDWR)


class RestServer:
    """TF Serving's REST API for ``manager`` on ``host:port`` (0 picks a free port), bounded by
    ``limits`` (module docstring).

    Raises:
        OSError: the port could not be bound.
    """

    def __init__(self, manager: ModelManager, host: str = "127.0.0.1", port: int = 8501,
                 timeout_seconds: float = 30.0, limits: Limits = DEFAULT_LIMITS):
        self._http = _HTTPServer((host, port), manager, timeout_seconds, limits)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="rest",
                                        daemon=True)
        self._stop_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = 0.0) -> None:
        """Stops accepting (new connections are refused) and closes idle connections; requests
        in flight get up to ``grace`` seconds to finish and be answered, then their
        connections are closed. A second call returns at once."""
        with self._stop_lock:
            if self._http.stopping:
                return
            self._http.stopping = True  # a connection accepted from now on is answered 503
            if self._thread.is_alive():
                self._http.shutdown()
            self._http.server_close()  # the port is closed: connecting is refused
            self._http.drain(grace)
