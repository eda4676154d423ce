"""End to end: `forge-course serve --registry NAME@champion` serves the registered model,
and refuses, with a clear message and a non-zero exit, an artifact that changed."""

from __future__ import annotations

import numpy as np
import requests

from tests.conftest import run_cli


def test_serve_registry_champion_then_refuse_a_tampered_artifact(tmp_path, monkeypatch):
    from forge_course.registry import ModelRegistry
    from tests.serving.conftest import Server, build_model, post, rows

    monkeypatch.setenv("FORGE_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    reg = ModelRegistry()
    model = build_model()
    reg.register(model, "tiny", metrics={"accuracy": 0.5})
    champion = reg.register(model, "tiny", metrics={"accuracy": 0.6}, params={"units": 16})
    reg.set_alias("tiny", champion, "champion")

    srv = Server("--registry", "tiny@champion")
    try:
        status = requests.get(srv.url("/v1/models/tiny"), timeout=30).json()
        (entry,) = status["model_version_status"]
        assert (entry["version"], entry["state"]) == (str(champion), "AVAILABLE")
        x = rows(4)
        answer = post(srv, "/v1/models/tiny:predict", {"instances": x.tolist()})
        assert answer.status_code == 200, answer.text
        expected = model.predict(x, verbose=0)
        np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-4, atol=1e-5)
    finally:
        assert srv.stop() == 0

    record = reg.get("tiny@champion")
    with open(record.artifact_path, "ab") as f:
        f.write(b"not the registered bytes")
    done = run_cli("serve", "--registry", "tiny@champion", "--port", "0", timeout=180)
    assert done.returncode != 0
    assert "refusing to load tiny/2" in done.stderr and record.sha256 in done.stderr
    assert "Traceback" not in done.stderr

    done = run_cli("serve", "--registry", "tiny@prod", "--port", "0", timeout=180)
    assert done.returncode == 2 and "no alias 'prod'" in done.stderr
    reg.close()
