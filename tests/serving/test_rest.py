"""TF Serving's REST API: predict in both formats, status, metadata, errors as JSON, and hostile
traffic (issue 15: oversized, unsized and never-arriving bodies, idle and trickling connections,
too many connections, deep JSON, booleans as numbers, draining on stop)."""

import http.client
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from tfrec_fashion_serving.errors import ServingError
from tfrec_fashion_serving.limits import Limits
from tfrec_fashion_serving.predict import TensorInfo
from tfrec_fashion_serving.rest import RestServer, array_from_json, json_value
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
    # Classify / Regress bodies are not predict bodies: 501 before the body is read as one.
    ("/v1/models/toy:classify", {"signature_name": "recommend", "examples": [{"user_id": "u1"}]},
     501, "Classify is not supported by this server: model 'toy' version 2 signature "
          "'recommend' is tensorflow/serving/predict"),
    ("/v1/models/toy/versions/1:regress", b"not json", 501, "Regress is not supported"),
    ("/v1/models/nope:classify", {"examples": []}, 404, "Latest(nope)"),
    # 100,000 levels of nesting: the parser's RecursionError was a 500.
    ("/v1/models/toy:predict", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     "JSON nested too deeply"),
    # JSON true / false are not numbers (numpy reads [true] as 1, [3, true] as [3, 1]).
    ("/v1/models/toy:predict", {"inputs": {"user_id": ["u1"], "k": [True]}}, 400,
     "Input 'k' of signature 'serving_default' expects DT_INT32, received [True]"),
    ("/v1/models/toy:predict", {"instances": [{"user_id": "u1", "k": 3},
                                              {"user_id": "u2", "k": True}]}, 400,
     "Input 'k' of signature 'serving_default' expects DT_INT32, received a boolean (true / "
     "false are not numbers) in [3, True]"),
    ("/v1/models/toy:predict", {"inputs": {"user_id": ["u1"], "k": [2.0]}}, 400,
     "Input 'k' of signature 'serving_default' expects DT_INT32, received [2.0]"),
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


def test_json_booleans_are_only_for_bool_inputs_and_nesting_is_bounded():
    assert array_from_json("s", "b", TensorInfo(dtype=10), [True, False]).tolist() == [True,
                                                                                        False]
    with pytest.raises(ServingError, match=r"'b' of signature 's' expects DT_BOOL, received \[1\]"):
        array_from_json("s", "b", TensorInfo(dtype=10), [1])
    with pytest.raises(ServingError, match=r"'x' of signature 's' expects DT_FLOAT, received a "
                                           r"boolean \(true / false are not numbers\)"):
        array_from_json("s", "x", TensorInfo(dtype=1), [[1.5, True]])
    assert array_from_json("s", "x", TensorInfo(dtype=1), [[1.5, 2]]).tolist() == [[1.5, 2.0]]
    deep = "u1"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ServingError, match="'x' of signature 's': JSON nested too deeply"):
        array_from_json("s", "x", TensorInfo(dtype=7), deep)
    # A message shows a value cut short, never megabytes of it.
    with pytest.raises(ServingError) as error:
        array_from_json("s", "x", TensorInfo(dtype=3), [0.5] * 100_000)
    assert len(error.value.message) < 200


# === Hostile traffic (issue 15), against servers with small limits ===

PREDICT = b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: test\r\n"
STATUS = b"GET /v1/models/toy HTTP/1.1\r\nHost: test\r\n\r\n"
VALID_BODY = json.dumps({"instances": [{"user_id": "u1", "k": 3}]}).encode()
SMALL_LIMITS = Limits(max_request_bytes=64 * 1024, rest_api_read_timeout_seconds=0.5,
                      rest_api_max_connections=4)


@pytest.fixture
def toy_config(export_base):
    export_base.add("toy", 1)
    return export_base.config({"toy": None})


@pytest.fixture
def small_server(toy_config, serve):
    """A server whose REST API takes 64 KiB bodies, waits 0.5 s for a request, serves 4
    connections at once."""
    return serve(toy_config, rest_port=0, limits=SMALL_LIMITS)


