"""TensorFlow Serving's REST API (``--rest_api_port``), over the same models and checks as gRPC.

Endpoints (``[/versions/N | /labels/L]`` picks a version; without it, the latest)::

    GET  /v1/models/NAME[/versions/N|/labels/L]            status, as TF Serving:
         {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   {"model_spec": {...}, "metadata":
                                                            {"signature_def": {...}}}
    POST /v1/models/NAME[/versions/N|/labels/L]:predict

Predict bodies, as TF Serving's:

    row format       {"signature_name": "recommend", "instances": [{"user_id": "u1", "k": 5}, ...]}
                     -> {"predictions": [{"item_ids": [...], "scores": [...], ...}, ...]}
    columnar format  {"signature_name": "recommend", "inputs": {"user_id": ["u1"], "k": [5]}}
                     -> {"outputs": {"item_ids": [[...]], "scores": [[...]], ...}}

An instance may be a bare value (and ``inputs`` a bare tensor) when the signature has a single
input without a default. Inputs a request leaves out take the SignatureDef's defaults. Strings
are JSON strings (``{"b64": "..."}`` for binary input); string outputs come back as JSON strings
(bytes decoded as UTF-8, or ``{"b64": ...}`` when they are not UTF-8 or the output alias ends in
``_bytes``, TF Serving's rule); -inf scores are written ``-Infinity``. Errors are
``{"error": "..."}`` with TF Serving's HTTP status for the gRPC code (400, 404, 500, 501, 504).

Validation, defaults, running and errors are ``predict.py``'s, shared with gRPC; only the JSON
to numpy conversion (:func:`array_from_json`) and the JSON layout live here.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2

from . import service
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


# === JSON <-> numpy ===

def array_from_json(signature_name: str, alias: str, info, value) -> np.ndarray:
    """A JSON value as a numpy array of the SignatureDef's dtype (INVALID_ARGUMENT otherwise)."""
    where = f"Input {alias!r} of signature {signature_name!r}"
    if info.dtype == types_pb2.DT_STRING:
        array = _array(where, _to_bytes(where, value), dtype=object)
        if any(not isinstance(item, bytes) for item in array.flat):
            raise invalid_argument(f"{where} expects a tensor of strings, received {value!r}")
        return array
    return _numeric_array(where, info.dtype, value)


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
            raise invalid_argument(f"{where}: invalid base64 in {value!r}: {error}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise invalid_argument(f"{where} expects strings, received {value!r}")


def _numeric_array(where: str, dtype: int, value) -> np.ndarray:
    numpy_dtype = tf.as_dtype(dtype).as_numpy_dtype
    array = _array(where, value)
    allowed = "b" if numpy_dtype == np.bool_ else "iub" if np.issubdtype(numpy_dtype, np.integer) \
        else "iuf"
    if array.size and array.dtype.kind not in allowed:
        raise invalid_argument(f"{where} expects {dtype_name(dtype)}, received {value!r}")
    if array.size and np.issubdtype(numpy_dtype, np.integer):
        limits = np.iinfo(numpy_dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise invalid_argument(f"{where} expects {dtype_name(dtype)}; {value!r} is out of "
                                   "range")
    return array.astype(numpy_dtype)


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

class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request; every answer is JSON."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._respond(self._get)

    def do_POST(self):
        self._respond(self._post)

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def _respond(self, handle) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status, answer = 200, handle(self._route(), body)
        except ServingError as error:
            status, answer = http_status(error.code), {"error": error.message}
        except Exception as error:  # noqa: BLE001 - a bug answers 500, the server carries on
            log.exception("REST %s %s failed", self.command, self.path)
            status, answer = 500, {"error": from_exception(error, "REST request").message}
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self) -> dict:
        match = _PATH.match(urllib.parse.urlsplit(self.path).path)
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

    def _get(self, route: dict, body: bytes) -> dict:
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

    def _post(self, route: dict, body: bytes) -> dict:
        method = _METHODS.get(route["method"] or "")
        if method is None or route["metadata"]:
            raise not_found(f"Malformed request: POST {self.path}; expected "
                            f"/v1/models/NAME[/versions/N|/labels/L]:predict")
        servable = service.servable_for(self.server.manager, route["spec"])
        signature_name, payload, row_format = parse_predict_body(body)
        if method != "Predict":
            raise service.refuse_unsupported(servable, signature_name, method)
        name, signature = find_signature(servable, signature_name)
        limits = self.server.limits
        inputs = prepare_inputs(name, signature, columns(name, signature, payload, row_format),
                                array_from_json, limits)
        outputs = run_signature(servable, name, inputs, output_aliases(name, signature, []),
                                Deadline.after(self.server.timeout_seconds), limits)
        return predictions(outputs, row_format)


def _to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, manager: ModelManager, timeout_seconds: float,
                 limits: Limits):
        self.manager = manager
        self.timeout_seconds = timeout_seconds
        self.limits = limits
        super().__init__(address, _Handler)


class RestServer:
    """TF Serving's REST API for ``manager`` on ``host:port`` (0 picks a free port).

    Raises:
        OSError: the port could not be bound.
    """

    def __init__(self, manager: ModelManager, host: str = "127.0.0.1", port: int = 8501,
                 timeout_seconds: float = 30.0, limits: Limits = DEFAULT_LIMITS):
        self._http = _HTTPServer((host, port), manager, timeout_seconds, limits)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="rest",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
