"""How much the gRPC transport accepts, and the channel and server options derived from it.

Both ends refuse anything larger than these limits *before* reading it: a header that declares a
payload above ``max_payload_bytes`` is refused at once, and gRPC itself drops any single message
above :attr:`WireLimits.max_message_bytes`, so a peer cannot make the other side buffer more than
it agreed to.
"""

from __future__ import annotations

from dataclasses import dataclass

from sovereign_ai.errors import ConfigError

__all__ = ["WireLimits"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_MAX_CHUNK_BYTES = 4 * MIB  # gRPC's own default message ceiling
_MAX_PAYLOAD_CEILING = 64 * GIB  # beyond any model this framework trains; a typo guard


@dataclass(frozen=True)
class WireLimits:
    """Size limits both ends of the gRPC transport enforce.

    Parameters
    ----------
    max_payload_bytes
        Largest safetensors payload one task or result may declare (default 2 GiB). A larger
        declaration is refused before any byte of it is read.
    chunk_size_bytes
        Size of the data chunks a payload is streamed in (default 1 MiB, at most 4 MiB).
    max_header_bytes
        Largest serialised task or result header (job id, stage, settings, metrics).
    max_config_entries
        Most settings one task, or metrics one result, may carry.
    max_text_chars
        Longest identifier, setting key, or string setting value.
    """

    max_payload_bytes: int = 2 * GIB
    chunk_size_bytes: int = 1 * MIB
    max_header_bytes: int = 256 * KIB
    max_config_entries: int = 1024
    max_text_chars: int = 64 * KIB

    def __post_init__(self) -> None:
        _check_range("max_payload_bytes", self.max_payload_bytes, 1, _MAX_PAYLOAD_CEILING)
        _check_range("chunk_size_bytes", self.chunk_size_bytes, 1, _MAX_CHUNK_BYTES)
        _check_range("max_header_bytes", self.max_header_bytes, KIB, _MAX_CHUNK_BYTES)
        _check_range("max_config_entries", self.max_config_entries, 1, 1_000_000)
        _check_range("max_text_chars", self.max_text_chars, 256, self.max_header_bytes)

    @property
    def max_message_bytes(self) -> int:
        """Largest single gRPC message either end sends or accepts (a chunk or a header)."""
        return max(self.chunk_size_bytes, self.max_header_bytes) + 4 * KIB  # + framing fields


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"The {name!r} parameter of WireLimits must be an integer in [{low}, {high}]; "
            f"got {value!r} instead."
        )


def server_options(limits: WireLimits, *, max_streams_per_connection: int) -> list[tuple[str, int]]:
    """gRPC server channel arguments: explicit message ceilings, keepalive and stream limits."""
    return [
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_concurrent_streams", max_streams_per_connection),
        # Ping idle nodes every 30 s and drop them after 10 s of silence, so a node that
        # vanished without a FIN (power cut, NAT timeout) stops counting as connected.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept the nodes' own 30 s pings; a peer pinging faster than every 10 s is dropped.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 3),
        # One coordinator per port: a second process must fail to bind, not share the port.
        ("grpc.so_reuseport", 0),
    ]


def channel_options(limits: WireLimits) -> list[tuple[str, int]]:
    """gRPC client channel arguments matching :func:`server_options`."""
    return [
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # The node client reconnects with its own bounded, jittered backoff; no hidden retries.
        ("grpc.enable_retries", 0),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
