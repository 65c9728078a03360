"""How much work one request may ask for, and how it is cut into bounded TensorFlow calls.

One ordinary-looking request (100,000 user ids, k = the catalogue size) once ran the server to
22 GB. Every request is now measured against :class:`Limits` *before* any TensorFlow work, and a
valid large batch runs in chunks of ``batch_chunk_rows`` rows, so one request's memory is bounded by
the chunk, not by the batch. The flags (``add_flags`` / ``from_args``) are named in
``tensorflow_model_server``'s style; the defaults are safe for a 2-core, few-GB server:

    flag                              default     what it bounds
    --max_request_bytes               16 MiB      a gRPC message or a REST body, before parsing
    --max_batch_size                  10000       rows of one request (its largest leading dim)
    --max_input_elements              4194304     elements of any one input tensor, as declared
                                                  (batch x exclusions, batch x items to score,
                                                  a [16, 224, 224, 3] image batch fits)
    --max_batch_k                     1000000     rows x max(k): the answer's size (recommend)
    --batch_chunk_rows                256         rows per TensorFlow call (memory per call)
    --max_concurrent_runs             CPU count   TensorFlow calls running at once
    --small_request_rows              16          requests this small may use the one slot
                                                  that larger requests leave free
    --grpc_max_concurrent_rpcs        64          gRPC calls in the server at once (more:
                                                  RESOURCE_EXHAUSTED), so queued requests hold
                                                  at most 64 x --max_request_bytes
    --rest_api_read_timeout_seconds   10          a REST client that stops sending is dropped
    --rest_api_max_connections        64          REST connections served at once

A request over a limit is INVALID_ARGUMENT (HTTP 400; a REST body over ``max_request_bytes`` is
413) with a message naming the limit, the value received and the flag that raises it, e.g.
``Signature 'recommend': the request asks for 5000 rows x k=1500 = 7500000 results; the
limit is 1000000 (--max_batch_k)``. As TF Serving's batching answers a task over
``max_batch_size``, the code is INVALID_ARGUMENT: retrying the same request cannot succeed.

:class:`RunGate` admits at most ``max_concurrent_runs`` TensorFlow calls at once and, when
calls wait, runs the one from the request with the fewest rows first (ties: first come); with
two or more slots, requests of more than ``small_request_rows`` rows hold at most all but one.
A single-user request therefore finds a slot free even while 10,000-row batches keep the others
busy (measured on 2 cores under expiring 10,000-row requests: one-user p99 22 ms with 2 shared
slots, 9 ms with one kept free; 2 ms unloaded), and requests that expire while waiting leave
the queue without running. Memory is bounded by ``max_concurrent_runs`` chunks. One gate per
:class:`Limits` object: a server's gRPC and REST share it.

:func:`chunks` and :func:`concatenate` cut a batch-major request into row ranges and join the
answers. Inputs of batch size 1 are broadcast (the contract's rule) and go whole to every chunk.
Outputs whose second dimension depends on the rows (``recommend``'s K = max(k) of the chunk,
``user_query``'s seen items) are padded to the widest chunk with the contract's padding
(``contract.padding_value``: ``""`` / ``-inf`` / ``-1`` / ``False``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from .contract import padding_value
from .errors import invalid_argument

MiB = 1024 * 1024
K_INPUT = "k"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request bounds (module docstring); every field has its flag of the same name."""

    max_request_bytes: int = 16 * MiB
    max_batch_size: int = 10_000
    max_input_elements: int = 4 * 1024 * 1024
    max_batch_k: int = 1_000_000
    batch_chunk_rows: int = 256
    max_concurrent_runs: int = os.cpu_count() or 1
    small_request_rows: int = 16
    grpc_max_concurrent_rpcs: int = 64
    rest_api_read_timeout_seconds: float = 10.0
    rest_api_max_connections: int = 64
    gate: RunGate = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for field in _flag_fields():
            value = getattr(self, field.name)
            if not value > 0:
                raise ValueError(f"--{field.name} must be positive. Received: {value!r}")
        object.__setattr__(self, "gate", RunGate(self.max_concurrent_runs,
                                                 self.small_request_rows))

    # === Checks, before any TensorFlow work ===

    def check_input(self, signature_name: str, alias: str, shape) -> None:
        """INVALID_ARGUMENT when one input (as its shape declares) is over the limits."""
        shape = [int(size) for size in shape]
        elements = math.prod(shape)
        if elements > self.max_input_elements:
            raise invalid_argument(
                f"Input {alias!r} of signature {signature_name!r} has shape {shape} = "
                f"{elements} elements; the limit is {self.max_input_elements} "
                "(--max_input_elements)")
        if shape and shape[0] > self.max_batch_size:
            raise invalid_argument(
                f"Input {alias!r} of signature {signature_name!r} has batch size {shape[0]}; "
                f"the limit is {self.max_batch_size} (--max_batch_size)")

    def check_request(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> None:
        """INVALID_ARGUMENT when the complete inputs ask for too large an answer."""
        for alias, value in inputs.items():
            self.check_input(signature_name, alias, value.shape)
        k = inputs.get(K_INPUT)
        if k is None or not k.size or not np.issubdtype(k.dtype, np.integer):
            return
        rows = batch_size(inputs)
        top = int(k.max())
        if rows * top > self.max_batch_k:
            raise invalid_argument(
                f"Signature {signature_name!r}: the request asks for {rows} rows x k={top} = "
                f"{rows * top} results; the limit is {self.max_batch_k} (--max_batch_k)")

    def check_body_size(self, size: int, what: str = "request") -> None:
        """INVALID_ARGUMENT for a message or body over ``max_request_bytes``."""
        if size > self.max_request_bytes:
            raise invalid_argument(
                f"The {what} is {size} bytes; the limit is {self.max_request_bytes} "
                "(--max_request_bytes)")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The limits' flags, defaults from :class:`Limits`."""
    group = parser.add_argument_group("limits (per request; see tfrec_fashion_serving.limits)")
    helps = {
        "max_request_bytes": "largest gRPC message or REST body accepted",
        "max_batch_size": "most rows in one request",
        "max_input_elements": "most elements in any one input (batch x exclusions, ...)",
        "max_batch_k": "most results one request may ask for (rows x k)",
        "batch_chunk_rows": "rows per TensorFlow call; a larger batch runs in chunks",
        "max_concurrent_runs": "TensorFlow calls at once (fewest rows first when they wait)",
        "small_request_rows": "requests of at most this many rows may use the TensorFlow slot "
                              "kept free of larger ones",
        "grpc_max_concurrent_rpcs": "gRPC calls in the server at once (more: "
                                    "RESOURCE_EXHAUSTED)",
        "rest_api_read_timeout_seconds": "drop a REST connection idle or slow for this long",
        "rest_api_max_connections": "REST connections served at once (more: 503)",
    }
    for field in _flag_fields():
        group.add_argument(f"--{field.name}", type=type(field.default), default=field.default,
                           help=f"{helps[field.name]} (default {field.default})")


def from_args(args: argparse.Namespace) -> Limits:
    """The :class:`Limits` parsed flags give (ValueError for a non-positive one)."""
    return Limits(**{field.name: getattr(args, field.name) for field in _flag_fields()})


def _flag_fields() -> list[dataclasses.Field]:
    return [field for field in dataclasses.fields(Limits) if field.init]


@dataclasses.dataclass(order=True)
class _Waiter:
    """A call waiting at the gate, ordered fewest rows first, then first come."""

    rows: int
    arrival: int
    granted: threading.Event = dataclasses.field(default_factory=threading.Event, compare=False)
    withdrawn: bool = dataclasses.field(default=False, compare=False)


class RunGate:
    """At most ``slots`` TensorFlow calls at once; waiting calls go fewest rows first, and with
    two or more slots, calls of requests over ``small_rows`` rows hold at most ``slots - 1``, so
    one slot is always free for small requests.

    ``with gate.slot(rows, check):`` blocks until the call may run; ``check()`` is called while
    waiting (every 20 ms) and may raise to give up the place (an expired or cancelled request).
    """

    POLL_SECONDS = 0.02

    def __init__(self, slots: int, small_rows: int = 16):
        self.slots = slots
        self.small_rows = small_rows
        self.large_slots = slots - 1 if slots > 1 else 1
        self._running = 0
        self._running_large = 0
        self._waiting: list[_Waiter] = []  # a heap
        self._arrivals = itertools.count()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, rows: int, check: Callable[[], None] = lambda: None) -> Iterator[None]:
        waiter = _Waiter(rows, next(self._arrivals))
        with self._lock:
            heapq.heappush(self._waiting, waiter)
            self._dispatch()
        try:
            while not waiter.granted.wait(self.POLL_SECONDS):
                check()
        except BaseException:
            with self._lock:
                waiter.withdrawn = True  # skipped when it reaches the head
                granted = waiter.granted.is_set()
            if granted:
                self._release(waiter)
            raise
        try:
            yield
        finally:
            self._release(waiter)

    def _large(self, waiter: _Waiter) -> bool:
        return waiter.rows > self.small_rows

    def _dispatch(self) -> None:
        """Grants slots to the head of the queue while it may run (called under the lock).
        Small requests sort before large ones, so a large head means no small one waits."""
        while self._waiting and self._running < self.slots:
            head = self._waiting[0]
            if not head.withdrawn and self._large(head) and \
                    self._running_large >= self.large_slots:
                return
            heapq.heappop(self._waiting)
            if head.withdrawn:
                continue
            self._running += 1
            self._running_large += self._large(head)
            head.granted.set()

    def _release(self, waiter: _Waiter) -> None:
        with self._lock:
            self._running -= 1
            self._running_large -= self._large(waiter)
            self._dispatch()


