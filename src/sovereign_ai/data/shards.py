"""Shard partitioning: the "pathological non-IID" split of McMahan et al. (2017).

McMahan, Moore, Ramage, Hampson and Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017, sort the rows by label, cut them into
``num_nodes * shards_per_node`` shards and give each node ``shards_per_node`` shards at random, so
that most nodes see only ``shards_per_node`` classes.

Here no shard spans two classes, so the bound is exact: a node sees *at most* ``shards_per_node``
classes. Shards are allotted to classes by the D'Hondt rule (each next shard to the class with
the most rows per shard), which keeps shard sizes as equal as label-pure shards allow; within a
class, sizes differ by at most one row.
"""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._validation import (
    Int64Array,
    check_int,
    check_labels,
    check_num_nodes,
    check_seed,
)
from sovereign_ai.errors import ConfigError

__all__ = ["partition_shards"]


def _shards_per_class(counts: npt.NDArray[np.int64], num_shards: int) -> list[int]:
    """Allot ``num_shards`` (>= number of classes, <= rows) to classes, at least one each."""
    allotted = [1] * counts.size
    # Max-heap on rows per shard; ties go to the lower class index, for determinism.
    heap = [(-float(count), index) for index, count in enumerate(counts)]
    heapq.heapify(heap)
    for _ in range(num_shards - counts.size):
        _, index = heapq.heappop(heap)
        allotted[index] += 1
        heapq.heappush(heap, (-float(counts[index]) / allotted[index], index))
    return allotted


def partition_shards(
    labels: npt.ArrayLike, *, num_nodes: int, shards_per_node: int = 2, seed: int
) -> list[Int64Array]:
    """Split rows into label-pure shards and give each node ``shards_per_node`` of them.

    Parameters
    ----------
    labels
        Shape ``(num_examples,)``, integer class indices.
    num_nodes
        Number of nodes, >= 1.
    shards_per_node
        Shards per node, >= 1; each node sees at most this many classes. ``num_nodes *
        shards_per_node`` must lie between the number of classes present and the number of rows.
    seed
        Integer in ``[0, 2**32)``; the same seed gives the same partition.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 array of row indices per node; every row is in exactly one.

    Raises
    ------
    ConfigError
        If an argument is invalid, or there are fewer shards than classes (some class could not
        be placed without mixing classes in a shard) or more shards than rows.
    """
    owner = "partition_shards"
    label_array = check_labels(labels, owner=owner)
    num_nodes = check_num_nodes(num_nodes, owner=owner, num_examples=label_array.size)
    shards_per_node = check_int(shards_per_node, name="shards_per_node", owner=owner, minimum=1)
    rng = np.random.default_rng(check_seed(seed, owner=owner))
    classes, counts = np.unique(label_array, return_counts=True)
    num_shards = num_nodes * shards_per_node
    if not classes.size <= num_shards <= label_array.size:
        raise ConfigError(
            f"The 'shards_per_node' parameter of {owner} must make num_nodes * shards_per_node "
            f"between the {classes.size} classes present and the {label_array.size} rows; got "
            f"{shards_per_node!r} (with {num_nodes} nodes: {num_shards} shards) instead."
        )

    shards: list[Int64Array] = []
    for label, count in zip(classes, _shards_per_class(counts, num_shards), strict=True):
        rows = rng.permutation(np.flatnonzero(label_array == label)).astype(np.int64)
        shards.extend(np.array_split(rows, count))
    order = rng.permutation(num_shards).reshape(num_nodes, shards_per_node)  # (nodes, shards)
    return [np.sort(np.concatenate([shards[s] for s in node_shards])) for node_shards in order]
