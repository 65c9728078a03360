"""The client library and its command line, against the shared server."""

import grpc
import numpy as np
import pytest
from tfrec_fashion_serving import client
from tfrec_fashion_serving.testing import recommend_in_process


@pytest.fixture(scope="module")
def target(shared_server):
    return f"127.0.0.1:{shared_server.port}"


def test_recommend_returns_what_the_saved_model_returns(target, reference, assert_close):
    result = client.recommend(target, "toy", ["u1", "u9"], k=3, category="c1",
                              exclude=[["i4"], ["i7", "i10"]], version=1)
    expected = recommend_in_process(reference(0), ["u1", "u9"], k=3, category="c1",
                                    exclude=[["i4", ""], ["i7", "i10"]])
    assert result["version"] == 1
    np.testing.assert_array_equal(result["item_ids"], expected["item_ids"])
    assert_close(result["scores"], expected["scores"])  # the same signature on the same inputs


def test_predict_metadata_and_status_over_one_channel(target):
    with grpc.insecure_channel(target) as channel:
        outputs = client.predict(channel, "toy", {"user_id": np.array([b"u1"], dtype=object)},
                                 signature="user_query", label="canary")
        signatures = client.metadata(channel, "toy")
        versions = client.status(channel, "toy")
    assert outputs["version"] == 2 and outputs["query"].shape == (1, 8)
    assert signatures["score"].inputs["item_ids"].dtype == 7  # DT_STRING
    assert [(v["version"], v["state"]) for v in versions] == [(2, "AVAILABLE"),
                                                              (1, "AVAILABLE")]


def test_command_line_prints_a_table(target, reference, capsys):
    assert client.main(["--server", target, "--model", "toy", "--user", "u1", "--user",
                        "stranger", "--k", "3", "--label", "stable"]) == 0
    printed = capsys.readouterr().out
    expected = recommend_in_process(reference(0), ["u1", "stranger"], k=3)
    assert "model toy version 1 signature recommend" in printed
    lines = printed.splitlines()[2:]
    assert [line.split()[2] for line in lines] == [
        item.decode() for row in expected["item_ids"] for item in row]
    assert "cold-start" in lines[3] and "cold-start" not in lines[0]


def test_command_line_status_metadata_and_errors(target, capsys):
    assert client.main(["--server", target, "--model", "toy", "--status"]) == 0
    assert "AVAILABLE" in capsys.readouterr().out
    assert client.main(["--server", target, "--model", "toy", "--metadata"]) == 0
    printed = capsys.readouterr().out
    assert "recommend  (tensorflow/serving/predict)" in printed
    assert "in  k                    int32    [-1]  default" in printed
    assert client.main(["--server", target, "--model", "toy", "--user", "u1", "--k", "99"]) == 1
    assert "INVALID_ARGUMENT: assertion failed: [k must be in [1, 40]]" in \
        capsys.readouterr().err
