"""The hand-written safetensors writer and reader, checked against the safetensors library."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import SafetensorError
from safetensors.numpy import load, save

from sovereign_ai.core.safetensors_stream import decode, encode
from sovereign_ai.errors import SerializationError

names = st.text(min_size=1, max_size=12).filter(lambda name: name != "__metadata__")
shapes = st.lists(st.integers(0, 4), max_size=3)


PAYLOAD = ("<f4", "u1", "<u4", "<u8", "<i8")  # what encode writes with its own dtype code


def random_array(rng: np.random.Generator, shape: list[int], dtype: str) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)  # the full range, extremes included
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@st.composite
def tensor_maps(draw: st.DrawFn, dtypes: tuple[str, ...] = PAYLOAD) -> dict[str, np.ndarray]:
    keys = draw(st.lists(names, max_size=5, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {key: random_array(rng, draw(shapes), draw(st.sampled_from(dtypes))) for key in keys}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype
        assert got[name].shape == array.shape
        np.testing.assert_array_equal(got[name], array)


@settings(max_examples=150, deadline=None)
@given(tensors=tensor_maps(), metadata=st.dictionaries(names, st.text(max_size=20), max_size=3))
def test_what_encode_writes_the_library_reads_back(
    tensors: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    encoded = encode(tensors, metadata=metadata)
    blob = encoded.to_bytes()

    assert encoded.size == len(blob)
    assert_same(load(blob), tensors)
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert header.get("__metadata__", {}) == metadata
    assert (8 + int.from_bytes(blob[:8], "little")) % 8 == 0  # tensor data starts aligned


@settings(max_examples=150, deadline=None)
@given(tensors=tensor_maps(dtypes=("<f2", "<f8", *PAYLOAD)))
def test_what_the_library_writes_decode_reads_in_place(tensors: dict[str, np.ndarray]) -> None:
    blob = save(tensors, metadata={"order": "[]"})

    got, metadata = decode(blob)

    assert_same(got, tensors)
    assert metadata == {"order": "[]"}
    for array in got.values():
        assert not array.flags.writeable
        assert array.size == 0 or np.shares_memory(array, np.frombuffer(blob, dtype=np.uint8))


@settings(max_examples=100, deadline=None)
@given(tensors=tensor_maps(), chunk=st.integers(1, 200))
def test_chunks_are_the_payload_in_full_size_pieces(
    tensors: dict[str, np.ndarray], chunk: int
) -> None:
    encoded = encode(tensors)

    pieces = list(encoded.chunks(chunk))

    assert b"".join(pieces) == encoded.to_bytes()
    assert all(len(piece) == chunk for piece in pieces[:-1])
    assert 0 < len(pieces[-1]) <= chunk


def test_encode_writes_each_tensors_own_dtype_code_and_other_floats_as_f32() -> None:
    tensors = {
        "key": np.frombuffer(b"\x01\x02\x03", dtype=np.uint8),
        "mask": np.array([2**64 - 1, 0], dtype=">u8"),  # big-endian in, little-endian out
        "count": np.array([-(2**63)], dtype=np.int64),
        "sum": np.array([2**32 - 1], dtype=np.uint32),
        "w": np.array([0.5], dtype=np.float64),
    }

    blob = encode(tensors).to_bytes()

    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert {name: header[name]["dtype"] for name in tensors} == {
        "key": "U8",
        "mask": "U64",
        "count": "I64",
        "sum": "U32",
        "w": "F32",
    }
    loaded = load(blob)
    assert loaded["mask"].tolist() == [2**64 - 1, 0]
    assert loaded["w"].dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.uint16, np.bool_, np.complex64])
def test_encode_refuses_a_dtype_payloads_do_not_carry(dtype: type) -> None:
    with pytest.raises(SerializationError, match="payloads carry only float32, uint8, uint32"):
        encode({"w": np.zeros(2, dtype=dtype)})


def test_encode_views_the_tensors_memory() -> None:
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)

    encoded = encode({"w": weights})

    assert np.shares_memory(np.frombuffer(encoded.buffers[0], dtype=np.float32), weights)
    assert encoded.buffers[0].readonly


@settings(max_examples=400, deadline=None)
@given(
    tensors=tensor_maps(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10_000),
)
def test_decode_is_at_least_as_strict_as_the_library(
    tensors: dict[str, np.ndarray], edits: list[tuple[int, int]], cut: int | None
) -> None:
    """Mutated bytes: whatever decode accepts, the library accepts and reads the same."""
    blob = bytearray(encode(tensors).to_bytes())
    for position, value in edits:
        blob[position % len(blob)] = value
    if cut is not None:
        del blob[cut % (len(blob) + 1) :]

    try:
        got, _ = decode(bytes(blob))
    except SerializationError:
        return
    try:
        expected = load(bytes(blob))
    except SafetensorError as exc:  # pragma: no cover - this is the failure being looked for
        pytest.fail(f"decode accepted bytes the library refuses: {exc}")
    assert_same(got, expected)


def payload(header: object, data: bytes = b"", *, raw: bytes | None = None) -> bytes:
    text = raw if raw is not None else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"\x01\x02", "at least 8 bytes"),
        (payload({}, raw=b"{}")[:8], "header claims 2 bytes"),
        (payload(None, raw=b"[1, 2]"), "must be a JSON object"),
        (payload(None, raw=b"{\xff}"), "not valid JSON"),
        (payload(None, raw=b'{"a": NaN}'), "NaN, which JSON does not allow"),
        (payload(None, raw=b'{"w": 1, "w": 2}'), "repeats a key"),
        (payload({"__metadata__": {"k": 1}}), "must map strings to strings"),
        (
            payload({"w": {**F32, "dtype": "I32"}}, bytes(8)),
            "dtype 'I32'; payloads carry only F16, F32, F64, U8, U32, U64, I64",
        ),
        (payload({"w": {**F32, "extra": 1}}, bytes(8)), "exactly dtype, shape and data_offsets"),
        (payload({"w": {**F32, "shape": [-2]}}, bytes(8)), "invalid shape"),
        (payload({"w": {**F32, "shape": [True]}}, bytes(8)), "invalid shape"),
        (payload({"w": {**F32, "data_offsets": [0]}}, bytes(8)), "invalid data offsets"),
        (payload({"w": {**F32, "data_offsets": [0, 12]}}, bytes(12)), "do not hold shape"),
        (payload({"w": {**F32, "data_offsets": [4, 12]}}, bytes(12)), "starts at byte 4"),
        (payload({"w": F32}, bytes(4)), "ends at byte 8; the payload carries only 4"),
        (payload({"w": F32}, bytes(12)), "cover 8 bytes of data; the payload carries 12"),
        (
            payload({"w": F32, "v": {**F32, "data_offsets": [4, 12]}}, bytes(16)),
            "starts at byte 4; the previous one ends at 8",
        ),
        (payload({"": F32}, bytes(8)), "empty name"),
    ],
)
def test_malformed_payloads_are_refused_with_the_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(SerializationError, match=reason):
        decode(blob)


def test_a_name_that_is_not_unicode_text_is_refused_at_the_writer() -> None:
    with pytest.raises(SerializationError, match="not valid Unicode"):
        encode({"\ud800": np.zeros(1, dtype=np.float32)})
