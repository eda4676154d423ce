"""An exported version folder served for real, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import requests

from tests.serving.conftest import Server, rows


def test_exported_folder_is_served_and_sigterm_drains_in_flight_requests(model_files):
    # The folder models/tiny/3 gives the version; a long batch wait keeps a request in flight;
    # the model runs in a worker thread here (the other server runs it in the loop's thread).
    srv = Server(str(model_files["export"]), "--name", "tiny", "--batch-wait-ms", "1500",
                 "--model-thread")  # fmt: skip
    try:
        status = requests.get(srv.url("/v1/models/tiny/versions/3"), timeout=10).json()
        assert status["model_version_status"][0]["version"] == "3"
        meta = requests.get(srv.url("/v1/models/tiny/metadata"), timeout=10).json()
        assert (
            "features"
            in meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
        )
        batch = rows(2, seed=3)
        answer: dict = {}

        def client() -> None:
            r = requests.post(srv.url("/v1/models/tiny/versions/3:predict"),
                              data=json.dumps({"inputs": batch.tolist()}), timeout=30)  # fmt: skip
            answer["status"], answer["body"] = r.status_code, r.json()

        t = threading.Thread(target=client)
        t.start()
        deadline = time.monotonic() + 10
        while srv.stats()["requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        rc = srv.stop(timeout=30)  # SIGTERM while the request waits for its batch
        t.join(30)
    finally:
        srv.stop()
    assert rc == 0, "".join(srv.lines)
    assert answer["status"] == 200, answer
    want = np.asarray(model_files["model"](batch))
    np.testing.assert_allclose(answer["body"]["outputs"], want, atol=1e-5)
    assert any("stopped:" in line for line in srv.lines), "".join(srv.lines)
    assert time.monotonic() - started < 25
    try:
        requests.get(srv.url("/healthz"), timeout=2)
        raise AssertionError("the port still answers after SIGTERM")
    except requests.ConnectionError:
        pass
