"""Exercise 10: requests a TF-Serving-compatible service answers.

The ladder: the row-format body that gets one prediction (apply), a columnar body for a
batch of images that fits under the service's body limit (target), and a body the
service rejects three times over, repaired from its error messages (debug).

Every body is the JSON text a client sends (kind "scalar": ``json.dumps(...)`` of a dict),
so its size in bytes is what the wire carries. The grader answers it with its own model
behind the service's own code: :func:`forge_course.serving.process.respond` validates it
exactly as ``forge-course serve`` does and runs the compiled model, so "accepted" here
means a 200 from the real service; the hidden check of task 2 goes further and POSTs the
batch over HTTP to the grader's own service on loopback, body limit and all.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from forge_course.grading.checks import dataset
from forge_course.grading.spec import Check, Exercise, Task

BODY_LIMIT = 65536  # bytes: the service's --max-body-bytes in this exercise
LOST_PIXEL = (1, 4, 4)  # scan 1, row 4, column 4: the pixel the scanner lost in task 3
SCANS = 3


@functools.lru_cache(maxsize=1)
def digits_servable():
    """The grader's digits model (64 raw pixels in, 10 probabilities out), compiled.

    Seeded and untrained: the checks are about the requests, not about accuracy.
    """
    import keras

    from forge_course.serving.servable import load_servable

    model = keras.Sequential(
        [
            keras.Input(shape=(64,), name="pixels"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Dense(
                10, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(0)
            ),
        ],
        name="digits",
    )
    return load_servable(
        "digits.keras", name="digits", model=model, max_batch_size=256, jit_compile=False
    )


def _images(n: int) -> np.ndarray:
    """The first ``n`` test digits as rows of 64 raw pixels (0-255)."""
    x = dataset("digits").x_test[:n]
    return x.reshape(len(x), -1).astype("float32")


def scans() -> np.ndarray:
    """Task 3's scans as the service should receive them: flat, the lost pixel black (0)."""
    x = dataset("digits").x_test[:SCANS].astype("float32")
    x[LOST_PIXEL] = 0.0
    return x.reshape(SCANS, -1)


def _answer(body) -> tuple[int, dict]:
    from forge_course.serving.process import respond

    return respond(digits_servable(), body)


def _refused(body) -> str | None:
    status, answer = _answer(body)
    if status != 200:
        return f"the service answers {status}: {answer['error']}"
    return None


def _batch(body) -> tuple[np.ndarray | None, str | None]:
    """The batch the service would feed the model, or why it refuses the body."""
    from forge_course.serving.validate import RequestError, parse_predict

    if bad := _is_text(body):
        return None, bad
    try:
        return parse_predict(body.encode(), digits_servable().input).batch, None
    except RequestError as exc:
        return None, f"the service answers 400: {exc}"


def _same_rows(got: np.ndarray, want: np.ndarray, what: str) -> str | None:
    if got.shape != want.shape:
        return (
            f"the body holds {len(got)} instance(s) of shape {list(got.shape[1:])}; {what} "
            f"are {len(want)} of shape {list(want.shape[1:])}"
        )
    if np.allclose(got * 255, want, atol=0.5) and not np.allclose(got, want):
        return "the pixels are scaled to [0, 1]; the model scales them itself: send raw 0-255"
    wrong = [i for i in range(len(want)) if not np.allclose(got[i], want[i], atol=1e-6)]
    if wrong:
        return f"instance {wrong[0]} is not {what}'s image {wrong[0]} (flattened, raw pixels)"
    return None


def _is_text(body) -> str | None:
    if not isinstance(body, str):
        return (
            "a request body is the JSON text a client sends, json.dumps(a_dict), "
            f"not a {type(body).__name__}"
        )
    return None


def _keys(body) -> tuple[list | None, str | None]:
    """The top-level keys of a body, or why it has none."""
    if bad := _is_text(body):
        return None, bad
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return None, f"the body is not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return None, f"the body is a JSON {type(doc).__name__}, not an object {{...}}"
    return sorted(doc), None


# ---------------------------------------------------------------- ex10_1 apply


def _accepted_1(v, p):
    return _is_text(v["request_body"]) or _refused(v["request_body"])


