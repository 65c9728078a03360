"""Predict, shared by gRPC, REST and warm-up: validate a request against its SignatureDef, run it.

The steps follow TF Serving's ``predict_util`` (and ``saved_model::GetInputValues``):

1. :func:`find_signature`: an empty name means ``serving_default``; an unknown one is
   FAILED_PRECONDITION ``Serving signature key "x" not found``, as in TF Serving, and the message
   lists the signatures the version has.
2. :func:`prepare_inputs`: every request alias must be a signature input (INVALID_ARGUMENT naming
   the unexpected ones); a TensorProto's declared shape is measured against the
   :class:`~.limits.Limits` before it is expanded (a one-value proto declaring 10^9 elements
   never allocates them); each input is converted to numpy by the transport's converter (gRPC:
   :func:`array_from_proto`, which also checks the dtype; REST: ``rest.array_from_json``) and
   its shape is checked against the SignatureDef's ``tensor_shape`` (-1 = any size); an input
   absent from the request takes ``signature_def.defaults[alias]`` when the SavedModel has one,
   else INVALID_ARGUMENT naming the missing and the expected inputs. Then the whole request is
   measured (rows, rows x k).
3. :func:`output_aliases`: ``output_filter`` (empty = all outputs); unknown or repeated aliases
   are INVALID_ARGUMENT.
4. :func:`run_signature`: runs the batch in chunks of ``Limits.batch_chunk_rows`` rows, each
   admitted by the limits' :class:`~.limits.RunGate` (fewest rows first), checking the
   :class:`Deadline` before and while each chunk waits: a request whose client gave up
   (deadline passed: DEADLINE_EXCEEDED; call cancelled: CANCELLED) stops within one chunk, as TF
   Serving stops a ``Session::Run`` at ``RunOptions.timeout_in_ms``. An error raised inside the
   graph keeps TensorFlow's code and message (an in-graph assertion such as "k must be in
   [1, 40]" is INVALID_ARGUMENT); anything else is INTERNAL.

:func:`predict` is the whole of it for a ``PredictRequest`` proto.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf.meta_graph_pb2 import TensorInfo
from tensorflow_serving.apis import model_pb2, predict_pb2

from . import limits as limits_module
from .errors import ServingError, from_exception, invalid_argument
from .limits import DEFAULT_LIMITS, Limits
from .servable import Servable, SignatureDef

DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
T = TypeVar("T")
Converter = Callable[[str, str, TensorInfo, T], np.ndarray]


class Deadline:
    """When a request must stop: its client's deadline passed, or its client went away.

    Args:
        time_remaining: seconds left (None: no deadline), e.g. ``grpc.ServicerContext``'s.
        is_active: False once the client cancelled or disconnected.
    """

    def __init__(self, time_remaining: Callable[[], float | None] | None = None,
                 is_active: Callable[[], bool] | None = None):
        self._time_remaining = time_remaining
        self._is_active = is_active

    @classmethod
    def of(cls, context) -> Deadline:
        """The deadline of a ``grpc.ServicerContext``."""
        return cls(context.time_remaining, context.is_active)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now (REST's ``--rest_api_timeout_in_ms``)."""
        end = time.monotonic() + seconds
        return cls(lambda: end - time.monotonic())

    def check(self, when: str) -> None:
        """DEADLINE_EXCEEDED or CANCELLED when the request must stop."""
        remaining = self._time_remaining() if self._time_remaining is not None else None
        if remaining is not None and remaining <= 0:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline exceeded {when}")
        if self._is_active is not None and not self._is_active():
            raise ServingError(grpc.StatusCode.CANCELLED, f"Request cancelled {when}")


NO_DEADLINE = Deadline()


def find_signature(servable: Servable, signature_name: str) -> tuple[str, SignatureDef]:
    """``(name, SignatureDef)`` for a request's signature name ("" -> serving_default)."""
    name = signature_name or DEFAULT_SIGNATURE
    if name.startswith("__") or name not in servable.signature_defs:
        raise ServingError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f'Serving signature key "{name}" not found. Model {servable.name!r} version '
            f"{servable.version} has signatures: {', '.join(servable.signature_names)}")
    return name, servable.signature_defs[name]


