"""Named model parameters: an ordered mapping of name to float32 array.

Parameters cross the wire and land on disk only as safetensors bytes (no pickle). Secure aggregation
and robust strategies work on one flat vector, so a :class:`Parameters` flattens to a vector and
rebuilds from one against its :class:`ParameterSpec`.

A model is float32 throughout. Protocol messages also carry *typed payloads* built with
:meth:`Parameters.typed`: tensors of one of :data:`PAYLOAD_DTYPES` (masked vectors as uint32 or
uint64, counters as int64, raw bytes such as public keys or ciphertexts as uint8), each keeping its
dtype in safetensors, in memory and over gRPC. The vector views (:meth:`Parameters.flatten`,
:meth:`Parameters.with_vector`) stay float32-model operations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.core.safetensors_stream import MAX_TENSORS, EncodedTensors, decode, encode
from sovereign_ai.errors import SerializationError

__all__ = ["PAYLOAD_DTYPES", "FloatArray", "ParameterSpec", "Parameters"]

FloatArray = npt.NDArray[np.float32]

PAYLOAD_DTYPES: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(name) for name in ("float32", "uint8", "uint32", "uint64", "int64")
)
"""The dtypes a typed payload keeps; floats of other widths become float32."""
_ALLOWED = ", ".join(str(dtype) for dtype in PAYLOAD_DTYPES)


@dataclass(frozen=True)
class ParameterSpec:
    """Names and shapes of a model's parameters, in order.

    Parameters
    ----------
    names
        Tensor names in their canonical order.
    shapes
        One shape per name.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        """Total number of scalars over all tensors."""
        return sum(int(np.prod(shape, dtype=np.int64)) for shape in self.shapes)