def _one_instance(v, p):
    body = v["request_body"]
    keys, bad = _keys(body)
    if bad:
        return bad
    if "instances" not in keys:
        return f'the row form puts the images under "instances"; the body has {keys}'
    batch, bad = _batch(body)
    if bad:
        return bad
    if len(batch) != 1:
        return f"the body asks for {len(batch)} predictions; one image, one instance"


def _the_image(v, p):
    batch, bad = _batch(v["request_body"])
    if bad:
        return bad
    return _same_rows(batch[:1], _images(1), "the first test image")


# ---------------------------------------------------------------- ex10_2 target


def _columnar(v, p):
    body = v["batch_body"]
    keys, bad = _keys(body)
    if bad:
        return bad
    if "inputs" not in keys:
        return f'the columnar form puts the whole batch under "inputs"; the body has {keys}'
    return _refused(body)


def _all_rows(v, p):
    batch, bad = _batch(v["batch_body"])
    if bad:
        return bad
    return _same_rows(
        batch, _images(p["BATCH_IMAGES"]), f"the first {p['BATCH_IMAGES']} test images"
    )


def _under_limit(v, p):
    body = v["batch_body"]
    _, bad = _batch(body)
    if bad:
        return bad
    size = len(body.encode())
    if size > BODY_LIMIT:
        return f"the body is {size:,} bytes; the service refuses more than {BODY_LIMIT:,}"


def _served(v, p):
    """The grader's own service, on loopback, with the exercise's body limit, answers 200."""
    from forge_course.serving.process import answer_over_http

    body = v["batch_body"]
    if bad := _is_text(body):
        return bad
    status, answer = answer_over_http(digits_servable(), body, max_body_bytes=BODY_LIMIT)
    if status != 200:
        return f"the grader's service answers {status}: {answer.get('error', answer)}"
    if len(answer.get("outputs", [])) != p["BATCH_IMAGES"]:
        return (
            f"the grader's service answered {len(answer.get('outputs', []))} rows, not "
            f"{p['BATCH_IMAGES']}"
        )


# ---------------------------------------------------------------- ex10_3 debug


def _accepted_3(v, p):
    return _is_text(v["fixed_body"]) or _refused(v["fixed_body"])


def _the_scans(v, p):
    batch, bad = _batch(v["fixed_body"])
    if bad:
        return bad
    want = scans()
    if batch.shape == want.shape:
        lost = float(batch[LOST_PIXEL[0], LOST_PIXEL[1] * 8 + LOST_PIXEL[2]])
        if lost != 0.0:
            return f"the lost pixel is sent as {lost:g}; a lost pixel reads as black, 0"
    return _same_rows(batch, want, "the scans")


