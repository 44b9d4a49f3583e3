"""The safetensors format without the join: write from the tensors' memory, read in place.

``safetensors`` (the library) serialises to one ``bytes`` object and parses by copying every tensor
out of one. For a checkpoint that is fine; on the wire it is not: a 200 MB model costs three
copies (each a fresh 200 MB allocation) before the first byte leaves, and two more on arrival.
The library has no streaming writer and no zero-copy reader, so this module is the one place the
format is written by hand, for the transports only:

* :func:`encode` builds the format's header and keeps *views* of the tensors' own memory, so a
  payload can go out chunk by chunk with no full-size copy;
* :func:`decode` parses a received buffer and returns arrays that *view* it.

The format (https://github.com/huggingface/safetensors, "Format"): an 8-byte little-endian header
length N, N bytes of JSON mapping each tensor name to its ``dtype``, ``shape`` and
``data_offsets`` (an optional ``__metadata__`` maps strings to strings), then the tensors' bytes,
which must tile the rest of the buffer exactly. The tests check both directions against the
library: what :func:`encode` writes, the library reads back identically, and whatever the library
writes, :func:`decode` reads identically; on mutated bytes :func:`decode` is at least as strict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.errors import SerializationError

__all__ = ["MAX_HEADER_BYTES", "MAX_TENSORS", "EncodedTensors", "decode", "encode"]

MAX_HEADER_BYTES = 100_000_000  # the library's own ceiling
MAX_TENSORS = 100_000
_ALIGNMENT = 8  # the library pads its header so that tensor data starts 8-byte aligned
_READ_DTYPES: dict[str, np.dtype[Any]] = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "U8": np.dtype("u1"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
}
"""What :func:`decode` reads: floats of any width, and the integer dtypes payloads may carry."""
_WRITE_CODES: dict[np.dtype[Any], str] = {
    np.dtype("float32"): "F32",
    np.dtype("uint8"): "U8",
    np.dtype("uint32"): "U32",
    np.dtype("uint64"): "U64",
    np.dtype("int64"): "I64",
}
"""What :func:`encode` writes, by native dtype; other floats are written as float32."""
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class EncodedTensors:
    """A safetensors payload as a header plus views of each tensor's bytes, in order.

    Attributes
    ----------
    header
        The 8-byte length prefix and the padded JSON header.
    buffers
        One read-only byte view per tensor, over the tensor's own memory.
    """

    header: bytes
    buffers: tuple[memoryview, ...]

    @property
    def size(self) -> int:
        """Total payload size in bytes."""
        return len(self.header) + sum(buffer.nbytes for buffer in self.buffers)

    def chunks(self, chunk_size: int) -> Iterator[memoryview]:
        """The payload in pieces of exactly ``chunk_size`` bytes (the last may be shorter).

        A piece inside one tensor is a view of its memory; only pieces that span tensors (or the
        header) are copied, so sending costs no full-size allocation.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive; got {chunk_size}.")
        pending = bytearray()
        for buffer in (memoryview(self.header), *self.buffers):
            offset, length = 0, buffer.nbytes
            while offset < length:
                if not pending and length - offset >= chunk_size:
                    yield buffer[offset : offset + chunk_size]
                    offset += chunk_size
                    continue
                take = min(chunk_size - len(pending), length - offset)
                pending += buffer[offset : offset + take]
                offset += take
                if len(pending) == chunk_size:
                    yield memoryview(bytes(pending))
                    pending.clear()
        if pending:
            yield memoryview(bytes(pending))

    def to_bytes(self) -> bytes:
        """The whole payload as one ``bytes`` (for tests and small payloads)."""
        return b"".join([self.header, *(buffer.tobytes() for buffer in self.buffers)])


def encode(
    tensors: Mapping[str, npt.NDArray[Any]], *, metadata: Mapping[str, str] | None = None
) -> EncodedTensors:
    """Lay out ``tensors`` (in their order) as safetensors, viewing their memory.

    Each tensor keeps its own dtype (float32, uint8, uint32, uint64 or int64, written
    little-endian); floats of other widths are written as float32.

    Parameters
    ----------
    tensors
        C-contiguous arrays; they must not change until the payload has been sent.
    metadata
        Strings for the header's ``__metadata__``.

    Raises
    ------
    SerializationError
        If a tensor has a dtype safetensors payloads here do not carry.
    """
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    buffers: list[memoryview] = []
    offset = 0
    for name, array in tensors.items():
        code, wire_dtype = _write_dtype(name, array.dtype)
        little = np.ascontiguousarray(array, dtype=wire_dtype)
        view = little.reshape(-1).view(np.uint8).data
        header[name] = {
            "dtype": code,
            "shape": [int(d) for d in array.shape],
            "data_offsets": [offset, offset + view.nbytes],
        }
        buffers.append(view.toreadonly())
        offset += view.nbytes
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise SerializationError(f"A tensor name or metadata is not valid Unicode: {exc}") from exc
    text += b" " * (-(len(text) + 8) % _ALIGNMENT)
    return EncodedTensors(header=len(text).to_bytes(8, "little") + text, buffers=tuple(buffers))


