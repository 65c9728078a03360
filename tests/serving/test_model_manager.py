"""models.config handling and ModelManager: which versions become visible, load, fail, unload.

Manager passes are driven with ``poll_once`` (no thread), so every step is deterministic.
"""

import os
import shutil

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow import make_ndarray
from tensorflow_serving.apis import model_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2
from tfrec_fashion_serving import model_config, testing
from tfrec_fashion_serving.client import predict_request, recommend_inputs
from tfrec_fashion_serving.errors import ServingError
from tfrec_fashion_serving.model_manager import ModelManager, State
from tfrec_fashion_serving.predict import predict
from tfrec_fashion_serving.servable import APPROXIMATE_SIGNATURE


def _model(text: str) -> model_server_config_pb2.ModelConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelConfig())


def _request(signature: str, inputs: dict) -> predict_pb2.PredictRequest:
    return predict_request("toy", inputs, signature)


# === models.config ===

def test_base_paths_resolve_absolute_relative_and_container_paths(tmp_path):
    config_dir = str(tmp_path / "exports")
    existing = str(tmp_path)
    assert model_config.resolve_base_path(existing, config_dir) == existing
    assert model_config.resolve_base_path("vbpr", config_dir) == os.path.join(config_dir, "vbpr")
    assert model_config.resolve_base_path("/models/vbpr", config_dir) == \
        os.path.join(config_dir, "vbpr")
    assert model_config.resolve_base_path("/srv/m/vbpr", config_dir, container_root="/srv/m") \
        == os.path.join(config_dir, "vbpr")
    assert model_config.resolve_base_path("/elsewhere/vbpr", config_dir) == "/elsewhere/vbpr"