EXERCISE = Exercise(
    name="10_saving_and_serving",
    params={"SEED": 0, "BATCH_IMAGES": 200},
    tasks=(
        Task(
            "ex10_1", "apply", "the request for one prediction",
            {"request_body": "scalar"},
            (
                Check(
                    "accepted", _accepted_1,
                    description="the service answers the body with 200",
                    hints=(
                        "A predict request is a JSON object naming its form, holding a list "
                        "of instances, each shaped like the model's input.",
                        "`{\"instances\": [...]}` with one list of 64 numbers per image; "
                        "`.reshape(-1).tolist()` turns an 8x8 array into one.",
                        "`request_body = json.dumps({\"instances\": "
                        "[digits.x_test[0].reshape(-1).tolist()]})`",
                    ),
                ),
                Check(
                    "one_instance", _one_instance,
                    description="row form (\"instances\"), one instance",
                    hints=(
                        "The row form lists images one by one; one image is a list of one.",
                        "Use the key `instances`, not `inputs`, and put one image in it.",
                        "`{\"instances\": [image]}` where `image` is a list of 64 numbers",
                    ),
                ),
                Check(
                    "the_image", _the_image,
                    description="the instance is the first test image, raw pixels",
                    hints=(
                        "The model scales pixels itself, in its first layer: send what the "
                        "dataset holds, unchanged.",
                        "`digits.x_test[0]`, flattened, with no division by 255.",
                        "`digits.x_test[0].reshape(-1).tolist()`",
                    ),
                ),
            ),
        ),
        Task(
            "ex10_2", "target", "a batch under the body limit",
            {"batch_body": "scalar"},
            (
                Check(
                    "columnar", _columnar,
                    description="columnar form (\"inputs\"), answered with 200",
                    hints=(
                        "The columnar form sends the whole batch as one tensor instead of a "
                        "list of rows.",
                        "Put the batch under the key `inputs` (a list of rows, or "
                        "`{\"pixels\": rows}`).",
                        "`json.dumps({\"inputs\": images.tolist()})`",
                    ),
                ),
                Check(
                    "all_rows", _all_rows,
                    description="the first BATCH_IMAGES test images, in order, raw pixels",
                    hints=(
                        "Shrinking the body must not change what the model sees.",
                        "`digits.x_test[:BATCH_IMAGES]`, each image flattened to 64 values.",
                        "`images = digits.x_test[:BATCH_IMAGES].reshape(BATCH_IMAGES, -1)`",
                    ),
                ),
                Check(
                    "under_limit", _under_limit, points=2,
                    description=f"the body at most {BODY_LIMIT:,} bytes",
                    hints=(
                        "JSON spells every number out in text: whole numbers are shorter "
                        "than floats, and a name repeated per row costs bytes too.",
                        "The pixels are whole numbers 0-255; `.tolist()` of the uint8 array "
                        "writes them without decimals.",
                        "`json.dumps({\"inputs\": images.tolist()})` with `images` still uint8",
                    ),
                ),
                Check(
                    "served", _served, hidden=True,
                    description=f"POSTed over HTTP to the grader's own service (body limit "
                    f"{BODY_LIMIT:,} bytes), answered 200 with one output per image",
                ),
            ),
        ),
        Task(
            "ex10_3", "debug", "the body the service rejects",
            {"fixed_body": "scalar"},
            (
                Check(
                    "accepted", _accepted_3, points=2,
                    description="the service answers the repaired body with 200",
                    hints=(
                        "Read the service's error: it names one problem at a time. Fix it, "
                        "send again, read the next.",
                        "`respond(service, fixed_body)` returns the status and the error "
                        "message the HTTP service would send.",
                        "`json.dumps({\"instances\": fixed.reshape(len(fixed), -1).tolist()})` "
                        "with `fixed` free of NaN",
                    ),
                ),
                Check(
                    "the_scans", _the_scans, points=4,
                    description="the three scans, flattened, the lost pixel sent as 0",
                    hints=(
                        "A lost pixel has no value at all; the scanner's manual says it reads "
                        "as black.",
                        "`np.nan_to_num(scans, nan=0.0)` replaces NaN with 0.",
                        "`fixed = np.nan_to_num(scans, nan=0.0)` before reshaping",
                    ),
                ),
            ),
        ),
    ),
)  # fmt: skip


def _rows(n: int) -> list:
    return dataset("digits").x_test[:n].reshape(n, -1).tolist()


def _broken_scans() -> list:
    x = dataset("digits").x_test[:SCANS].astype("float32")
    x[LOST_PIXEL] = np.nan
    return x.tolist()


def _body(doc) -> str:
    return json.dumps(doc)


FAILING = {
    "ex10_1.accepted": lambda p: {"request_body": _body({"instances": [_rows(1)[0][:63]]})},
    "ex10_1.one_instance": lambda p: {"request_body": _body({"inputs": _rows(1)})},
    "ex10_1.the_image": lambda p: {"request_body": _body({"instances": [_rows(2)[1]]})},
    "ex10_2.columnar": lambda p: {"batch_body": _body({"instances": _rows(p["BATCH_IMAGES"])})},
    "ex10_2.all_rows": lambda p: {"batch_body": _body({"inputs": _rows(p["BATCH_IMAGES"] - 1)})},
    "ex10_2.under_limit": lambda p: {
        "batch_body": _body({"inputs": (np.array(_rows(p["BATCH_IMAGES"])) + 0.5).tolist()})
    },
    "ex10_2.served": lambda p: {
        "batch_body": _body({"inputs": (np.array(_rows(p["BATCH_IMAGES"])) + 0.5).tolist()})
    },
    "ex10_3.accepted": lambda p: {"fixed_body": _body({"instance": _broken_scans()})},
    "ex10_3.the_scans": lambda p: {
        "fixed_body": _body({"instances": np.nan_to_num(np.array(_broken_scans()), nan=255.0)
                             .reshape(SCANS, -1).tolist()})
    },
}  # fmt: skip
