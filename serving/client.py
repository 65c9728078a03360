"""A small client for TensorFlow Serving's gRPC API (ours or ``tensorflow_model_server``).

Built on the official stubs only (``PredictionServiceStub``, ``ModelServiceStub``), so it talks
to any TF Serving. ``target`` is ``"host:port"`` or an open ``grpc.Channel`` (reuse one channel
for many calls)::

    from tfrec_fashion_serving import client

    result = client.recommend("127.0.0.1:8500", "vbpr", ["U1", "U2"], k=5, category="shoes")
    result["item_ids"]        # object array of bytes [2, 5], "" padding
    result["scores"]          # float32 [2, 5], -inf padding
    result["cold_start"]      # bool [2]
    result["version"]         # the version that answered

    newcomer = client.recommend_new_customer(           # models that fold customers in
        "127.0.0.1:8500", "partial_dual", [[("I3", 1.0), ("I9", -1.0)], []], k=5)
    newcomer["query"]         # float32 [2, D]; row 2 voted on nothing: cold_start [F, T]

    looks = client.complementary("127.0.0.1:8500", "ctl", ["I7"], k=5)   # look head
    client.similar("127.0.0.1:8500", "ctl", images=photo, category="top")  # a new product

    designs = client.design("127.0.0.1:8500", "design_gan", ["U1"], "shoes", n=4, seed=7)
    designs["images"]         # float32 [1, 4, H, W, 3] in [0, 1]; designs["scores"] [1, 4]

    client.predict("127.0.0.1:8500", "vbpr", {"user_id": np.array([b"U1"])},
                   signature="user_query")            # any signature, any inputs
    client.metadata("127.0.0.1:8500", "vbpr")          # {signature: SignatureDef}
    client.status("127.0.0.1:8500", "vbpr")            # [{"version", "state", ...}]

Errors are ``grpc.RpcError`` with the server's code and message (``error.code()``,
``error.details()``).

Command line::

    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model vbpr --user U1 --k 5
    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model vbpr --status
    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model vbpr --metadata
    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model ctl --item I7 \
        --look similar                                  # look head: complementary by default
    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model partial_dual \
        --vote I3=1 --vote I9=-1 --k 5                  # a new customer from their votes
    python -m tfrec_fashion_serving.client --server 127.0.0.1:8500 --model stynet \
        --answer favourite_colour=navy --vote I3=1      # and survey answers (StyNet)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from . import contract
from .contract import (DEFAULT_K, RECOMMEND_APPROXIMATE, look_inputs,  # noqa: F401 (API)
                       new_customer_inputs, recommend_inputs)

RECOMMEND = contract.RECOMMEND.name
State = get_model_status_pb2.ModelVersionStatus.State


@contextlib.contextmanager
def _channel(target: str | grpc.Channel) -> Iterator[grpc.Channel]:
    """``target`` itself if it is a channel, else a channel opened (and closed) for the call."""
    if isinstance(target, grpc.Channel):
        yield target
        return
    with grpc.insecure_channel(target) as channel:
        yield channel


def model_spec(model: str, signature: str = "", version: int | None = None,
               label: str | None = None) -> model_pb2.ModelSpec:
    """A ModelSpec naming a version or a label (or neither: the latest)."""
    if version is not None and label is not None:
        raise ValueError(f"give a version or a label, not both (version={version}, "
                         f"label={label!r})")
    spec = model_pb2.ModelSpec(name=model, signature_name=signature)
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    return spec


def predict_request(model: str, inputs: dict[str, np.ndarray],
                    signature: str = "serving_default", version: int | None = None,
                    label: str | None = None, output_filter: Sequence[str] = ()
                    ) -> predict_pb2.PredictRequest:
    """A PredictRequest with each input as a TensorProto (``tf.make_tensor_proto``)."""
    request = predict_pb2.PredictRequest(model_spec=model_spec(model, signature, version, label),
                                         output_filter=list(output_filter))
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def predict(target: str | grpc.Channel, model: str, inputs: dict[str, np.ndarray],
            signature: str = "serving_default", version: int | None = None,
            label: str | None = None, timeout: float = 10.0,
            output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Runs a signature; returns its outputs as numpy arrays, plus ``"version"`` (an int)."""
    request = predict_request(model, inputs, signature, version, label, output_filter)
    with _channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=timeout)
    outputs = {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}
    outputs["version"] = response.model_spec.version.value
    return outputs