def prepare_inputs(signature_name: str, signature: SignatureDef, request_inputs: Mapping[str, T],
                   convert: Converter, limits: Limits = DEFAULT_LIMITS,
                   defaults: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Complete, validated numpy inputs for ``signature`` (steps in the module docstring).
    ``defaults``: the SignatureDef's defaults already as arrays (``Servable.default_inputs``);
    None converts them from the SignatureDef."""
    _check_aliases(signature_name, signature, request_inputs)
    arrays = {}
    for alias, value in request_inputs.items():
        info = signature.inputs[alias]
        if isinstance(value, tensor_pb2.TensorProto):  # measured before it is expanded
            declared = [dim.size for dim in value.tensor_shape.dim]
            if any(size < 0 for size in declared):
                raise invalid_argument(f"tensor parsing error: input {alias!r} of signature "
                                       f"{signature_name!r} declares shape {declared}; a "
                                       "tensor's dimensions cannot be negative")
            limits.check_input(signature_name, alias, declared)
        arrays[alias] = convert(signature_name, alias, info, value)
        check_shape(signature_name, alias, info, arrays[alias].shape)
    for alias in signature.inputs:
        if alias not in arrays:
            arrays[alias] = (defaults[alias] if defaults is not None else
                             tf.make_ndarray(signature.defaults[alias]))
    limits.check_request(signature_name, arrays)
    return arrays


def _check_aliases(signature_name: str, signature: SignatureDef, request_inputs: Mapping) -> None:
    expected = sorted(signature.inputs)
    unexpected = sorted(set(request_inputs) - set(expected))
    if unexpected:
        raise invalid_argument(
            f"Request inputs {unexpected} are not inputs of signature {signature_name!r}; "
            f"expected inputs: {expected}")
    missing = sorted(set(expected) - set(request_inputs) - set(signature.defaults))
    if missing:
        raise invalid_argument(
            f"Signature {signature_name!r} input(s) {missing} missing from the request and "
            f"without a default in the SignatureDef. Missing but required: {missing}; expected "
            f"inputs: {expected} (defaults: {sorted(signature.defaults)})")


def array_from_proto(signature_name: str, alias: str, info: TensorInfo,
                     proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A request TensorProto as numpy, after checking its dtype against the SignatureDef."""
    if proto.dtype != info.dtype:
        raise invalid_argument(
            f"Input {alias!r} of signature {signature_name!r} expects "
            f"{dtype_name(info.dtype)}, received {dtype_name(proto.dtype)}")
    try:
        array = _simple_ndarray(proto)
        return array if array is not None else tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - any malformed proto is the client's error
        raise invalid_argument(f"tensor parsing error: input {alias!r} of signature "
                               f"{signature_name!r}: {error}") from None


# dtype -> (numpy dtype, the repeated field TF Serving clients fill): the values a request
# usually carries, converted without tf.make_ndarray's generic path.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
}


def _simple_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray | None:
    """``tf.make_ndarray(proto)`` for a proto holding exactly its shape's number of values in
    ``string_val``, its dtype's repeated field or ``tensor_content`` (a read-only view of the
    bytes, no copy); None for anything else (padded, empty, other dtypes), which
    ``tf.make_ndarray`` converts (or refuses) as before."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    elements = 1
    for size in shape:
        elements *= size
    if not elements:
        return None
    if proto.dtype == types_pb2.DT_STRING:
        if proto.tensor_content or len(proto.string_val) != elements:
            return None
        array = np.empty(elements, dtype=object)
        array[:] = proto.string_val
        return array.reshape(shape)
    dtype, field = _VALUE_FIELDS.get(proto.dtype, (None, None))
    if dtype is None:
        return None
    if proto.tensor_content:
        if len(proto.tensor_content) != elements * dtype.itemsize:
            return None
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    values = getattr(proto, field)
    if len(values) != elements:
        return None
    return np.array(values, dtype=dtype).reshape(shape)


def tensor_proto_into(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Writes ``tf.make_tensor_proto(array)`` into ``proto`` (a response's output, no copy):
    the same message for the dtypes signatures return (float32/64, int32/64, bool, bytes),
    built directly; other arrays go through ``tf.make_tensor_proto``."""
    field = _OUTPUT_FIELDS.get(array.dtype)
    if field is None or (field == "string_val" and not all(
            type(value) is bytes for value in array.flat)):
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    proto.dtype = _OUTPUT_DTYPES[array.dtype]
    proto.tensor_shape.SetInParent()  # present even for a scalar, as make_tensor_proto's
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.size > 1 and field in _CONTENT_FIELDS:  # as make_tensor_proto: bytes, C order
        proto.tensor_content = array.tobytes()
    else:
        getattr(proto, field).extend(array.ravel().tolist())


