"""The service against a real server on loopback: every endpoint, both formats, errors,
batching of concurrent clients (each gets its own answer), pipelining."""

from __future__ import annotations

import json
import socket
import threading

import numpy as np
import pytest
import requests

from tests.serving.conftest import CLASSES, FEATURES, post, rows


def expected(model_files, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model_files["model"](batch))


def test_status_of_the_model_and_its_version(server):
    for path in ("/v1/models/tiny", "/v1/models/tiny/versions/1"):
        r = requests.get(server.url(path), timeout=10)
        assert r.status_code == 200
        (status,) = r.json()["model_version_status"]
        assert status == {
            "version": "1",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }


def test_metadata_describes_the_serving_default_signature(server):
    for path in ("/v1/models/tiny/metadata", "/v1/models/tiny/versions/1/metadata"):
        body = requests.get(server.url(path), timeout=10).json()
        assert body["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
        sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        (name, tensor), = sig["inputs"].items()  # fmt: skip
        assert name == "features" and tensor["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == ["-1", str(FEATURES)]
        out = sig["outputs"]["output_0"]["tensor_shape"]["dim"]
        assert [d["size"] for d in out] == ["-1", str(CLASSES)]


def test_healthz_reports_ok_and_counters(server):
    body = server.stats()
    assert body["status"] == "ok" and body["model"] == "tiny"
    assert {"requests", "model_calls", "largest_batch"} <= set(body)


def test_row_format_answers_predictions(server, model_files):
    batch = rows(3)
    for path in ("/v1/models/tiny:predict", "/v1/models/tiny/versions/1:predict"):
        r = post(server, path, {"instances": batch.tolist()})
        assert r.status_code == 200, r.text
        got = np.array(r.json()["predictions"])
        np.testing.assert_allclose(got, expected(model_files, batch), atol=1e-5)


def test_row_format_with_named_inputs(server, model_files):
    batch = rows(2, seed=5)
    payload = {"signature_name": "serving_default",
               "instances": [{"features": row} for row in batch.tolist()]}  # fmt: skip
    r = post(server, "/v1/models/tiny:predict", payload)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected(model_files, batch), atol=1e-5)


@pytest.mark.parametrize("named", [False, True])
def test_columnar_format_answers_outputs(server, model_files, named):
    batch = rows(4, seed=7)
    inputs = {"features": batch.tolist()} if named else batch.tolist()
    r = post(server, "/v1/models/tiny/versions/1:predict", {"inputs": inputs})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"outputs"}
    np.testing.assert_allclose(r.json()["outputs"], expected(model_files, batch), atol=1e-5)


