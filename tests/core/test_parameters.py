"""Parameters: safetensors round trips, flatten/unflatten, and refusal of corrupt bytes."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sovereign_ai.core import Parameters
from sovereign_ai.core.parameters import PAYLOAD_DTYPES
from sovereign_ai.errors import SerializationError

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._,0123456789", min_size=1, max_size=12).filter(
    lambda n: n != "__metadata__"
)
tensors = arrays(
    np.float32,
    st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
    elements=st.floats(-1e6, 1e6, width=32),
)
parameter_dicts = st.dictionaries(names, tensors, max_size=6)


@settings(max_examples=60, deadline=None)
@given(parameter_dicts)
def test_bytes_round_trip_keeps_order_and_values(raw: dict[str, np.ndarray]) -> None:
    params = Parameters(raw)
    back = Parameters.from_bytes(params.to_bytes())
    assert list(back) == list(params)
    assert back == params


@settings(max_examples=60, deadline=None)
@given(parameter_dicts)
def test_flatten_then_rebuild_is_identity(raw: dict[str, np.ndarray]) -> None:
    params = Parameters(raw)
    vector = params.flatten()
    assert vector.shape == (params.num_scalars,)
    assert Parameters.from_vector(vector, params.spec) == params


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_never_crash(payload: bytes) -> None:
    with contextlib.suppress(SerializationError):
        Parameters.from_bytes(payload)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_flipped_bytes_are_refused_or_parse_cleanly(position: int, value: int) -> None:
    good = bytearray(Parameters({"w": np.arange(12, dtype=np.float32)}).to_bytes())
    good[position % len(good)] = value
    try:
        parsed = Parameters.from_bytes(bytes(good))
    except SerializationError:
        return
    assert all(v.dtype in PAYLOAD_DTYPES for v in parsed.values())  # "F32" may become "U32"


def test_truncated_payload_is_refused() -> None:
    payload = Parameters({"w": np.ones(100)}).to_bytes()
    with pytest.raises(SerializationError, match="Not a valid safetensors payload"):
        Parameters.from_bytes(payload[:-10])


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint16, np.bool_])
def test_tensors_of_other_integer_dtypes_are_refused(dtype: type) -> None:
    from safetensors.numpy import save

    with pytest.raises(SerializationError, match="one of float32, uint8, uint32, uint64, int64"):
        Parameters.from_bytes(save({"w": np.zeros(3, dtype=dtype)}))


def test_wrong_vector_length_is_refused() -> None:
    params = Parameters({"w": np.ones((2, 2))})
    with pytest.raises(SerializationError, match="4 scalars"):
        params.with_vector(np.ones(5))


def test_parameters_are_read_only_copies() -> None:
    source = np.ones(3, dtype=np.float32)
    params = Parameters({"w": source})
    source[0] = 7
    assert params["w"][0] == 1
    with pytest.raises(ValueError, match="read-only"):
        params["w"][0] = 5


@pytest.mark.parametrize("name", ["", "__metadata__"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(SerializationError, match="Tensor names must be non-empty strings"):
        Parameters({name: np.ones(1)})
