"""TF Serving's REST API: predict in both formats, status, metadata, and errors as JSON."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from tfrec_fashion_serving.errors import ServingError
from tfrec_fashion_serving.predict import TensorInfo
from tfrec_fashion_serving.rest import array_from_json, json_value
from tfrec_fashion_serving.testing import recommend_in_process


@pytest.fixture(scope="module")
def rest(shared_server):
    """``rest(path, body=None) -> (http status, JSON answer)``; a body makes it a POST."""

    def call(path, body=None):
        data = None if body is None else (body if isinstance(body, bytes) else
                                          json.dumps(body).encode())
        request = urllib.request.Request(f"http://127.0.0.1:{shared_server.rest_port}{path}",
                                         data=data)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return call


def _expected(reference, seed, users, **kwargs):
    expected = recommend_in_process(reference(seed), users, **kwargs)
    return {"item_ids": [[i.decode() for i in row] for row in expected["item_ids"]],
            "scores": expected["scores"], "cold_start": expected["cold_start"].tolist()}


def test_row_format_predict_equals_the_saved_model(rest, reference, assert_close):
    status, answer = rest("/v1/models/toy:predict", {
        "signature_name": "recommend",
        "instances": [{"user_id": "u1", "k": 4, "category": "c0"},
                      {"user_id": "nobody", "k": 4, "category": "c0"}]})
    assert status == 200, answer
    expected = _expected(reference, 1, ["u1", "nobody"], k=4, category="c0")
    rows = answer["predictions"]
    assert [row["item_ids"] for row in rows] == expected["item_ids"]
    # The same signature on the same inputs; JSON carries each float32 exactly.
    assert_close([row["scores"] for row in rows], expected["scores"])
    assert [row["cold_start"] for row in rows] == expected["cold_start"]


def test_columnar_predict_with_defaults_and_a_version(rest, reference, assert_close):
    status, answer = rest("/v1/models/toy/versions/1:predict",
                          {"inputs": {"user_id": ["u2", "u3"],
                                      "exclude_item_ids": [["i0", "i1"]]}})
    assert status == 200, answer
    expected = _expected(reference, 0, ["u2", "u3"], exclude=[["i0", "i1"]])
    outputs = answer["outputs"]
    assert outputs["item_ids"] == expected["item_ids"]
    assert_close(outputs["scores"], expected["scores"])


def test_a_label_and_a_single_input_signature_take_bare_values(rest, reference, assert_close):
    status, answer = rest("/v1/models/toy/labels/stable:predict",
                          {"signature_name": "user_query", "instances": ["u4", "u5"]})
    assert status == 200, answer
    expected = reference(0).signatures["user_query"](user_id=np.array([b"u4", b"u5"]))
    assert_close([row["query"] for row in answer["predictions"]], expected["query"].numpy())


def test_padding_comes_back_as_empty_strings_and_minus_infinity(rest):
    status, answer = rest("/v1/models/toy:predict", {"inputs": {
        "user_id": ["u1"], "k": [40], "category": ["c1"]}})
    assert status == 200, answer
    item_ids, scores = answer["outputs"]["item_ids"][0], answer["outputs"]["scores"][0]
    assert item_ids[-1] == "" and scores[-1] == -np.inf  # 13 items in c1 (i1, i4, .., i37)
    assert sum(item != "" for item in item_ids) == 13


def test_status_as_tf_serving_writes_it(rest):
    status, answer = rest("/v1/models/toy")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": str(version), "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}} for version in (2, 1)]}
    status, answer = rest("/v1/models/toy/versions/1")
    assert [entry["version"] for entry in answer["model_version_status"]] == ["1"]


def test_metadata_as_tf_serving_writes_it(rest):
    status, answer = rest("/v1/models/toy/labels/stable/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    recommend = signatures["recommend"]
    assert recommend["method_name"] == "tensorflow/serving/predict"
    assert recommend["inputs"]["k"]["dtype"] == "DT_INT32"
    assert recommend["inputs"]["exclude_item_ids"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""}, {"size": "-1", "name": ""}]


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/models/nope:predict", {"instances": ["u1"]}, 404, "Latest(nope)"),
    ("/v1/models/toy/versions/7:predict", {"instances": ["u1"]}, 404, "Specific(toy, 7)"),
    ("/v1/models/toy/labels/beta:predict", {"instances": ["u1"]}, 400,
     "Unrecognized servable version label: beta"),
    ("/v1/models/toy:predict", {"signature_name": "nope", "instances": ["u1"]}, 400,
     'Serving signature key "nope" not found'),
    ("/v1/models/toy:predict", {"instances": [{"user_id": "u1", "k": 0}]}, 400,
     "k must be in [1, 40]"),
    ("/v1/models/toy:predict", {"inputs": {"user_id": ["u1"], "k": ["five"]}}, 400,
     "Input 'k' of signature 'serving_default' expects DT_INT32"),
    ("/v1/models/toy:predict", {"inputs": {"user_id": [["u1"]]}}, 400,
     "expects shape [-1]"),
    ("/v1/models/toy:predict", {"signature_name": "score", "inputs": {"user_id": ["u1"]}}, 400,
     "Missing but required: ['item_ids']"),
    ("/v1/models/toy:predict", {"instances": [{"user_id": "u1"}, {"user_id": "u2", "k": 3}]},
     400, "every instance must name the same inputs"),
    ("/v1/models/toy:predict", {"instances": ["u1"], "inputs": {}}, 400, "exactly one of"),
    ("/v1/models/toy:predict", b"{not json", 400, "JSON Parse error"),
    ("/v1/models/toy:classify", {"instances": ["u1"]}, 501, "all answered by Predict"),
    ("/v2/whatever", {"instances": ["u1"]}, 404, "Malformed request"),
])
def test_errors_come_back_as_json_with_tf_serving_http_codes(rest, path, body, status, message):
    code, answer = rest(path, body)
    assert (code, list(answer)) == (status, ["error"]), answer
    assert message in answer["error"]
    assert rest("/v1/models/toy:predict", {"instances": ["u1"]})[0] == 200


def test_json_conversions():
    info = TensorInfo(dtype=7)  # DT_STRING
    array = array_from_json("s", "x", info, [["a", {"b64": "aGk="}]])
    assert array.tolist() == [[b"a", b"hi"]]
    with pytest.raises(ServingError, match="not a rectangular tensor"):
        array_from_json("s", "x", TensorInfo(dtype=3), [[1, 2], [3]])
    with pytest.raises(ServingError, match="out of range"):
        array_from_json("s", "x", TensorInfo(dtype=3), [2 ** 40])
    assert json_value("ids", np.array([b"caf\xc3\xa9", b"\xff"], dtype=object)) == [
        "café", {"b64": "/w=="}]
    assert json_value("image_bytes", np.array([b"ab"], dtype=object)) == [{"b64": "YWI="}]
    assert json_value("s", np.array([0.1, -np.inf], np.float32)) == [0.1, -np.inf]