def test_a_batch_larger_than_the_maximum_is_answered_whole(server, model_files):
    batch = rows(21, seed=9)  # max batch size is 8: the service slices it
    r = post(server, "/v1/models/tiny:predict", {"instances": batch.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected(model_files, batch), atol=1e-5)


@pytest.mark.parametrize(
    "path, method",
    [
        ("/v1/models/other", "GET"),
        ("/v1/models/other:predict", "POST"),
        ("/v1/models/tiny/versions/2", "GET"),
        ("/v1/models/tiny/versions/2/metadata", "GET"),
        ("/v1/models/tiny/versions/2:predict", "POST"),
        ("/v2/models/tiny", "GET"),
        ("/", "GET"),
    ],
)
def test_unknown_model_version_or_path_is_404(server, path, method):
    r = requests.request(method, server.url(path), data=b'{"instances": [[0]]}', timeout=10)
    assert r.status_code == 404
    assert isinstance(r.json()["error"], str) and r.json()["error"]


GOOD = [0.5] * FEATURES
MALFORMED = {
    "not_json": b"{instances: [[1, 2]]",
    "empty_body": b"",
    "not_utf8": b"\xff\xfe\x00",
    "json_array": [GOOD],
    "neither_key": {"rows": [GOOD]},
    "both_keys": {"instances": [GOOD], "inputs": [GOOD]},
    "unknown_signature": {"signature_name": "classify", "instances": [GOOD]},
    "instances_not_a_list": {"instances": {"a": 1}},
    "empty_batch": {"instances": []},
    "empty_columns": {"inputs": []},
    "ragged": {"instances": [GOOD, GOOD[:-1]]},
    "wrong_width": {"instances": [GOOD + [1.0]]},
    "scalar_instances": {"instances": [1.0, 2.0]},
    "too_many_dims": {"inputs": [[GOOD]]},
    "strings": {"instances": [["a"] * FEATURES]},
    "null_value": {"instances": [[None] + GOOD[1:]]},
    "booleans": {"instances": [[True] * FEATURES]},
    "nan": b'{"instances": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}',
    "infinity": b'{"inputs": [[0, 0, 0, -Infinity, 0, 0, 0, 0]]}',
    "overflows_float32": {"instances": [[1e39] + GOOD[1:]]},
    "wrong_input_name": {"instances": [{"pixels": GOOD}]},
    "two_named_inputs": {"inputs": {"features": [GOOD], "extra": [GOOD]}},
    "deeply_nested": b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nested_too_deep_for_numpy": {"inputs": [[[[[[[[[[[[[[[[GOOD]]]]]]]]]]]]]]]]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_predict_is_400_with_an_error(server, case):
    r = post(server, "/v1/models/tiny:predict", MALFORMED[case])
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert set(r.json()) == {"error"} and len(r.json()["error"]) > 10


def test_error_messages_name_what_to_send(server):
    r = post(server, "/v1/models/tiny:predict", MALFORMED["wrong_width"])
    assert f"[{FEATURES}]" in r.json()["error"] and f"[{FEATURES + 1}]" in r.json()["error"]
    r = post(server, "/v1/models/tiny:predict", MALFORMED["ragged"])
    assert "instance 1" in r.json()["error"]
    r = post(server, "/v1/models/tiny:predict", MALFORMED["nan"])
    assert "NaN" in r.json()["error"]


def test_body_over_the_limit_is_413_and_the_server_stays_up(server):
    big = json.dumps({"instances": [GOOD] * 3000}).encode()  # ~130 KB > 64 KiB
    r = requests.post(server.url("/v1/models/tiny:predict"), data=big, timeout=30)
    assert r.status_code == 413 and "65536" in r.json()["error"]
    assert server.stats()["status"] == "ok"
    assert not any("Traceback" in line for line in server.lines), "".join(server.lines)


def test_chunked_body_over_the_limit_is_413(server):
    chunk = b"[" * 40000
    request = (b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    for _ in range(2):  # 80,000 bytes in two chunks, no Content-Length to refuse up front
        request += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    request += b"0\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(request)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert server.stats()["status"] == "ok"
    assert not any("Traceback" in line for line in server.lines), "".join(server.lines)


def test_wrong_method_is_405(server):
    assert requests.get(server.url("/v1/models/tiny:predict"), timeout=10).status_code == 405
    assert requests.post(server.url("/v1/models/tiny"), timeout=10).status_code == 405


def test_garbage_on_the_socket_gets_400_and_the_server_stays_up(server):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert server.stats()["status"] == "ok"


def test_no_bad_request_is_a_5xx_and_the_server_survives_them_all(server):
    codes = [
        post(server, "/v1/models/tiny:predict", body).status_code for body in MALFORMED.values()
    ]
    assert max(codes) < 500
    assert server.proc.poll() is None


def test_pipelined_requests_are_answered_in_order(server, model_files):
    a, b = rows(1, seed=11), rows(1, seed=12)

    def raw(batch):
        body = json.dumps({"instances": batch.tolist()}).encode()
        return (b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip

    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(raw(a) + raw(b) + b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"}]}"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    parts = [p for p in data.split(b"HTTP/1.1 200 OK") if p]
    first, second = (json.loads(p.split(b"\r\n\r\n", 1)[1]) for p in parts[:2])
    np.testing.assert_allclose(first["predictions"], expected(model_files, a), atol=1e-5)
    np.testing.assert_allclose(second["predictions"], expected(model_files, b), atol=1e-5)
    assert b"model_version_status" in parts[2]


def test_concurrent_clients_share_model_calls_and_get_their_own_answers(server, model_files):
    clients = 16
    batch = rows(clients, seed=21)
    before = server.stats()
    start = threading.Barrier(clients)
    answers: dict[int, object] = {}

    def client(i: int) -> None:
        session = requests.Session()
        start.wait()
        body = json.dumps({"instances": [batch[i].tolist()]})
        r = session.post(server.url("/v1/models/tiny:predict"), data=body, timeout=30)
        answers[i] = r.json()["predictions"][0] if r.status_code == 200 else r.text

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = server.stats()
    want = expected(model_files, batch)
    for i in range(clients):  # each client got the answer for its own row
        np.testing.assert_allclose(answers[i], want[i], atol=1e-5, err_msg=f"client {i}")
    requests_made = after["requests"] - before["requests"]
    calls = after["model_calls"] - before["model_calls"]
    assert requests_made == clients
    assert calls < requests_made, f"{calls} model calls for {requests_made} requests: no batching"
    assert after["largest_batch"] > 1