def recommend(target: str | grpc.Channel, model: str, user_ids: Sequence[str],
              k: int = DEFAULT_K,
              category: str | None = None,
              exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
              version: int | None = None, label: str | None = None,
              approximate: bool = False, timeout: float = 10.0,
              exclude_width: int = 0, exclude_seen: bool | None = None
              ) -> dict[str, np.ndarray]:
    """Top-``k`` items per user (``recommend``, or ``recommend_approximate``); arguments as
    ``contract.recommend_inputs``."""
    return predict(target, model, recommend_inputs(user_ids, k, category, exclude,
                                                   exclude_width, exclude_seen),
                   RECOMMEND_APPROXIMATE if approximate else RECOMMEND, version, label, timeout)


def recommend_new_customer(target: str | grpc.Channel, model: str,
                           votes: Sequence[Sequence[tuple[str, float]]], k: int = DEFAULT_K,
                           category: str | None = None,
                           exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
                           version: int | None = None, label: str | None = None,
                           timeout: float = 10.0, exclude_width: int = 0,
                           exclude_voted: bool | None = None, votes_width: int = 0,
                           survey: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None
                           ) -> dict[str, np.ndarray]:
    """Top-``k`` items for customers the model was not trained on, from their votes
    (``recommend_new_customer``, models that fold customers in): ``votes`` holds one list of
    (item id, vote) pairs per customer, empty for one who has not voted yet (the cold-start
    answer). The answer has ``query`` (each customer's folded-in vector) beside ``item_ids``,
    ``scores`` and ``cold_start``. A model whose customer tower reads a survey (StyNet) also
    takes ``survey`` answers, question -> answer, one mapping for all or one per customer
    (a customer with answers but no votes is answered from them). Arguments as
    ``contract.new_customer_inputs``."""
    return predict(target, model, new_customer_inputs(votes, k, category, exclude,
                                                      exclude_width, exclude_voted,
                                                      votes_width, survey),
                   contract.RECOMMEND_NEW_CUSTOMER.name, version, label, timeout)


def similar(target: str | grpc.Channel, model: str, item_ids: Sequence[str] | None = None,
            images: np.ndarray | None = None, k: int = DEFAULT_K,
            category: str | Sequence[str] | None = None,
            exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
            version: int | None = None, label: str | None = None, timeout: float = 10.0
            ) -> dict[str, np.ndarray]:
    """The ``k`` items most like each anchor (a catalogue id, or where it is "" the row of
    ``images``: a new product, whose ``category`` must be named), of its category (look head,
    ``similar``); arguments as ``contract.look_inputs``."""
    return predict(target, model, look_inputs(item_ids, images, k, category, exclude=exclude),
                   contract.SIMILAR.name, version, label, timeout)


def complementary(target: str | grpc.Channel, model: str,
                  item_ids: Sequence[str] | None = None, images: np.ndarray | None = None,
                  k: int = DEFAULT_K, category: str | Sequence[str] | None = None,
                  item_category: str | Sequence[str] | None = None,
                  exclude: Sequence[str] | Sequence[Sequence[str]] | None = None,
                  version: int | None = None, label: str | None = None, timeout: float = 10.0
                  ) -> dict[str, np.ndarray]:
    """The ``k`` items that best complete each anchor (look head, ``complementary``): of its
    complementary categories, or of ``category``; an image anchor names its own category in
    ``item_category`` (or asks for a ``category``). Arguments as ``contract.look_inputs``."""
    return predict(target, model, look_inputs(item_ids, images, k, category, item_category,
                                              exclude),
                   contract.COMPLEMENTARY.name, version, label, timeout)