class Parameters(Mapping[str, npt.NDArray[Any]]):
    """An ordered, read-only mapping of tensor name to array: float32, or typed payload dtypes.

    Parameters
    ----------
    tensors
        Name to array; arrays are converted to contiguous float32 copies, so later changes to the
        caller's arrays do not leak in. To keep integer dtypes, build with :meth:`typed`.

    Examples
    --------
    >>> p = Parameters({"w": np.ones((2, 2)), "b": np.zeros(2)})
    >>> p.flatten().shape
    (6,)
    >>> Parameters.from_bytes(p.to_bytes()) == p
    True
    >>> msg = Parameters.typed({"public_key": b"\\x01\\x02", "mask": np.arange(3, dtype=np.uint64)})
    >>> {name: str(dtype) for name, dtype in msg.dtypes.items()}
    {'public_key': 'uint8', 'mask': 'uint64'}
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, npt.ArrayLike]) -> None:
        converted: dict[str, npt.NDArray[Any]] = {}
        for name, value in tensors.items():
            _check_name(name)
            array = np.array(value, dtype=np.float32, copy=True, order="C")
            array.setflags(write=False)
            converted[name] = array
        self._tensors = converted

    @classmethod
    def typed(cls, tensors: Mapping[str, npt.ArrayLike | bytes]) -> Parameters:
        """A payload whose tensors keep their dtypes, for protocol messages beyond float models.

        Parameters
        ----------
        tensors
            Name to array of a dtype in float32, uint8, uint32, uint64 or int64 (copied; floats of
            other widths become float32), or to ``bytes`` (kept as a 1-D uint8 tensor).

        Raises
        ------
        SerializationError
            If a tensor has any other dtype.
        """
        converted: dict[str, npt.NDArray[Any]] = {}
        for name, value in tensors.items():
            _check_name(name)
            if isinstance(value, bytes | bytearray | memoryview):
                array = np.frombuffer(bytes(value), dtype=np.uint8)
            else:
                array = np.asarray(value)
            converted[name] = _payload_array(name, array, copy=True)
        typed = cls.__new__(cls)
        typed._tensors = converted
        return typed

    # Mapping protocol ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameters):
            return NotImplemented
        return (
            self.spec == other.spec
            and self.dtypes == other.dtypes
            and all(np.array_equal(self[name], other[name]) for name in self)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container, compare by value

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{n}{tuple(a.shape)}" + ("" if a.dtype == np.float32 else f":{a.dtype}")
            for n, a in self._tensors.items()
        )
        return f"Parameters({shapes})"

    # Shape and vector views ---------------------------------------------------------------------
    @property
    def spec(self) -> ParameterSpec:
        """The names and shapes of these parameters."""
        return ParameterSpec(
            names=tuple(self._tensors),
            shapes=tuple(tuple(int(d) for d in a.shape) for a in self._tensors.values()),
        )

    @property
    def dtypes(self) -> dict[str, np.dtype[Any]]:
        """Each tensor's dtype, by name: all float32 unless built with :meth:`typed`."""
        return {name: array.dtype for name, array in self._tensors.items()}

    @property
    def is_float32(self) -> bool:
        """Whether every tensor is float32, as a model (and its vector views) must be."""
        return all(array.dtype == np.float32 for array in self._tensors.values())

    @property
    def num_scalars(self) -> int:
        """Total number of scalars over all tensors."""
        return sum(int(a.size) for a in self._tensors.values())

    def _require_float32(self, operation: str) -> None:
        if not self.is_float32:
            others = {n: str(d) for n, d in self.dtypes.items() if d != np.float32}
            raise SerializationError(
                f"{operation} works on float32 model parameters only; tensors {others} are a "
                "typed payload. Read them by name instead."
            )

    def flatten(self) -> FloatArray:
        """Concatenate every tensor, in order, into one vector.

        Returns
        -------
        numpy.ndarray
            Shape ``(num_scalars,)``, float32.

        Raises
        ------
        SerializationError
            If a tensor is not float32 (a typed payload, see :meth:`typed`).
        """
        self._require_float32("flatten()")
        if not self._tensors:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([a.reshape(-1) for a in self._tensors.values()])

    @classmethod
    def from_vector(cls, vector: npt.ArrayLike, spec: ParameterSpec) -> Parameters:
        """Rebuild parameters of ``spec`` from a flat vector.

        Raises
        ------
        SerializationError
            If the vector's length differs from ``spec.size``.
        """
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        if flat.size != spec.size:
            raise SerializationError(
                f"The vector must hold {spec.size} scalars for this parameter spec; "
                f"got {flat.size} instead."
            )
        tensors: dict[str, FloatArray] = {}
        offset = 0
        for name, shape in zip(spec.names, spec.shapes, strict=True):
            count = int(np.prod(shape, dtype=np.int64))
            tensors[name] = flat[offset : offset + count].reshape(shape)
            offset += count
        return cls(tensors)

    def reordered(self, names: Iterable[str]) -> Parameters:
        """The same tensors in the order of ``names``, sharing their (read-only) memory.

        Raises
        ------
        SerializationError
            If ``names`` is not exactly this mapping's names.
        """
        order = list(names)
        if sorted(order) != sorted(self._tensors):
            raise SerializationError(
                f"Cannot reorder tensors {sorted(self._tensors)} as {order}: the names differ."
            )
        reordered = Parameters.__new__(Parameters)
        reordered._tensors = {name: self._tensors[name] for name in order}
        return reordered

    def with_vector(self, vector: npt.ArrayLike) -> Parameters:
        """Parameters of the same spec holding ``vector``'s values.

        Raises
        ------
        SerializationError
            If a tensor is not float32 (a typed payload, see :meth:`typed`), or the vector's
            length differs from the spec's size.
        """
        self._require_float32("with_vector()")
        return Parameters.from_vector(vector, self.spec)

    # Serialisation ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes, preserving tensor order in the metadata."""
        from safetensors.numpy import save

        return bytes(save(dict(self._tensors), metadata=self._order_metadata()))

    def encoded(self) -> EncodedTensors:
        """The safetensors payload as views of these tensors' memory, for streaming.

        The same format as :meth:`to_bytes` without building one ``bytes`` of the whole model;
        :meth:`from_buffer` (or :meth:`from_bytes`) reads it back.
        """
        return encode(self._tensors, metadata=self._order_metadata())

    def _order_metadata(self) -> dict[str, str]:
        return {"order": json.dumps(list(self._tensors))}

    @classmethod
    def from_bytes(cls, payload: bytes) -> Parameters:
        """Parse safetensors bytes written by :meth:`to_bytes` (or any safetensors producer).

        Raises
        ------
        SerializationError
            If the bytes are not a well-formed safetensors payload of float tensors or of the
            integer dtypes typed payloads carry (uint8, uint32, uint64, int64).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load

        if not isinstance(payload, bytes | bytearray | memoryview):
            raise SerializationError(f"Expected bytes; got {type(payload).__name__}.")
        try:
            loaded = load(bytes(payload))
            metadata = _read_metadata(bytes(payload))
        except (SafetensorError, ValueError, TypeError, OverflowError, KeyError) as exc:
            raise SerializationError(f"Not a valid safetensors payload: {exc}") from exc
        if len(loaded) > MAX_TENSORS:
            raise SerializationError(f"Payload holds {len(loaded)} tensors; at most {MAX_TENSORS}.")
        return cls._adopt({name: loaded[name] for name in _in_order(metadata, loaded)})

    @classmethod
    def from_buffer(
        cls, buffer: bytes | bytearray | memoryview | npt.NDArray[np.uint8]
    ) -> Parameters:
        """Parse a safetensors payload in place: float32 tensors view ``buffer`` without a copy.

        For payloads received off the wire into a buffer no one else writes to afterwards. Integer
        tensors keep their dtype, as with :meth:`from_bytes`.

        Raises
        ------
        SerializationError
            If the buffer is not a well-formed safetensors payload of float tensors or of the
            integer dtypes typed payloads carry.
        """
        tensors, metadata = decode(buffer)
        return cls._adopt({name: tensors[name] for name in _in_order(metadata, tensors)})

    @classmethod
    def _adopt(cls, tensors: dict[str, npt.NDArray[Any]]) -> Parameters:
        """Wrap freshly made arrays no one else holds, without the defensive copy.

        For parsers whose arrays are new (the safetensors loader) or view a buffer only they hold
        (:meth:`from_buffer`): a 200 MB model then costs one copy less on every message received.
        """
        adopted = cls.__new__(cls)
        converted: dict[str, npt.NDArray[Any]] = {}
        for name, array in tensors.items():
            _check_name(name)
            converted[name] = _payload_array(name, array, copy=False)
        adopted._tensors = converted
        return adopted


def _payload_array(name: str, array: npt.NDArray[Any], *, copy: bool) -> npt.NDArray[Any]:
    """``array`` as a read-only, C-contiguous, native-order tensor of a payload dtype.

    Floats become float32; a dtype outside :data:`PAYLOAD_DTYPES` is refused. Without ``copy``,
    an array already in shape is kept as is (its owner gives it up).
    """
    if np.issubdtype(array.dtype, np.floating):
        dtype = np.dtype(np.float32)
    else:
        dtype = array.dtype.newbyteorder("=")
        if dtype not in PAYLOAD_DTYPES:
            raise SerializationError(
                f"Tensor {name!r} has dtype {array.dtype}; a payload tensor must be one of "
                f"{_ALLOWED} (floats of other widths become float32)."
            )
    owned = array
    if copy or owned.dtype != dtype or not owned.flags.c_contiguous:
        owned = np.array(owned, dtype=dtype, order="C", copy=True)
    owned.setflags(write=False)
    return owned


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or name == "__metadata__":
        raise SerializationError(
            f"Tensor names must be non-empty strings other than '__metadata__'; got {name!r}."
        )


def _read_metadata(payload: bytes) -> dict[str, object]:
    """The ``__metadata__`` of a payload the library has already accepted."""
    header_len = int.from_bytes(payload[:8], "little")
    meta = json.loads(payload[8 : 8 + header_len]).get("__metadata__")
    return meta if isinstance(meta, dict) else {}


def _in_order(metadata: Mapping[str, object], names: Iterable[str]) -> list[str]:
    """Tensor names in the order :meth:`Parameters.to_bytes` recorded; sorted if none matches."""
    present = list(names)
    order = metadata.get("order")
    try:
        recorded = json.loads(order) if isinstance(order, str) else None
    except json.JSONDecodeError:
        recorded = None
    if isinstance(recorded, list) and sorted(map(str, recorded)) == sorted(present):
        return [str(name) for name in recorded]
    return sorted(present)
