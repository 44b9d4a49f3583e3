"""Data chunks written and read without the protobuf runtime, checked against the runtime."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign_ai.federation.transports._proto import federation_pb2 as pb
from sovereign_ai.federation.transports.grpc._frames import DataFrame, chunk_parser, serialize

CHUNK_TYPES = [pb.TaskChunk, pb.ResultChunk]
# Lengths around every varint width the 1 MiB chunks and their tails can have.
lengths = st.sampled_from([1, 2, 127, 128, 129, 16_383, 16_384, 16_385, 1 << 20]) | st.integers(
    1, 3000
)


@settings(max_examples=60, deadline=None)
@given(length=lengths, fill=st.integers(0, 255), chunk_type=st.sampled_from(CHUNK_TYPES))
def test_a_frame_is_byte_for_byte_the_runtimes_data_chunk(
    length: int, fill: int, chunk_type: type[pb.TaskChunk]
) -> None:
    data = bytes([fill]) * length

    wire = serialize(DataFrame(data))

    assert wire == chunk_type(data=data).SerializeToString()
    parsed = chunk_parser(chunk_type)(wire)
    assert isinstance(parsed, DataFrame)
    assert parsed.data == data
    assert parsed.data.obj is wire  # a view of what gRPC handed over, not a copy


@settings(max_examples=600, deadline=None)
@given(raw=st.binary(max_size=40) | st.builds(lambda d: b"\x12" + d, st.binary(max_size=40)))
def test_the_fast_path_never_disagrees_with_the_runtime(raw: bytes) -> None:
    try:
        expected: pb.TaskChunk | None = pb.TaskChunk.FromString(raw)
    except DecodeError:
        expected = None

    try:
        got = chunk_parser(pb.TaskChunk)(raw)
    except DecodeError:
        assert expected is None
        return
    assert expected is not None
    if isinstance(got, DataFrame):
        assert expected.WhichOneof("part") == "data"
        assert got.data == expected.data
    else:
        assert got == expected


def test_headers_go_through_the_runtime() -> None:
    task = pb.TaskChunk(header=pb.TaskHeader(job_id="j", payload_size=3))
    result = pb.ResultChunk(header=pb.ResultHeader(task_id=b"\x12" * 16, error="no"))

    assert chunk_parser(pb.TaskChunk)(serialize(task)) == task
    assert chunk_parser(pb.ResultChunk)(serialize(result)) == result


def test_a_frame_answers_like_a_data_message() -> None:
    frame = DataFrame(bytearray(b"abc"))

    assert frame.WhichOneof("part") == "data"
    assert frame == DataFrame(b"abc")
    assert frame != DataFrame(b"abd")
    with pytest.raises(TypeError):
        hash(frame)