_OUTPUT_FIELDS = {dtype: field for dtype, field in _VALUE_FIELDS.values()}
_OUTPUT_FIELDS[np.dtype(object)] = "string_val"
_OUTPUT_DTYPES = {dtype: enum for enum, (dtype, _) in _VALUE_FIELDS.items()}
_OUTPUT_DTYPES[np.dtype(object)] = types_pb2.DT_STRING
_CONTENT_FIELDS = {"float_val", "double_val", "int_val", "int64_val"}  # not bool, not strings


def check_shape(signature_name: str, alias: str, info: TensorInfo, shape: tuple[int, ...]) -> None:
    """INVALID_ARGUMENT unless ``shape`` fits the SignatureDef's shape (-1 = any size)."""
    if info.tensor_shape.unknown_rank:
        return
    expected = [dim.size for dim in info.tensor_shape.dim]
    fits = len(expected) == len(shape) and all(
        want in (-1, got) for want, got in zip(expected, shape))
    if not fits:
        raise invalid_argument(
            f"Input {alias!r} of signature {signature_name!r} expects shape {expected} "
            f"(rank {len(expected)}, -1 = any size), received shape {list(shape)}")


def output_aliases(signature_name: str, signature: SignatureDef,
                   output_filter: Iterable[str]) -> list[str]:
    """The outputs to return: ``output_filter``, or all outputs when it is empty."""
    wanted = list(output_filter)
    for alias in wanted:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature {signature_name!r}: {alias}. "
                f"Outputs expected to be in the set {sorted(signature.outputs)}")
    if len(set(wanted)) != len(wanted):
        raise invalid_argument(f"duplicate output tensor alias in output_filter: {wanted}")
    return wanted or sorted(signature.outputs)


def run_signature(servable: Servable, signature_name: str, inputs: dict[str, np.ndarray],
                  outputs: list[str], deadline: Deadline = NO_DEADLINE,
                  limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Runs the signature in chunks of rows within the deadline; only the ``outputs`` asked for
    are returned."""
    rows = limits_module.batch_size(inputs)
    parts = []
    for start, chunk in limits_module.chunks(inputs, limits.batch_chunk_rows):
        when = (f"before rows {start}..{min(start + limits.batch_chunk_rows, rows) - 1} of "
                f"{rows} of signature {signature_name!r}")
        deadline.check(when)
        with limits.gate.slot(rows, lambda: deadline.check(when)):
            try:
                results = servable.run(signature_name, chunk)
            except Exception as error:  # noqa: BLE001 - every failure becomes a status
                raise from_exception(
                    error, f"running signature {signature_name!r} of model {servable.name!r} "
                           f"version {servable.version}") from None
        parts.append({alias: results[alias] for alias in outputs})
    deadline.check(f"after running signature {signature_name!r}")
    return limits_module.concatenate(parts)


def model_spec(servable: Servable, signature_name: str = "") -> model_pb2.ModelSpec:
    """The ModelSpec a response carries: the model, the version that served it, the signature."""
    return model_pb2.ModelSpec(name=servable.name, signature_name=signature_name,
                               version=wrappers_pb2.Int64Value(value=servable.version))


def predict(servable: Servable, request: predict_pb2.PredictRequest,
            deadline: Deadline = NO_DEADLINE, limits: Limits = DEFAULT_LIMITS
            ) -> predict_pb2.PredictResponse:
    """Answers a PredictRequest with ``servable`` (raises :class:`ServingError`)."""
    name, signature = find_signature(servable, request.model_spec.signature_name)
    inputs = prepare_inputs(name, signature, request.inputs, array_from_proto, limits,
                            servable.default_inputs(name))
    aliases = output_aliases(name, signature, request.output_filter)
    outputs = run_signature(servable, name, inputs, aliases, deadline, limits)
    response = predict_pb2.PredictResponse(model_spec=model_spec(servable, name))
    for alias, value in outputs.items():
        tensor_proto_into(response.outputs[alias], value)
    return response


def dtype_name(dtype: int) -> str:
    """``DT_INT32`` for ``types_pb2.DT_INT32``; a number no DataType has (proto3 keeps unknown
    enum values) is named as such."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DataType {dtype} (not a TensorFlow dtype)"
