"""How secure aggregation's messages travel: typed tensors and scalar settings, nothing else.

Every key, signature, certificate and share is a ``uint8`` tensor named after what it is and whose
it is; the masked input is one ``uint32`` (modulus up to ``2**32``) or ``uint64`` tensor. Lists of
node ids travel as JSON text in a task setting. The coordinator and the node both use these
functions, so the two ends cannot disagree on a name.

==============================  =================================================================
stage                           tensors (node answer) / per-recipient task tensors
==============================  =================================================================
advertise keys                  ``cipher_public_key``, ``mask_public_key``,
                                ``self_mask_commitment``, ``certificate``, ``signature`` / —
share keys                      ``share/<recipient>`` / ``advert/<peer>/<field>``
masked input                    ``masked`` / the model's tensors and ``secagg/share/<sender>``
unmask                          ``self-mask/<node>``, ``mask-key/<node>`` / —
==============================  =================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sovereign_ai.core import ConfigValue, Parameters
from sovereign_ai.errors import SecureAggregationError
from sovereign_ai.secagg.adverts import KeyAdvert
from sovereign_ai.secagg.node_session import Reveal
from sovereign_ai.secagg.shamir import Share

__all__ = [
    "SETTINGS",
    "adverts_from_tensors",
    "adverts_to_tensors",
    "masked_from_tensors",
    "masked_to_tensors",
    "node_list",
    "reveal_from_tensors",
    "reveal_to_tensors",
    "sealed_from_tensors",
    "sealed_to_tensors",
    "split_model_and_shares",
]

SETTINGS = (
    "secagg_attempt",
    "secagg_neighbours",
    "secagg_threshold",
    "secagg_modulus_bits",
    "secagg_quantisation_bits",
    "secagg_clipping_range",
    "secagg_max_weight",
    "secagg_cohort_size",
    "secagg_input",
    "secagg_survivors",
    "secagg_dropped",
)
"""Task settings of the secure-aggregation stages (a node refuses any other it does not know)."""

_ADVERT_FIELDS = (
    "cipher_public_key",
    "mask_public_key",
    "self_mask_commitment",
    "certificate",
    "signature",
)
_SHARE_PREFIX = "secagg/share/"
_MAX_LIST = 100_000


def _bytes(array: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def node_list(config: Mapping[str, ConfigValue], key: str) -> list[str]:
    """A JSON list of node ids from a task setting.

    Raises
    ------
    SecureAggregationError
        If the setting is missing or not a JSON list of distinct strings.
    """
    try:
        value = json.loads(str(config[key]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise SecureAggregationError(f"The task lacks a valid {key!r} setting.") from exc
    if (
        not isinstance(value, list)
        or len(value) > _MAX_LIST
        or not all(isinstance(v, str) and v for v in value)
        or len(set(value)) != len(value)
    ):
        raise SecureAggregationError(f"The {key!r} setting must list distinct node ids.")
    return value


def advert_to_tensors(advert: KeyAdvert, prefix: str = "") -> dict[str, bytes]:
    """One advertisement as ``uint8`` tensors named ``<prefix><field>``."""
    return {f"{prefix}{name}": getattr(advert, name) for name in _ADVERT_FIELDS}


def advert_from_tensors(
    node_id: str, tensors: Mapping[str, NDArray[Any]], prefix: str = ""
) -> KeyAdvert:
    """Parse :func:`advert_to_tensors` output.

    Raises
    ------
    SecureAggregationError
        If a field is missing or malformed.
    """
    try:
        fields = {name: _bytes(tensors[f"{prefix}{name}"]) for name in _ADVERT_FIELDS}
    except KeyError as exc:
        raise SecureAggregationError(f"The advertisement of {node_id!r} lacks {exc}.") from exc
    return KeyAdvert(node_id=node_id, **fields)


def adverts_to_tensors(adverts: Mapping[str, KeyAdvert]) -> Parameters:
    """The neighbours' advertisements a node is sent in the share-keys stage."""
    tensors: dict[str, bytes] = {}
    for peer, advert in adverts.items():
        tensors.update(advert_to_tensors(advert, f"advert/{peer}/"))
    return Parameters.typed(tensors)