def test_only_complete_integer_versions_are_discovered(tmp_path):
    for name in ("1", "7", ".tmp-9-abc", "8", "notes"):
        os.makedirs(tmp_path / name)
    for name in ("1", "7", ".tmp-9-abc"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "12").write_text("a file, not a version")
    assert model_config.discover_versions(str(tmp_path)) == {
        1: str(tmp_path / "1"), 7: str(tmp_path / "7")}
    assert model_config.discover_versions(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("policy, expected", [
    ("", {5}),
    ("model_version_policy { latest { num_versions: 2 } }", {5, 3}),
    ("model_version_policy { all {} }", {1, 3, 5}),
    ("model_version_policy { specific { versions: 1 versions: 4 } }", {1}),
])
def test_version_policies(policy, expected):
    model = _model(f'name: "m" base_path: "/x" {policy}')
    assert model_config.select_versions(model, [1, 3, 5]) == expected


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/a' } } nonsense", "not a ModelServer"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tflite' } }",
     "only 'tensorflow'"),
    ("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' "
     "base_path: '/b' } }", "configured twice"),
    ("model_config_list { config { name: 'a' } }", "needs a name and a base_path"),
])
def test_bad_configs_are_refused_with_the_problem_named(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        model_config.read_config(str(path))


# === ModelManager ===

def test_half_written_exports_never_become_visible(export_base, saved_versions):
    export_base.add("toy", 1)
    manager = ModelManager(export_base.config({"toy": "model_version_policy { all {} }"}))
    _, template = saved_versions[0]
    shutil.copytree(template, os.path.join(export_base.root, "toy", ".tmp-2-abc"))
    partial = os.path.join(export_base.root, "toy", "3")
    shutil.copytree(os.path.join(template, "variables"), os.path.join(partial, "variables"))
    manager.poll_once()
    assert [version for version, _ in manager.version_states("toy")] == [1]
    shutil.copy(os.path.join(template, "saved_model.pb"), partial)  # the export completes
    shutil.copytree(os.path.join(template, "assets.extra"), os.path.join(partial, "assets.extra"))
    manager.poll_once()
    assert manager.available_versions("toy") == [1, 3]


def test_failed_load_leaves_the_previous_version_serving(export_base, caplog):
    export_base.add("toy", 1)
    manager = ModelManager(export_base.config({"toy": None}))
    manager.poll_once()
    broken = os.path.join(export_base.root, "toy", "2")
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as handle:
        handle.write(b"not a SavedModel")
    manager.poll_once()
    manager.poll_once()  # not retried while the files are unchanged
    assert sum("version 2 failed to load" in line for line in caplog.messages) == 1
    states = dict(manager.version_states("toy"))
    assert states[2].state == State.END and states[2].error_code != 0
    assert f"loading {broken} failed" in states[2].error_message
    assert states[1].state == State.AVAILABLE
    assert manager.servable("toy").version == 1


def test_failed_warmup_keeps_the_version_out_of_service(export_base):
    export_base.add("toy", 1)
    path = export_base.add("toy", 2)
    bad = _request("recommend", recommend_inputs(["u1"], k=0))
    testing.write_warmup(os.path.join(path, testing.WARMUP_FILE), [bad])
    manager = ModelManager(export_base.config({"toy": "model_version_policy { all {} }"}))
    manager.poll_once()
    states = dict(manager.version_states("toy"))
    assert states[2].state == State.END
    assert "warm-up request 0" in states[2].error_message
    assert "k must be in [1, 40]" in states[2].error_message
    assert manager.available_versions("toy") == [1]


def test_new_version_replaces_the_old_under_latest_policy(export_base):
    export_base.add("toy", 1)
    manager = ModelManager(export_base.config({"toy": None}))
    manager.poll_once()
    held = manager.servable("toy")  # a request in flight holds version 1
    export_base.add("toy", 2, seed=1)
    manager.poll_once()
    assert manager.servable("toy").version == 2
    assert dict(manager.version_states("toy"))[1].state == State.END
    response = predict(held, _request("user_query", {"user_id": np.array([b"u1"], object)}))
    assert response.model_spec.version.value == 1  # the unloaded version still answers it


def test_config_changes_add_and_remove_models_and_labels(export_base):
    export_base.add("toy", 1)
    export_base.add("other", 4, seed=1)
    config = export_base.config({"toy": None})
    manager = ModelManager(config)
    manager.poll_once()
    with pytest.raises(ServingError) as error:
        manager.servable("other")
    assert error.value.code == grpc.StatusCode.NOT_FOUND and "not in the model config" in str(
        error.value)
    export_base.config({"toy": None, "other": 'version_labels { key: "stable" value: 4 }'})
    os.utime(config, ns=(0, 10**18))  # a new mtime, even within the file system's resolution
    manager.poll_once()
    assert manager.servable("other", label="stable").version == 4
    export_base.config({"other": None})
    manager.poll_once()
    assert manager.model_names() == ["other"]
    with pytest.raises(ServingError, match="not in the model config"):
        manager.servable("toy")


def test_a_broken_config_edit_keeps_the_previous_config(export_base):
    export_base.add("toy", 1)
    config = export_base.config({"toy": None})
    manager = ModelManager(config)
    manager.poll_once()
    with open(config, "a") as handle:
        handle.write("this is not a text proto")
    manager.poll_once()
    assert manager.servable("toy").version == 1


def test_lookup_errors_follow_tf_serving_codes(export_base):
    export_base.add("toy", 1)
    manager = ModelManager(export_base.config(
        {"toy": 'version_labels { key: "stable" value: 1 }'}))
    manager.poll_once()
    cases = [(dict(name="toy", version=9), grpc.StatusCode.NOT_FOUND, "Specific(toy, 9)"),
             (dict(name="toy", label="canary"), grpc.StatusCode.INVALID_ARGUMENT,
              "Unrecognized servable version label: canary"),
             (dict(name="nope"), grpc.StatusCode.NOT_FOUND, "Latest(nope)")]
    for kwargs, code, message in cases:
        with pytest.raises(ServingError) as error:
            manager.servable(**kwargs)
        assert error.value.code == code and message in error.value.message


def test_approximate_signature_matches_exact_recommend(export_base, assert_close):
    export_base.add("toy", 1, ann=True)
    manager = ModelManager(export_base.config({"toy": None}),
                           ann_loader=testing.ExactAnnIndex.load)
    manager.poll_once()
    servable = manager.servable("toy")
    assert servable.signature_defs[APPROXIMATE_SIGNATURE] == servable.signature_defs["recommend"]
    inputs = recommend_inputs(["u1", "u2", "nobody"], k=5, category="c1",
                              exclude=["i15", "i4"])
    exact = predict(servable, _request("recommend", inputs))
    approximate = predict(servable, _request(APPROXIMATE_SIGNATURE, inputs))
    assert approximate.model_spec.signature_name == APPROXIMATE_SIGNATURE
    for alias in ("item_ids", "cold_start"):
        np.testing.assert_array_equal(make_ndarray(approximate.outputs[alias]),
                                      make_ndarray(exact.outputs[alias]))
    # The exact ANN index (NumPy) against the graph's matmul: 8-term dot products in two
    # orders, 2 (n - 1) = 14 ulps of their terms.
    assert_close(make_ndarray(approximate.outputs["scores"]),
                 make_ndarray(exact.outputs["scores"]), ulps=14)


def test_a_failing_ann_index_is_left_out_and_the_model_still_serves(export_base):
    export_base.add("toy", 1, ann=True)

    def broken_loader(directory):
        raise OSError(f"cannot read {directory}")

    manager = ModelManager(export_base.config({"toy": None}), ann_loader=broken_loader)
    manager.poll_once()
    servable = manager.servable("toy")
    assert APPROXIMATE_SIGNATURE not in servable.signature_defs
    assert "recommend" in servable.signature_names
    model_spec = model_pb2.ModelSpec(name="toy", signature_name=APPROXIMATE_SIGNATURE)
    with pytest.raises(ServingError) as error:
        predict(servable, predict_pb2.PredictRequest(model_spec=model_spec))
    assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_ann_assets_never_stop_a_version_from_serving_with_the_default_loader(export_base):
    """Whether or not ``tfrec_fashion_serving.ann`` exists yet, and whatever it makes of the
    toy's ``assets.extra/ann/``, the exact signatures serve."""
    export_base.add("toy", 1, ann=True)
    manager = ModelManager(export_base.config({"toy": None}))
    manager.poll_once()
    servable = manager.servable("toy")
    response = predict(servable, _request("recommend", recommend_inputs(["u1"], k=2)))
    assert make_ndarray(response.outputs["item_ids"]).shape == (1, 2)


def test_approximate_signature_refuses_bad_k_as_invalid_argument(export_base):
    export_base.add("toy", 1, ann=True)
    manager = ModelManager(export_base.config({"toy": None}),
                           ann_loader=testing.ExactAnnIndex.load)
    manager.poll_once()
    request = _request(APPROXIMATE_SIGNATURE, recommend_inputs(["u1", "u2"], k=0))
    with pytest.raises(ServingError) as error:
        predict(manager.servable("toy"), request)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "k must be in [1, 40]" in error.value.message


def test_one_model_given_without_a_config_file(export_base):
    """``--model_name`` / ``--model_base_path``: a ModelConfig built on the command line."""
    export_base.add("toy", 3)
    model = model_server_config_pb2.ModelConfig(
        name="solo", base_path=os.path.join(export_base.root, "toy"), model_platform="tensorflow")
    manager = ModelManager(models=[model])
    manager.poll_once()
    assert manager.servable("solo").version == 3
