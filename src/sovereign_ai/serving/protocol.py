"""The Open Inference Protocol v2 (REST) messages, and tensors to and from NumPy.

The shapes follow the KServe / Triton "Predict Protocol - Version 2" REST specification: a
request carries ``inputs`` (each a name, shape, datatype and ``data`` in row-major order, flat or
nested), an optional ``id`` echoed in the answer and optional ``outputs`` to return; an answer
carries ``model_name``, ``model_version``, ``id`` and ``outputs``. Only the JSON encoding is
spoken (not the binary-tensor extension).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sovereign_ai.errors import ConfigError, InferenceRequestError

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "MetadataTensor",
    "ModelMetadata",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerMetadata",
    "decode_tensor",
    "encode_tensor",
]

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

# OIP datatype <-> NumPy dtype (BYTES travels as JSON strings and is only ever answered).
_NUMPY: dict[Datatype, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}  # fmt: skip
_OIP: dict[np.dtype[Any], Datatype] = {dtype: name for name, dtype in _NUMPY.items()}


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RequestInput(_Message):
    """One input tensor of a request: ``data`` in row-major order, flat or nested."""

    name: str
    shape: tuple[int, ...]
    datatype: Datatype
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(_Message):
    """An output the client asks for by name."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Message):
    """``POST /v2/models/{m}/infer``'s body."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Message):
    """One output tensor of an answer: ``data`` flat, in row-major order."""

    name: str
    shape: tuple[int, ...]
    datatype: Datatype
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferenceResponse(_Message):
    """The answer to an inference request."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(_Message):
    """An input or output in model metadata; -1 in ``shape`` stands for any size."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]


class ModelMetadata(_Message):
    """``GET /v2/models/{m}``'s answer."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(_Message):
    """``GET /v2``'s answer."""

    name: str
    version: str
    extensions: list[str]


def decode_tensor(tensor: RequestInput, *, expected: MetadataTensor) -> np.ndarray[Any, Any]:
    """The NumPy array of ``tensor``, checked against what the model expects of it.

    Raises
    ------
    InferenceRequestError
        If the datatype differs, the shape does not fit ``expected.shape`` (-1: any size), or
        the data does not hold exactly the shape's number of elements of that datatype.
    """
    if tensor.datatype != expected.datatype:
        raise InferenceRequestError(
            f"Input {tensor.name!r} must be of datatype {expected.datatype}; got "
            f"{tensor.datatype} instead."
        )
    fits = len(tensor.shape) == len(expected.shape) and all(
        want in (-1, got) for want, got in zip(expected.shape, tensor.shape, strict=True)
    )
    if not fits or any(size < 0 for size in tensor.shape):
        raise InferenceRequestError(
            f"Input {tensor.name!r} must have shape {list(expected.shape)} (-1: any size); got "
            f"{list(tensor.shape)} instead."
        )
    try:
        array = np.asarray(tensor.data, dtype=_NUMPY[tensor.datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise InferenceRequestError(
            f"The data of input {tensor.name!r} is not a (flat or evenly nested) list of "
            f"{tensor.datatype} values: {exc}."
        ) from exc
    if array.dtype == np.object_ or array.size != int(np.prod(tensor.shape)):
        raise InferenceRequestError(
            f"Input {tensor.name!r} of shape {list(tensor.shape)} needs "
            f"{int(np.prod(tensor.shape))} values; its data holds {array.size}."
        )
    return array.reshape(tensor.shape)


def encode_tensor(name: str, array: np.ndarray[Any, Any]) -> ResponseOutput:
    """An output tensor of ``array`` (numbers, or strings as BYTES)."""
    if array.dtype.kind in "USO":
        return ResponseOutput(
            name=name, shape=array.shape, datatype="BYTES", data=[str(v) for v in array.flat]
        )
    datatype = _OIP.get(array.dtype)
    if datatype is None:
        raise ConfigError(f"Output {name!r} has dtype {array.dtype}, which OIP has no name for.")
    return ResponseOutput(
        name=name, shape=array.shape, datatype=datatype, data=array.reshape(-1).tolist()
    )