def design(target: str | grpc.Channel, model: str, user_ids: Sequence[str],
           category: str | Sequence[str], n: int = contract.DEFAULT_DESIGNS,
           seed: int | Sequence[int] = 0, eta: float | Sequence[float] | None = None,
           version: int | None = None, label: str | None = None, timeout: float = 60.0
           ) -> dict[str, np.ndarray]:
    """``n`` new images per customer designed for them in ``category`` (generation head,
    ``design``): ``images`` float32 [B, n, H, W, 3] in [0, 1], ``scores`` (their preference)
    and ``objective`` [B, n], ``cold_start`` [B]. The same seed gives the same designs.
    Arguments as ``contract.design_inputs``; the ascent runs in the server, so the default
    timeout is longer than a lookup's. An answer is B x n x H x W x 3 floats: gRPC's default
    4 MiB receive limit holds about 40 customers x 8 designs of 32 x 32 pixels per request."""
    return predict(target, model, contract.design_inputs(user_ids, category, n, seed, eta),
                   contract.DESIGN.name, version, label, timeout)


def metadata(target: str | grpc.Channel, model: str, version: int | None = None,
             label: str | None = None, timeout: float = 10.0) -> dict:
    """``{signature name: SignatureDef}`` of the version that answers."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_spec(model, version=version, label=label),
        metadata_field=["signature_def"])
    with _channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            request, timeout=timeout)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return dict(signatures.signature_def)


def status(target: str | grpc.Channel, model: str, version: int | None = None,
           label: str | None = None, timeout: float = 10.0) -> list[dict]:
    """Each version's state: ``[{"version", "state", "error_code", "error_message"}]``."""
    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_spec(model, version=version, label=label))
    with _channel(target) as channel:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request, timeout=timeout)
    return [{"version": entry.version, "state": State.Name(entry.state),
             "error_code": entry.status.error_code,
             "error_message": entry.status.error_message}
            for entry in response.model_version_status]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# === Command line ===

def format_recommendations(user_ids: Sequence[str], result: dict[str, np.ndarray],
                           row_label: str = "user") -> str:
    """A table: user (or another ``row_label``: the look head's anchor item), rank, item id,
    score (padding left out); cold-start users flagged where the answer has ``cold_start``."""
    lines = [f"{row_label:<16} {'rank':>4}  {'item_id':<24} {'score':>10}"]
    cold_start = result.get("cold_start", np.zeros(len(user_ids), bool))
    for row, user in enumerate(user_ids):
        flag = "  (unknown user: cold-start query)" if cold_start[row] else ""
        items = [(item, score) for item, score in zip(result["item_ids"][row],
                                                     result["scores"][row]) if item]
        for rank, (item, score) in enumerate(items, start=1):
            lines.append(f"{user:<16} {rank:>4}  {_text(item):<24} {score:>10.4f}"
                         f"{flag if rank == 1 else ''}")
        if not items:
            lines.append(f"{user:<16} {'-':>4}  {'(no items)':<24}{flag}")
    return "\n".join(lines)


def format_metadata(signatures: dict) -> str:
    """Each signature's inputs and outputs with dtype and shape (-1 = any size)."""
    lines = []
    for name in sorted(name for name in signatures if not name.startswith("__")):
        signature = signatures[name]
        lines.append(f"{name}  ({signature.method_name or 'no method'})")
        for kind, tensors in (("in ", signature.inputs), ("out", signature.outputs)):
            for alias in sorted(tensors):
                info = tensors[alias]
                shape = [dim.size for dim in info.tensor_shape.dim]
                dtype = types_pb2.DataType.Name(info.dtype)[3:].lower()  # DT_INT32 -> int32
                default = "  default" if kind == "in " and alias in signature.defaults else ""
                lines.append(f"  {kind} {alias:<20} {dtype:<8} {shape}{default}")
    return "\n".join(lines)


def format_status(versions: list[dict]) -> str:
    lines = [f"{'version':>8}  {'state':<10} error"]
    for entry in versions:
        lines.append(f"{entry['version']:>8}  {entry['state']:<10} {entry['error_message']}")
    return "\n".join(lines)