DEFAULT_LIMITS = Limits()


# === Chunked running ===

def batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    """The request's rows: the largest leading dimension (inputs of size 1 broadcast)."""
    sizes = [value.shape[0] for value in inputs.values() if value.ndim]
    return max(sizes, default=1)


def chunks(inputs: Mapping[str, np.ndarray], rows: int
           ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(start, inputs of rows [start, start + rows))`` over the batch; batch-size-1 and
    scalar inputs go whole to every chunk. A batch that fits one chunk (an empty one too) goes
    as it is, for the graph to judge; a larger one must be aligned (INVALID_ARGUMENT for an
    input whose leading dimension is neither 1 nor the batch's: cut into chunks, its rows would
    meet the wrong rows of the others)."""
    total = batch_size(inputs)
    if total > rows:
        for alias, value in inputs.items():
            if value.ndim and value.shape[0] not in (1, total):
                raise invalid_argument(
                    f"Input {alias!r} has batch size {value.shape[0]}; every input must have "
                    f"batch size 1 or the request's ({total})")
    for start in range(0, max(total, 1), rows):
        yield start, {alias: value[start:start + rows]
                      if value.ndim and value.shape[0] == total and total > 1 else value
                      for alias, value in inputs.items()}


def concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Joins chunk outputs along the batch, padding each to the widest chunk."""
    if len(parts) == 1:
        return parts[0]
    joined = {}
    for alias in parts[0]:
        arrays = [part[alias] for part in parts]
        if arrays[0].ndim >= 2:
            width = max(array.shape[1] for array in arrays)
            arrays = [np.concatenate([array, np.full(
                (array.shape[0], width - array.shape[1], *array.shape[2:]),
                padding_value(array.dtype), dtype=array.dtype)], axis=1)
                if array.shape[1] < width else array for array in arrays]
        joined[alias] = np.concatenate(arrays, axis=0)
    return joined
