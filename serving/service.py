"""TF Serving's API calls without a transport: what gRPC (``server.py``) and REST (``rest.py``)
both answer, built once.

- :func:`servable_for` finds the servable a ``ModelSpec`` names (name, and a version, a label,
  or neither for the latest).
- :func:`metadata_response`: GetModelMetadata. ``metadata_field`` must be ``["signature_def"]``;
  the answer packs a ``SignatureDefMap`` (every SignatureDef of ``saved_model.pb``, plus
  ``recommend_approximate`` when the version has an approximate index) into
  ``google.protobuf.Any`` under the key ``"signature_def"``, exactly as TF Serving does.
- :func:`status_response`: GetModelStatus, ``ModelVersionStatus`` per version, newest first.
- :func:`refuse_unsupported`: Classify / Regress / MultiInference. Our exports have Predict
  signatures only, so the answer is UNIMPLEMENTED naming the signatures that exist and saying to
  use Predict; :func:`refuse_method` is the same answer for a request that names no model (a
  MultiInference without tasks).

Every function raises :class:`~.errors.ServingError` for a request it refuses.
"""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from .errors import ServingError, invalid_argument
from .model_manager import ModelManager
from .predict import DEFAULT_SIGNATURE, model_spec
from .servable import Servable

SIGNATURE_DEF_FIELD = "signature_def"


def servable_for(manager: ModelManager, spec: model_pb2.ModelSpec) -> Servable:
    """The servable ``spec`` names; INVALID_ARGUMENT when it names no model."""
    if not spec.name:
        raise invalid_argument(f"model_spec.name is empty; models served: "
                               f"{manager.model_names()}")
    choice = spec.WhichOneof("version_choice")
    return manager.servable(spec.name,
                            version=spec.version.value if choice == "version" else None,
                            label=spec.version_label if choice == "version_label" else None)


def signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    """Every SignatureDef of the version, as GetModelMetadata returns them."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signature_defs.items():
        signatures.signature_def[name].CopyFrom(signature)
    return signatures


def metadata_response(servable: Servable, metadata_fields: list[str]
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata for ``servable`` (see the module docstring)."""
    if not metadata_fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one "
                               f"metadata_field; supported: [{SIGNATURE_DEF_FIELD!r}]")
    unsupported = sorted(set(metadata_fields) - {SIGNATURE_DEF_FIELD})
    if unsupported:
        raise invalid_argument(f"Metadata field(s) {unsupported} not supported; supported: "
                               f"[{SIGNATURE_DEF_FIELD!r}]")
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(servable))
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_def_map(servable))
    return response


def status_response(manager: ModelManager, spec: model_pb2.ModelSpec
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus: the state of each version of ``spec.name`` (or of the one it names)."""
    if not spec.name:
        raise invalid_argument(f"model_spec.name is empty; models served: "
                               f"{manager.model_names()}")
    choice = spec.WhichOneof("version_choice")
    states = manager.version_states(
        spec.name, version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None)
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in states:
        entry = response.model_version_status.add(version=version, state=state.state)
        entry.status.error_code = state.error_code
        entry.status.error_message = state.error_message
    return response


def refuse_unsupported(servable: Servable, signature_name: str, method: str) -> ServingError:
    """The UNIMPLEMENTED answer to Classify / Regress (``method``) on a Predict-only model."""
    name = signature_name or DEFAULT_SIGNATURE
    methods = {sig: servable.signature_defs[sig].method_name for sig in servable.signature_names}
    return ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not supported by this server: model {servable.name!r} version "
        f"{servable.version} signature {name!r} is "
        f"{methods.get(name, 'not a signature of this model')}; its signatures are "
        f"{sorted(methods)}, all answered by Predict (PredictionService/Predict, REST :predict)")


def refuse_method(method: str) -> ServingError:
    """The UNIMPLEMENTED answer to ``method`` when the request names no model."""
    return ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not supported by this server: the exported signatures are Predict "
        "signatures; use Predict (PredictionService/Predict, REST :predict)")
