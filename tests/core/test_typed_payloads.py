"""Typed payloads: integer and byte tensors keep their dtype; float32 models behave as before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.core.parameters import PAYLOAD_DTYPES
from sovereign_ai.errors import SerializationError, StaleMessageError

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._0123456789", min_size=1, max_size=12)
shapes = st.lists(st.integers(0, 4), max_size=3).map(tuple)
typed_tensors = st.sampled_from(PAYLOAD_DTYPES).flatmap(
    lambda dtype: arrays(
        dtype, shapes, elements={"allow_nan": False} if dtype.kind == "f" else None
    )
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(names, typed_tensors, max_size=6))
def test_typed_payload_round_trips_with_dtypes_kept_both_ways(raw: dict[str, np.ndarray]) -> None:
    payload = Parameters.typed(raw)

    from_library = Parameters.from_bytes(payload.to_bytes())
    in_place = Parameters.from_buffer(bytearray(payload.encoded().to_bytes()))

    for back in (from_library, in_place):
        assert list(back) == list(raw)
        assert back.dtypes == {name: array.dtype for name, array in raw.items()}
        assert back == payload


def test_bytes_become_uint8_and_read_back_as_the_same_bytes() -> None:
    key = bytes(range(256)) + b"\x00ciphertext"

    payload = Parameters.typed({"public_key": key, "share": bytearray(b"\xff\x00")})

    assert payload["public_key"].dtype == np.uint8
    assert Parameters.from_bytes(payload.to_bytes())["public_key"].tobytes() == key
    assert payload["share"].tobytes() == b"\xff\x00"


def test_extreme_integers_survive_exactly() -> None:
    payload = Parameters.typed(
        {
            "mask": np.array([2**64 - 1, 2**63, 0], dtype=np.uint64),
            "sum": np.array([2**32 - 1], dtype=np.uint32),
            "count": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        }
    )

    back = Parameters.from_buffer(payload.encoded().to_bytes())

    assert back["mask"].tolist() == [2**64 - 1, 2**63, 0]
    assert back["sum"].tolist() == [2**32 - 1]
    assert back["count"].tolist() == [-(2**63), 2**63 - 1]


def test_typed_copies_makes_read_only_and_turns_other_floats_into_float32() -> None:
    source = np.arange(3, dtype=np.uint64)
    payload = Parameters.typed({"mask": source, "w": np.ones(2, dtype=np.float64), "n": [1, 2]})
    source[0] = 9

    assert payload["mask"][0] == 0
    assert payload.dtypes == {
        "mask": np.dtype(np.uint64),
        "w": np.dtype(np.float32),
        "n": np.dtype(np.int64),
    }
    with pytest.raises(ValueError, match="read-only"):
        payload["mask"][0] = 1


@pytest.mark.parametrize(
    "value",
    [np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.bool_), np.zeros(2, dtype=np.complex64)],
)
def test_typed_refuses_other_dtypes_naming_the_allowed_ones(value: np.ndarray) -> None:
    with pytest.raises(SerializationError, match=r"one of float32, uint8, uint32, uint64, int64"):
        Parameters.typed({"w": value})


def test_the_plain_constructor_still_makes_everything_float32() -> None:
    params = Parameters({"w": np.arange(3, dtype=np.uint64), "b": [1, 2]})

    assert params.is_float32
    assert set(params.dtypes.values()) == {np.dtype(np.float32)}


def test_a_float32_model_and_a_float32_typed_update_compare_equal() -> None:
    model = Parameters({"w": np.ones((2, 2))})
    update = Parameters.typed({"w": np.ones((2, 2), dtype=np.float32)})

    assert model.spec == update.spec
    assert model == update
    assert update.flatten().tolist() == [1.0] * 4


def test_same_values_in_another_dtype_are_not_equal() -> None:
    as_float = Parameters({"w": [1, 2]})
    as_uint = Parameters.typed({"w": np.array([1, 2], dtype=np.uint32)})

    assert as_float.spec == as_uint.spec  # names and shapes only
    assert as_float != as_uint


def test_vector_views_refuse_a_typed_payload() -> None:
    payload = Parameters.typed({"w": np.ones(2, dtype=np.float32), "mask": np.ones(2, np.uint64)})

    assert not payload.is_float32
    with pytest.raises(SerializationError, match=r"flatten\(\) works on float32 model parameters"):
        payload.flatten()
    with pytest.raises(SerializationError, match=r"with_vector\(\).*'mask': 'uint64'"):
        payload.with_vector(np.ones(4))


def test_reordering_keeps_dtypes() -> None:
    payload = Parameters.typed({"a": b"\x01", "b": np.array([5], dtype=np.int64)})

    assert payload.reordered(["b", "a"]).dtypes == {
        "b": np.dtype(np.int64),
        "a": np.dtype(np.uint8),
    }


TASK = Task("job", 1, Stage.TRAIN, "node-a", Parameters({}))


def test_a_result_with_integer_tensors_passes_the_finiteness_check() -> None:
    payload = Parameters.typed({"mask": np.array([2**64 - 1], dtype=np.uint64), "key": b"\x00"})

    Result("job", 1, Stage.TRAIN, "node-a", 1, payload).check_answers(TASK)


def test_a_typed_result_with_a_non_finite_float_is_still_refused() -> None:
    payload = Parameters.typed({"mask": np.ones(1, np.uint64), "w": np.array([np.nan], np.float32)})

    with pytest.raises(StaleMessageError, match="non-finite values in tensor 'w'"):
        Result("job", 1, Stage.TRAIN, "node-a", 1, payload).check_answers(TASK)
