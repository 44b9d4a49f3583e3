"""Named model parameters: an ordered mapping of name to float32 array.

Parameters cross the wire and land on disk only as safetensors bytes (no pickle). Secure aggregation
and robust strategies work on one flat vector, so a :class:`Parameters` flattens to a vector and
rebuilds from one against its :class:`ParameterSpec`.
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

__all__ = ["FloatArray", "ParameterSpec", "Parameters"]

FloatArray = npt.NDArray[np.float32]


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


class Parameters(Mapping[str, FloatArray]):
    """An ordered, read-only mapping of tensor name to float32 array.

    Parameters
    ----------
    tensors
        Name to array; arrays are converted to contiguous float32 copies, so later changes to the
        caller's arrays do not leak in.

    Examples
    --------
    >>> p = Parameters({"w": np.ones((2, 2)), "b": np.zeros(2)})
    >>> p.flatten().shape
    (6,)
    >>> Parameters.from_bytes(p.to_bytes()) == p
    True
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, npt.ArrayLike]) -> None:
        converted: dict[str, FloatArray] = {}
        for name, value in tensors.items():
            _check_name(name)
            array = np.array(value, dtype=np.float32, copy=True, order="C")
            array.setflags(write=False)
            converted[name] = array
        self._tensors = converted

    # Mapping protocol ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> FloatArray:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parameters):
            return NotImplemented
        return self.spec == other.spec and all(
            np.array_equal(self[name], other[name]) for name in self
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container, compare by value

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in self._tensors.items())
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
    def num_scalars(self) -> int:
        """Total number of float32 scalars."""
        return sum(int(a.size) for a in self._tensors.values())

    def flatten(self) -> FloatArray:
        """Concatenate every tensor, in order, into one vector.

        Returns
        -------
        numpy.ndarray
            Shape ``(num_scalars,)``, float32.
        """
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
        """Parameters of the same spec holding ``vector``'s values."""
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
            If the bytes are not a well-formed safetensors payload of float tensors.
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
        for name, array in loaded.items():
            if not np.issubdtype(array.dtype, np.floating):
                raise SerializationError(
                    f"Tensor {name!r} has dtype {array.dtype}; parameters must be floats."
                )
        return cls._adopt({name: loaded[name] for name in _in_order(metadata, loaded)})

    @classmethod
    def from_buffer(
        cls, buffer: bytes | bytearray | memoryview | npt.NDArray[np.uint8]
    ) -> Parameters:
        """Parse a safetensors payload in place: float32 tensors view ``buffer`` without a copy.

        For payloads received off the wire into a buffer no one else writes to afterwards.

        Raises
        ------
        SerializationError
            If the buffer is not a well-formed safetensors payload of float tensors.
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
        converted: dict[str, FloatArray] = {}
        for name, array in tensors.items():
            _check_name(name)
            owned = array
            if owned.dtype != np.float32 or not owned.flags.c_contiguous:
                owned = np.array(owned, dtype=np.float32, order="C")
            owned.setflags(write=False)
            converted[name] = owned
        adopted._tensors = converted
        return adopted


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
