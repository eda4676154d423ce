"""Turn a ``:predict`` body into a checked NumPy batch, or a 400 that says what is wrong.

TensorFlow Serving's REST API takes two forms:

* row ("instances"): ``{"instances": [row, row, ...]}``, each row one input of the
  signature's shape, or ``{"<input name>": row}``; the answer is ``{"predictions": [...]}``.
* columnar ("inputs"): ``{"inputs": tensor}`` or ``{"inputs": {"<input name>": tensor}}``,
  the whole batch as one tensor; the answer is ``{"outputs": ...}``.

Everything a client can get wrong becomes a :class:`RequestError` with status 400 and a
message naming the value and what was expected: not JSON, neither or both keys, an empty
or ragged batch, strings or nulls, a wrong shape, values that are NaN or infinite (or
overflow the input's dtype), a fractional value for an integer input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from forge_course.serving.servable import SIGNATURE, InputSpec

__all__ = ["ParsedRequest", "RequestError", "format_outputs", "parse_predict"]


class RequestError(Exception):
    """A request the service refuses; ``status`` is its HTTP code, the message is for the client."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ParsedRequest:
    """A validated request: the batch, and whether it came in row or columnar form."""

    batch: np.ndarray
    columnar: bool


def parse_predict(body: bytes, spec: InputSpec) -> ParsedRequest:
    """Parse and validate a ``:predict`` body against the model's input signature.

    Raises:
        RequestError: status 400 with a message saying what to send instead.
    """
    if not body:
        raise RequestError('empty body; send JSON such as {"instances": [[...]]}')
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError("body nests lists too deeply; send rows of numbers") from None
    if not isinstance(doc, dict):
        raise RequestError(
            f'body must be a JSON object with "instances" or "inputs", not {type(doc).__name__}'
        )
    signature = doc.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise RequestError(f"unknown signature_name {signature!r}; this model has '{SIGNATURE}'")
    unknown = set(doc) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise RequestError(f"unknown key(s) {sorted(unknown)}; use 'instances' or 'inputs'")
    if ("instances" in doc) == ("inputs" in doc):
        raise RequestError('give exactly one of "instances" (rows) or "inputs" (columns)')
    if "instances" in doc:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise RequestError(f'"instances" must be a list of rows, not {type(rows).__name__}')
        rows = [_unwrap(row, spec, f"instance {i}") for i, row in enumerate(rows)]
        return ParsedRequest(_to_batch(rows, spec, "instances"), columnar=False)
    tensor = _unwrap(doc["inputs"], spec, '"inputs"')
    return ParsedRequest(_to_batch(tensor, spec, "inputs"), columnar=True)


def format_outputs(result: dict, names: tuple[str, ...], columnar: bool) -> dict:
    """The answer's JSON: ``{"predictions": rows}`` for rows, ``{"outputs": ...}`` for columns.

    One output is a plain (nested) list; several are keyed by name, per row or per column.
    """
    if len(names) == 1:
        value = result[names[0]].tolist()
    elif columnar:
        value = {k: result[k].tolist() for k in names}
    else:
        rows = len(result[names[0]])
        value = [{k: result[k][i].tolist() for k in names} for i in range(rows)]
    return {"outputs" if columnar else "predictions": value}


def _unwrap(value, spec: InputSpec, where: str):
    """Accept ``{"<input name>": value}`` for the signature's one input."""
    if isinstance(value, dict):
        if list(value) != [spec.name]:
            raise RequestError(
                f"{where} names inputs {sorted(value)}; this model has one input, '{spec.name}'"
            )
        return value[spec.name]
    return value


def _to_batch(data, spec: InputSpec, key: str) -> np.ndarray:
    if not isinstance(data, list) or len(data) == 0:
        raise RequestError(f'"{key}" is empty; send at least one instance of shape {_want(spec)}')
    try:
        array = np.array(data)
    except (ValueError, RecursionError):  # NumPy refuses ragged (or absurdly deep) nesting
        raise RequestError(f'"{key}" is ragged: {_ragged(data, spec)}') from None
    if array.dtype == object:
        raise RequestError(f'"{key}" is ragged or holds null values; {_ragged(data, spec)}')
    if array.dtype.kind in "US":
        raise RequestError(f'"{key}" holds strings; every value must be a number')
    if array.dtype.kind == "b":
        raise RequestError(f'"{key}" holds true/false; every value must be a number')
    row = array.shape[1:]
    want = spec.row_shape
    if len(row) != len(want) or any(
        w is not None and w != r for r, w in zip(row, want, strict=True)
    ):
        got = list(row) if row else "a scalar"
        raise RequestError(f"each instance must have shape {_want(spec)}; got {got}")
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = array.astype(dtype)
        bad = ~np.isfinite(cast)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise RequestError(
                f'"{key}" holds a value that is NaN, infinite or too large for {spec.dtype} '
                f"at index {list(where)} ({array[where]!r}); send finite numbers"
            )
        return cast
    if dtype.kind in "iu":
        if array.dtype.kind == "f" and not np.all(np.floor(array) == array):
            raise RequestError(f'"{key}" holds fractions; this model takes {spec.dtype}')
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise RequestError(f'"{key}" holds values outside the range of {spec.dtype}')
        return array.astype(dtype)
    raise RequestError(f"this service cannot feed an input of dtype {spec.dtype}")


def _want(spec: InputSpec) -> str:
    return "[" + ", ".join("any" if d is None else str(d) for d in spec.row_shape) + "]"


def _ragged(data, spec: InputSpec) -> str:
    """Name the first instance whose shape differs from the first one's."""

    def shape(x):
        dims = []
        while isinstance(x, list):
            dims.append(len(x))
            x = x[0] if x else None
        return dims

    first = shape(data[0])
    for i, item in enumerate(data):
        if shape(item) != first:
            return f"instance {i} has shape {shape(item)} but instance 0 has {first}"
    return f"every instance must be a list of numbers of shape {_want(spec)}"