def build_parser(prog: str = "python -m tfrec_fashion_serving.client"
                 ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Ask a TensorFlow Serving gRPC server for recommendations, metadata or "
                    "model status.")
    parser.add_argument("--server", default="127.0.0.1:8500", help="host:port of the gRPC API")
    parser.add_argument("--model", required=True, help="model name in models.config")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print each version's state")
    what.add_argument("--metadata", action="store_true", help="print the signatures")
    parser.add_argument("--user", action="append", default=[], help="user id (repeatable)")
    parser.add_argument("--item", action="append", default=[],
                        help="a catalogue item to complete the look of (repeatable; models of "
                             "the look head)")
    parser.add_argument("--vote", action="append", default=[], metavar="ITEM=VALUE",
                        help="a new customer's vote on an item (repeatable): "
                             "recommend_new_customer, models that fold customers in")
    parser.add_argument("--answer", action="append", default=[], metavar="QUESTION=ANSWER",
                        help="a new customer's survey answer (repeatable; with or without "
                             "--vote): recommend_new_customer of models that read a survey "
                             "(StyNet)")
    parser.add_argument("--look", choices=(contract.COMPLEMENTARY.name, contract.SIMILAR.name),
                        default=contract.COMPLEMENTARY.name,
                        help="with --item: the items that complete it (default) or alike items")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help="items per user")
    parser.add_argument("--category", help="only items of this category")
    parser.add_argument("--include-seen", action="store_true",
                        help="also recommend items the user already bought (left out by "
                             "default)")
    parser.add_argument("--exclude", action="append", default=[],
                        help="item id to leave out (repeatable)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a specific version (default: latest)")
    which.add_argument("--label", help="a version label from models.config")
    parser.add_argument("--approximate", action="store_true",
                        help="use recommend_approximate (the exported ANN index)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Runs the command line; prints a table; returns 0, or 1 with the server's error."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    new_customer = args.vote or args.answer
    if not (args.status or args.metadata or args.user or args.item or new_customer):
        parser.error("give --user, --item or --vote / --answer (one or more), --status or "
                     "--metadata")
    if sum(map(bool, (args.user, args.item, new_customer))) > 1:
        parser.error("give --user (recommend), --item (the look head) or --vote / --answer (a "
                     "new customer), not two of them")
    try:
        args.vote = [_vote(text) for text in args.vote]
        args.answer = dict(_answer(text) for text in args.answer)
    except ValueError as error:
        parser.error(str(error))
    try:
        print(_run(args))
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


def _vote(text: str) -> tuple[str, float]:
    """``ITEM=VALUE`` -> (item id, vote)."""
    item, separator, value = text.rpartition("=")
    try:
        if not (separator and item):
            raise ValueError
        return item, float(value)
    except ValueError:
        raise ValueError(f"--vote takes ITEM=VALUE, e.g. I3=1. Received: {text!r}") from None


def _answer(text: str) -> tuple[str, str]:
    """``QUESTION=ANSWER`` -> (question, answer); the answer may hold "="."""
    question, separator, answer = text.partition("=")
    if not (separator and question and answer):
        raise ValueError(f"--answer takes QUESTION=ANSWER, e.g. favourite_colour=navy. "
                         f"Received: {text!r}")
    return question, answer


def _run(args: argparse.Namespace) -> str:
    if args.status:
        return format_status(status(args.server, args.model, args.version, args.label,
                                    args.timeout))
    if args.metadata:
        return format_metadata(metadata(args.server, args.model, args.version, args.label,
                                        args.timeout))
    if args.item:
        look = similar if args.look == contract.SIMILAR.name else complementary
        result = look(args.server, args.model, args.item, k=args.k, category=args.category,
                      exclude=args.exclude or None, version=args.version, label=args.label,
                      timeout=args.timeout)
        header = f"model {args.model} version {result['version']} signature {args.look}"
        return header + "\n" + format_recommendations(args.item, result, "item")
    if args.vote or args.answer:
        signature = contract.RECOMMEND_NEW_CUSTOMER.name
        result = recommend_new_customer(args.server, args.model, [args.vote], args.k,
                                        args.category, args.exclude or None, args.version,
                                        args.label, args.timeout,
                                        survey=args.answer or None)
        header = f"model {args.model} version {result['version']} signature {signature}"
        return header + "\n" + format_recommendations(["(new customer)"], result, "customer")
    result = recommend(args.server, args.model, args.user, args.k, args.category,
                       args.exclude or None, args.version, args.label, args.approximate,
                       args.timeout, exclude_seen=False if args.include_seen else None)
    signature = RECOMMEND_APPROXIMATE if args.approximate else RECOMMEND
    header = f"model {args.model} version {result['version']} signature {signature}"
    return header + "\n" + format_recommendations(args.user, result)


if __name__ == "__main__":
    sys.exit(main())
