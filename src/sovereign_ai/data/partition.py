"""Split one dataset among simulated nodes by a named scheme.

The schemes live one per module (:mod:`.iid`, :mod:`.dirichlet`, :mod:`.shards`,
:mod:`.natural`); :func:`partition` looks one up in a registry and returns, whatever the scheme,
one array of row indices per node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, TypeVar

from sovereign_ai.data._validation import Int64Array, check_int, check_seed
from sovereign_ai.data.dataset import Dataset
from sovereign_ai.data.dirichlet import partition_dirichlet
from sovereign_ai.data.iid import partition_iid
from sovereign_ai.data.natural import partition_natural
from sovereign_ai.data.shards import partition_shards
from sovereign_ai.errors import ConfigError, UnknownNameError

__all__ = ["PartitionScheme", "node_names", "partition"]

_T = TypeVar("_T")


class PartitionScheme(StrEnum):
    """How :func:`partition` splits a dataset among nodes."""

    IID = "iid"
    """Uniformly at random, equal sizes (:func:`partition_iid`)."""
    DIRICHLET = "dirichlet"
    """Label skew drawn from Dirichlet(alpha) (:func:`partition_dirichlet`)."""
    SHARDS = "shards"
    """At most ``shards_per_node`` classes per node (:func:`partition_shards`)."""
    NATURAL = "natural"
    """One node per value of the dataset's groups (:func:`partition_natural`)."""


@dataclass(frozen=True)
class _Options:
    num_nodes: int | None
    seed: int | None
    alpha: float | None
    shards_per_node: int
    min_examples: int


def node_names(num_nodes: int) -> tuple[str, ...]:
    """Return ``num_nodes`` node names that sort in numeric order: ``node-0`` … or ``node-00`` ….

    Parameters
    ----------
    num_nodes
        How many names, >= 1.

    Returns
    -------
    tuple of str
        ``("node-0", ..., "node-9")`` for 10 nodes, ``("node-00", ..., "node-10")`` for 11.
    """
    num_nodes = check_int(num_nodes, name="num_nodes", owner="node_names", minimum=1)
    width = len(str(num_nodes - 1))
    return tuple(f"node-{i:0{width}d}" for i in range(num_nodes))


def _required(value: _T | None, *, name: str, scheme: PartitionScheme) -> _T:
    if value is None:
        raise ConfigError(
            f"The {name!r} parameter of partition is required for scheme {scheme.value!r}; "
            "got None instead."
        )
    return value


def _iid(dataset: Dataset, options: _Options) -> list[Int64Array]:
    scheme = PartitionScheme.IID
    return partition_iid(
        dataset.labels,
        num_nodes=_required(options.num_nodes, name="num_nodes", scheme=scheme),
        seed=_required(options.seed, name="seed", scheme=scheme),
    )


def _dirichlet(dataset: Dataset, options: _Options) -> list[Int64Array]:
    scheme = PartitionScheme.DIRICHLET
    return partition_dirichlet(
        dataset.labels,
        num_nodes=_required(options.num_nodes, name="num_nodes", scheme=scheme),
        alpha=_required(options.alpha, name="alpha", scheme=scheme),
        seed=_required(options.seed, name="seed", scheme=scheme),
        min_examples=options.min_examples,
    )


def _shards(dataset: Dataset, options: _Options) -> list[Int64Array]:
    scheme = PartitionScheme.SHARDS
    return partition_shards(
        dataset.labels,
        num_nodes=_required(options.num_nodes, name="num_nodes", scheme=scheme),
        shards_per_node=options.shards_per_node,
        seed=_required(options.seed, name="seed", scheme=scheme),
    )


def _natural(dataset: Dataset, options: _Options) -> list[Int64Array]:
    if dataset.groups is None:
        raise ConfigError(
            f"The 'scheme' parameter of partition can be 'natural' only for a dataset with "
            f"groups; dataset {dataset.name!r} has none (load it with group=...)."
        )
    shares = partition_natural(dataset.groups)
    if options.num_nodes is not None and options.num_nodes != len(shares):
        raise ConfigError(
            f"The 'num_nodes' parameter of partition must, for scheme 'natural', equal the "
            f"{len(shares)} groups of dataset {dataset.name!r} ({', '.join(shares)}) or be None; "
            f"got {options.num_nodes!r} instead."
        )
    return list(shares.values())


_SCHEMES: Mapping[PartitionScheme, Callable[[Dataset, _Options], list[Int64Array]]] = (
    MappingProxyType(
        {
            PartitionScheme.IID: _iid,
            PartitionScheme.DIRICHLET: _dirichlet,
            PartitionScheme.SHARDS: _shards,
            PartitionScheme.NATURAL: _natural,
        }
    )
)


def partition(
    dataset: Dataset,
    *,
    scheme: PartitionScheme | Literal["iid", "dirichlet", "shards", "natural"],
    num_nodes: int | None = None,
    seed: int | None = None,
    alpha: float | None = None,
    shards_per_node: int = 2,
    min_examples: int = 1,
) -> list[Int64Array]:
    """Split a dataset's rows among nodes by ``scheme``.

    Options a scheme does not use are ignored, so one call can carry a job's whole data section
    (``alpha`` for an IID split changes nothing).

    Parameters
    ----------
    dataset
        The dataset to split.
    scheme
        ``"iid"``, ``"dirichlet"``, ``"shards"`` or ``"natural"`` (see :class:`PartitionScheme`).
    num_nodes
        Number of nodes; required except for ``"natural"``, where, if given, it must equal the
        number of groups (a check that the file holds the sites expected).
    seed
        Integer in ``[0, 2**32)``; required except for ``"natural"``, which is not random.
    alpha
        Dirichlet concentration, > 0; required for ``"dirichlet"``.
    shards_per_node
        For ``"shards"``: shards (and so at most classes) per node, as in McMahan et al. (2017).
    min_examples
        For ``"dirichlet"``: minimum rows per node.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 array of row indices per node; every row is in exactly one. For
        ``"natural"``, nodes come in sorted order of group name (:func:`partition_natural` keeps
        the names).

    Raises
    ------
    UnknownNameError
        If ``scheme`` is not a known scheme.
    ConfigError
        If an option the scheme needs is missing or invalid.

    Examples
    --------
    >>> from sovereign_ai.data import load_builtin
    >>> shares = partition(load_builtin("iris"), scheme="iid", num_nodes=3, seed=0)
    >>> [len(rows) for rows in shares]
    [50, 50, 50]
    """
    try:
        chosen = PartitionScheme(scheme)
    except ValueError:
        raise UnknownNameError(
            "partition scheme", str(scheme), [s.value for s in PartitionScheme]
        ) from None
    if seed is not None:
        check_seed(seed, owner="partition")
    options = _Options(
        num_nodes=num_nodes,
        seed=seed,
        alpha=alpha,
        shards_per_node=shards_per_node,
        min_examples=min_examples,
    )
    return _SCHEMES[chosen](dataset, options)
