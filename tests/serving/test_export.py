"""Saving with a hash, safe_mode, export to TF Serving's layout, LiteRT, request parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forge_course.errors import ArtifactHashError, ServingError
from forge_course.serving.export import (
    convert_to_tflite,
    export_for_serving,
    litert_predict,
    load_verified,
    save_with_hash,
)
from forge_course.serving.servable import InputSpec, allowed_batch_sizes, load_servable
from forge_course.serving.validate import RequestError, parse_predict
from tests.conftest import run_cli
from tests.serving.conftest import FEATURES, rows

SPEC = InputSpec("features", "float32", (None, FEATURES))


def test_load_verified_checks_the_hash_before_loading(model_files, tmp_path):
    model = load_verified(model_files["keras"], model_files["sha256"])
    np.testing.assert_allclose(model(rows(2)), model_files["model"](rows(2)), atol=1e-6)
    tampered = tmp_path / "tampered.keras"
    tampered.write_bytes(model_files["keras"].read_bytes() + b"\0")
    with pytest.raises(ArtifactHashError, match="SHA-256"):
        load_verified(tampered, model_files["sha256"])


def test_a_lambda_model_is_refused_under_safe_mode(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2)])
    sha = save_with_hash(model, tmp_path / "lambda.keras")
    with pytest.raises(ServingError, match="Lambda"):
        load_verified(tmp_path / "lambda.keras", sha)
    with pytest.raises(ServingError, match="Lambda"):
        load_servable(tmp_path / "lambda.keras", name="x")


def test_export_writes_tf_servings_layout_and_refuses_to_overwrite(model_files):
    path = model_files["export"]
    assert path.name == "3" and path.parent.name == "tiny" and (path / "saved_model.pb").exists()
    with pytest.raises(ServingError, match="version 4"):
        export_for_serving(model_files["model"], path.parent.parent, "tiny", 3)


def test_exported_signature_and_compiled_keras_servable_agree(model_files):
    batch = rows(5, seed=4)
    want = np.asarray(model_files["model"](batch))
    exported = load_servable(model_files["export"], name="tiny")
    assert exported.version == "3" and exported.input.name == "features"
    compiled = load_servable(model_files["keras"], name="tiny", max_batch_size=4)
    assert compiled.batch_sizes == (1, 2, 4)
    for servable in (exported, compiled):
        np.testing.assert_allclose(servable.run(batch)["output_0"], want, atol=1e-5)


def test_litert_matches_keras_within_tolerance(model_files, tmp_path):
    path = convert_to_tflite(model_files["model"], tmp_path / "tiny.tflite")
    batch = rows(6, seed=8)
    diff = np.abs(litert_predict(path, batch) - np.asarray(model_files["model"](batch))).max()
    assert diff <= 1e-5, diff


def test_allowed_batch_sizes_are_powers_of_two_then_the_maximum():
    assert allowed_batch_sizes(1) == (1,)
    assert allowed_batch_sizes(32) == (1, 2, 4, 8, 16, 32)
    assert allowed_batch_sizes(24) == (1, 2, 4, 8, 16, 24)


def test_parse_predict_accepts_both_forms():
    batch = rows(3)
    r = parse_predict(json.dumps({"instances": batch.tolist()}).encode(), SPEC)
    assert not r.columnar and r.batch.dtype == np.float32 and r.batch.shape == (3, FEATURES)
    r = parse_predict(json.dumps({"inputs": {"features": batch.tolist()}}).encode(), SPEC)
    assert r.columnar and np.allclose(r.batch, batch)


@pytest.mark.parametrize(
    "body, words",
    [
        (b"[1", "not valid JSON"),
        (b'{"instances": [[1, 2]]}', f"shape [{FEATURES}]"),
        (b'{"instances": [[1.5, 2]], "inputs": [1]}', "exactly one"),
        (b'{"instances": []}', "empty"),
    ],
)
def test_parse_predict_errors_say_what_to_send(body, words):
    with pytest.raises(RequestError, match=words.replace("[", r"\[")):
        parse_predict(body, SPEC)


def test_integer_inputs_refuse_fractions():
    spec = InputSpec("ids", "int32", (None, 2))
    assert parse_predict(b'{"instances": [[1, 2]]}', spec).batch.dtype == np.int32
    with pytest.raises(RequestError, match="fractions"):
        parse_predict(b'{"instances": [[1.5, 2]]}', spec)


def test_serve_usage_errors_exit_2(tmp_path, model_files):
    r = run_cli("serve", str(tmp_path / "missing.keras"), "--name", "x", timeout=120)
    assert r.returncode == 2 and "no model at" in r.stderr
    r = run_cli("serve", str(model_files["keras"]), timeout=120)
    assert r.returncode == 2 and "--name" in r.stderr
    r = run_cli("serve", str(model_files["keras"]), "--name", "x", "--sha256", "0" * 64,
                timeout=120)  # fmt: skip
    assert r.returncode == 2 and "SHA-256" in r.stderr


def test_respond_answers_in_process_as_the_service_does(model_files):
    from forge_course.serving.process import respond

    servable = load_servable(model_files["keras"], name="tiny", jit_compile=False)
    batch = rows(2, seed=6)
    status, body = respond(servable, {"inputs": batch.tolist()})
    assert status == 200
    np.testing.assert_allclose(body["outputs"], model_files["model"](batch), atol=1e-5)
    status, body = respond(servable, '{"instances": [[1, 2]]}')
    assert status == 400 and "shape" in body["error"]
    assert respond(servable, {"instances": [[float("nan")] * FEATURES]})[0] == 400


def test_serve_help_names_the_api_the_options_and_the_exit_codes():
    r = run_cli("serve", "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage: forge-course serve" in r.stdout and "exit codes" in r.stdout
    for option in ("--name", "--registry", "--port", "--max-batch-size", "--batch-wait-ms",
                   "--max-body-bytes", "--model-thread"):  # fmt: skip
        assert option in r.stdout, option