def _write_dtype(name: str, dtype: np.dtype[Any]) -> tuple[str, np.dtype[Any]]:
    """The header code and little-endian dtype ``name``'s data is written as."""
    native = np.dtype(np.float32) if np.issubdtype(dtype, np.floating) else dtype.newbyteorder("=")
    code = _WRITE_CODES.get(native)
    if code is None:
        raise SerializationError(
            f"Tensor {name[:80]!r} has dtype {dtype}; payloads carry only "
            f"{', '.join(str(d) for d in _WRITE_CODES)} (other floats become float32)."
        )
    return code, native.newbyteorder("<")


def decode(
    buffer: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Parse a safetensors payload in place: arrays view ``buffer``, nothing is copied.

    Returns
    -------
    tensors, metadata
        Name to read-only array, in the order of the tensors' data in the buffer, and the
        header's ``__metadata__`` (empty if absent).

    Raises
    ------
    SerializationError
        If the buffer is not well-formed safetensors of the dtypes payloads carry (F16, F32,
        F64, U8, U32, U64, I64).
    """
    data = np.frombuffer(buffer, dtype=np.uint8)
    if data.size < 8:
        raise SerializationError(f"A safetensors payload has at least 8 bytes; got {data.size}.")
    header_size = int.from_bytes(data[:8].tobytes(), "little")
    if header_size > min(MAX_HEADER_BYTES, data.size - 8):
        raise SerializationError(
            f"The safetensors header claims {header_size} bytes; the payload has {data.size}."
        )
    header = _parse_header(data[8 : 8 + header_size].tobytes())
    metadata = _metadata(header.pop("__metadata__", None))
    if len(header) > MAX_TENSORS:
        raise SerializationError(f"Payload holds {len(header)} tensors; at most {MAX_TENSORS}.")
    body = data[8 + header_size :]
    layout = sorted((_entry(name, info) for name, info in header.items()), key=lambda e: e[2])
    tensors: dict[str, npt.NDArray[Any]] = {}
    expected_start = 0
    for name, dtype, start, stop, shape in layout:
        if start != expected_start:
            raise SerializationError(
                f"Tensor {name!r} starts at byte {start}; the previous one ends at "
                f"{expected_start} (tensors must tile the data without gaps or overlaps)."
            )
        if stop > body.size:
            raise SerializationError(
                f"Tensor {name!r} ends at byte {stop}; the payload carries only {body.size}."
            )
        expected_start = stop
        array = body[start:stop].view(dtype).reshape(shape)
        array.flags.writeable = False
        tensors[name] = array
    if expected_start != body.size:
        raise SerializationError(
            f"The tensors cover {expected_start} bytes of data; the payload carries {body.size}."
        )
    return tensors, metadata


def _parse_header(text: bytes) -> dict[str, Any]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise SerializationError("The safetensors header repeats a key.")
        return dict(pairs)

    def refuse_constant(name: str) -> Any:
        raise SerializationError(f"The safetensors header holds {name}, which JSON does not allow.")

    try:
        header = json.loads(text, object_pairs_hook=unique, parse_constant=refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SerializationError(f"The safetensors header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise SerializationError("The safetensors header must be a JSON object.")
    try:  # JSON escapes can spell lone surrogates, which are not Unicode text
        json.dumps(header, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise SerializationError(f"The safetensors header is not valid Unicode: {exc}") from exc
    return header


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SerializationError("The safetensors __metadata__ must map strings to strings.")
    return value


def _entry(name: str, info: object) -> tuple[str, np.dtype[Any], int, int, tuple[int, ...]]:
    if not name:
        raise SerializationError("A tensor in the safetensors header has an empty name.")
    if not isinstance(info, dict) or set(info) != _TENSOR_KEYS:
        raise SerializationError(
            f"Tensor {name[:80]!r} must have exactly dtype, shape and data_offsets."
        )
    dtype = _READ_DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
    if dtype is None:
        raise SerializationError(
            f"Tensor {name[:80]!r} has dtype {str(info['dtype'])[:20]!r}; payloads carry only "
            f"{', '.join(_READ_DTYPES)}."
        )
    shape, offsets = info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise SerializationError(f"Tensor {name[:80]!r} has an invalid shape.")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise SerializationError(f"Tensor {name[:80]!r} has invalid data offsets.")
    start, stop = offsets
    if start > stop or stop - start != math.prod(shape) * dtype.itemsize:
        raise SerializationError(
            f"Tensor {name[:80]!r}: data offsets {offsets} do not hold shape {shape} of "
            f"{info['dtype']}."
        )
    return name, dtype, start, stop, tuple(shape)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