def adverts_from_tensors(parameters: Parameters) -> dict[str, KeyAdvert]:
    """Parse :func:`adverts_to_tensors` output."""
    peers = set()
    for name in parameters:
        head, _, field = name.rpartition("/")
        if (
            not head.startswith("advert/")
            or len(head) == len("advert/")
            or field not in _ADVERT_FIELDS
        ):
            raise SecureAggregationError(f"Unexpected tensor {name!r} in relayed advertisements.")
        peers.add(head[len("advert/") :])
    return {peer: advert_from_tensors(peer, parameters, f"advert/{peer}/") for peer in peers}


def sealed_to_tensors(sealed: Mapping[str, bytes], prefix: str = "share/") -> Parameters:
    """Encrypted shares keyed by peer, as ``uint8`` tensors ``<prefix><peer>``."""
    return Parameters.typed({f"{prefix}{peer}": message for peer, message in sealed.items()})


def sealed_from_tensors(
    tensors: Mapping[str, NDArray[Any]], prefix: str = "share/"
) -> dict[str, bytes]:
    """Parse :func:`sealed_to_tensors` output (other names are refused)."""
    out = {}
    for name, array in tensors.items():
        if not name.startswith(prefix) or len(name) == len(prefix) or array.dtype != np.uint8:
            raise SecureAggregationError(f"Unexpected tensor {name!r} among encrypted shares.")
        out[name[len(prefix) :]] = _bytes(array)
    return out


def split_model_and_shares(parameters: Parameters) -> tuple[Parameters, dict[str, bytes]]:
    """A masked-input task's model tensors, and the encrypted shares relayed with them."""
    shares = {n: a for n, a in parameters.items() if n.startswith(_SHARE_PREFIX)}
    model = Parameters.typed({n: a for n, a in parameters.items() if n not in shares})
    return model, sealed_from_tensors(shares, _SHARE_PREFIX)


def with_shares(model: Parameters, sealed: Mapping[str, bytes]) -> Parameters:
    """The model's tensors and the encrypted shares for one recipient, in one payload."""
    tensors: dict[str, NDArray[Any] | bytes] = dict(model.items())
    tensors.update({f"{_SHARE_PREFIX}{sender}": message for sender, message in sealed.items()})
    return Parameters.typed(tensors)


def masked_to_tensors(masked: NDArray[np.uint64], *, modulus_bits: int) -> Parameters:
    """The masked input, as ``uint32`` when the modulus allows (half the bytes)."""
    dtype = np.uint32 if modulus_bits <= 32 else np.uint64
    return Parameters.typed({"masked": masked.astype(dtype)})


def masked_from_tensors(parameters: Parameters) -> NDArray[np.unsignedinteger[Any]]:
    """The masked input of a node's answer (``uint32`` or ``uint64``, not copied)."""
    if list(parameters) != ["masked"]:
        raise SecureAggregationError(
            f"A masked input must be one tensor 'masked'; got {list(parameters)[:3]}."
        )
    array = parameters["masked"]
    if array.dtype not in (np.uint32, np.uint64) or array.ndim != 1:
        raise SecureAggregationError(
            f"A masked input must be a 1-D uint32 or uint64 vector; got {array.dtype} of shape "
            f"{array.shape}."
        )
    return array


def reveal_to_tensors(reveal: Reveal) -> Parameters:
    """The revealed shares, as 70-byte ``uint8`` tensors."""
    tensors = {f"self-mask/{peer}": share.to_bytes() for peer, share in reveal.self_mask.items()}
    tensors.update(
        {f"mask-key/{peer}": share.to_bytes() for peer, share in reveal.mask_key.items()}
    )
    return Parameters.typed(tensors)


def reveal_from_tensors(parameters: Parameters) -> Reveal:
    """Parse :func:`reveal_to_tensors` output."""
    reveal = Reveal()
    for name, array in parameters.items():
        kind, _, peer = name.partition("/")
        if kind not in ("self-mask", "mask-key") or not peer or array.dtype != np.uint8:
            raise SecureAggregationError(f"Unexpected tensor {name!r} among revealed shares.")
        target = reveal.self_mask if kind == "self-mask" else reveal.mask_key
        target[peer] = Share.from_bytes(_bytes(array))
    return reveal
