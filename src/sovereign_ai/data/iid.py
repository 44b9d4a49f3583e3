"""IID partitioning: every node gets a uniformly random, equally sized share of the rows.

The baseline against which the non-IID schemes (:mod:`.dirichlet`, :mod:`.shards`) are measured:
in expectation each node's label distribution equals the whole dataset's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._validation import Int64Array, check_labels, check_num_nodes, check_seed

__all__ = ["partition_iid"]


def partition_iid(labels: npt.ArrayLike, *, num_nodes: int, seed: int) -> list[Int64Array]:
    """Split rows uniformly at random into ``num_nodes`` shares of (almost) equal size.

    Parameters
    ----------
    labels
        Shape ``(num_examples,)``, integer class indices. Only the number of rows matters here;
        labels are taken so that every partitioner has the same signature.
    num_nodes
        Number of shares, in ``[1, num_examples]``. Share sizes differ by at most one row.
    seed
        Integer in ``[0, 2**32)``; the same seed gives the same shares.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 array of row indices per node; every row is in exactly one.

    Raises
    ------
    ConfigError
        If an argument is invalid.

    Examples
    --------
    >>> [len(p) for p in partition_iid([0, 1, 0, 1, 1], num_nodes=2, seed=0)]
    [3, 2]
    """
    owner = "partition_iid"
    label_array = check_labels(labels, owner=owner)
    num_nodes = check_num_nodes(num_nodes, owner=owner, num_examples=label_array.size)
    rng = np.random.default_rng(check_seed(seed, owner=owner))
    order = rng.permutation(label_array.size)  # (num_examples,)
    return [np.sort(share).astype(np.int64) for share in np.array_split(order, num_nodes)]