def _until_closed(port: int, data: bytes) -> bytes:
    """Sends ``data`` on a new connection and reads until the server closes it (a test that
    waits for a close that never comes fails on the 10 s socket timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
    return b"".join(received)


def _parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    """``(status, headers in lower case, JSON body)`` of one raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` within its timeout, sending nothing more."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _connection_threads(port: int) -> int:
    return sum(thread.name == f"rest-{port}-connection" for thread in threading.enumerate())


def _eventually(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


REFUSED_BODIES = [
    # Issue 15: "Content-Length: 1000000000" and no body was never answered; a 50 MB body was
    # read whole (19 s, 9 GB). Refused from the headers, the body unread.
    (PREDICT + b"Content-Length: 1000000000\r\n\r\n", 413,
     "The request body is 1000000000 bytes; the limit is 65536 (--max_request_bytes)"),
    (PREDICT + b"Content-Length: 200000\r\n\r\n" + b"[" * 200_000, 413,
     "The request body is 200000 bytes; the limit is 65536 (--max_request_bytes)"),
    # Nor is it asked for with "100 Continue".
    (PREDICT + b"Expect: 100-continue\r\nContent-Length: 50000000\r\n\r\n", 413,
     "The request body is 50000000 bytes; the limit is 65536 (--max_request_bytes)"),
    (PREDICT + b"\r\n" + VALID_BODY, 411, "a POST needs a Content-Length header"),
    (PREDICT + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
     "Transfer-Encoding 'chunked' is not supported"),
    (PREDICT + b"Content-Length: 12abc\r\n\r\n", 400, "invalid Content-Length '12abc'"),
    (PREDICT + b"Content-Length: -5\r\n\r\n", 400, "invalid Content-Length '-5'"),
    (PREDICT + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\n", 400,
     "invalid Content-Length '5, 7'"),
    # Within the limit but never arriving: the read timeout answers and frees the thread.
    (PREDICT + b"Content-Length: 100\r\n\r\n" + VALID_BODY[:10], 408,
     "the request body (100 bytes declared) did not arrive within 0.5 s "
     "(--rest_api_read_timeout_seconds)"),
]


def test_bodies_the_server_will_not_read_are_answered_and_closed(small_server):
    port = small_server.rest_port
    wrong = []
    for request_head, status, message in REFUSED_BODIES:
        answer = _until_closed(port, request_head)
        code, headers, body = _parse(answer)
        if (code, list(body), headers["connection"]) != (status, ["error"], "close") or \
                message not in body["error"] or answer.startswith(b"HTTP/1.1 100"):
            wrong.append(f"{request_head[:120]!r}: {answer[:300]!r}")
    assert not wrong, "\n".join(wrong)
    code, _, body = _parse(_until_closed(port, PREDICT + b"Connection: close\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(VALID_BODY)
                                         + VALID_BODY))
    assert code == 200 and len(body["predictions"][0]["item_ids"]) == 3


def test_a_client_trickling_its_request_is_dropped_after_the_read_timeout(small_server):
    # One header byte every 0.1 s never lets a per-read timeout of 0.5 s expire; the request as
    # a whole must arrive within 0.5 s of its first byte.
    with socket.create_connection(("127.0.0.1", small_server.rest_port), timeout=10) as sock:
        sock.sendall(PREDICT)
        dropped = False
        for _ in range(100):  # up to 10 s
            try:
                sock.sendall(b"X")
            except OSError:
                dropped = True
                break
            if select.select([sock], [], [], 0.1)[0]:
                dropped = _closed_by_server(sock)
                break
        assert dropped


def test_connections_over_the_limit_get_503_at_once_and_idle_ones_are_closed(toy_config, serve):
    # Issue 15: 300 idle connections held 300 threads for over 70 s.
    limits = Limits(rest_api_read_timeout_seconds=2.0, rest_api_max_connections=4)
    port = serve(toy_config, rest_port=0, limits=limits).rest_port
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        held[0].sendall(STATUS)  # a keep-alive connection, idle after its answer
        response = http.client.HTTPResponse(held[0])
        response.begin()
        assert response.status == 200 and not response.will_close
        response.read()
        for _ in range(10):
            code, headers, body = _parse(_until_closed(port, STATUS))
            assert code == 503 and headers["connection"] == "close"
            assert body == {"error": "The server is serving 4 REST connections, its limit "
                                     "(--rest_api_max_connections); try again later"}
        assert _connection_threads(port) <= 4  # a refused connection holds no thread
        assert all(_closed_by_server(sock) for sock in held)  # idle for the read timeout
    finally:
        for sock in held:
            sock.close()
    assert _eventually(lambda: _connection_threads(port) == 0)
    code, _, body = _parse(_until_closed(port, STATUS.replace(b"\r\n\r\n",
                                                              b"\r\nConnection: close\r\n\r\n")))
    assert code == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.fixture
def blocked_run(monkeypatch):
    """``blocked_run(server)``: the toy model's run waits (``entered`` set) until ``release``."""
    entered, release = threading.Event(), threading.Event()

    def block(server):
        servable = server.manager.servable("toy")
        run = servable.run

        def blocked(signature_name, inputs):
            entered.set()
            release.wait(30)
            return run(signature_name, inputs)

        monkeypatch.setattr(servable, "run", blocked)
        return entered, release

    yield block
    release.set()


def _predict(port: int, answers: dict) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/models/toy:predict", VALID_BODY)
        response = connection.getresponse()
        answers.update(status=response.status, connection=response.getheader("Connection"),
                       body=json.loads(response.read()))
    except (http.client.HTTPException, OSError) as error:
        answers.update(error=error)
    finally:
        connection.close()


def _refused(port: int) -> bool:
    """Whether connecting is refused (a connection accepted while stop() closes the port is
    answered 503 "shutting down")."""
    try:
        code, _, body = _parse(_until_closed(port, STATUS))
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    assert (code, body) == (503, {"error": "The server is shutting down"})
    return False


def _rest_over_a_blocked_model(toy_config, serve, blocked_run):
    """``(rest, entered, release)``: a started RestServer whose model blocks until released."""
    server = serve(toy_config)
    entered, release = blocked_run(server)
    rest = RestServer(server.manager, port=0, limits=Limits(rest_api_read_timeout_seconds=30))
    rest.start()
    return rest, entered, release


def test_stop_lets_a_request_in_flight_finish_and_refuses_new_connections(toy_config, serve,
                                                                          blocked_run):
    rest, entered, release = _rest_over_a_blocked_model(toy_config, serve, blocked_run)
    try:
        answers = {}
        in_flight = threading.Thread(target=_predict, args=(rest.port, answers))
        in_flight.start()
        assert entered.wait(10)
        idle = socket.create_connection(("127.0.0.1", rest.port), timeout=10)
        # Accepted before stop() begins: one accepted after it is answered 503, not closed idle.
        assert _eventually(lambda: _connection_threads(rest.port) == 2)
        stopping = threading.Thread(target=rest.stop, kwargs={"grace": 5.0})
        stopping.start()
        assert _eventually(lambda: _refused(rest.port))
        assert _closed_by_server(idle)  # at once: the read timeout is 30 s
        idle.close()
        assert stopping.is_alive()  # waiting for the request in flight
        release.set()
        in_flight.join(10)
        stopping.join(10)
        assert not stopping.is_alive()
        assert (answers["status"], answers["connection"]) == (200, "close"), answers
        assert len(answers["body"]["predictions"][0]["item_ids"]) == 3
    finally:
        release.set()
        rest.stop()


def test_stop_closes_a_request_still_running_when_its_grace_is_over(toy_config, serve,
                                                                    blocked_run):
    rest, entered, release = _rest_over_a_blocked_model(toy_config, serve, blocked_run)
    answers = {}
    in_flight = threading.Thread(target=_predict, args=(rest.port, answers))
    in_flight.start()
    assert entered.wait(10)
    rest.stop(grace=0.2)  # returns although the request still runs
    in_flight.join(10)
    assert not in_flight.is_alive() and isinstance(answers.get("error"), OSError | 
                                                   http.client.HTTPException), answers
    rest.stop(grace=5)  # a second call returns at once
