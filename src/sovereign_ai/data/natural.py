"""Natural partitioning: one node per value of a group column, such as a hospital id.

This is how the data of a real federation is split: by the site that holds it. Used in simulation
to replay a federation from one pooled file with a column saying where each row came from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._validation import Int64Array
from sovereign_ai.errors import ConfigError

__all__ = ["partition_natural"]


def partition_natural(groups: npt.ArrayLike) -> dict[str, Int64Array]:
    """Group row indices by the value of each row's group.

    Parameters
    ----------
    groups
        Shape ``(num_examples,)``; each row's group. Values are compared as text, so ``3`` and
        ``"3"`` are the same group.

    Returns
    -------
    dict of str to numpy.ndarray
        Group name to the sorted int64 indices of its rows, in sorted order of group name;
        every row is in exactly one group.

    Raises
    ------
    ConfigError
        If ``groups`` is not a non-empty 1-D array.

    Examples
    --------
    >>> partition_natural(["b", "a", "b"])
    {'a': array([1]), 'b': array([0, 2])}
    """
    array = np.asarray(groups)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(
            "The 'groups' parameter of partition_natural must be a non-empty 1-D array; "
            f"got shape {array.shape} instead."
        )
    names, inverse, counts = np.unique(
        array.astype(np.str_), return_inverse=True, return_counts=True
    )
    # A stable sort by group keeps each group's rows in ascending order.
    order = np.argsort(inverse, kind="stable").astype(np.int64)  # (num_examples,)
    shares = np.split(order, np.cumsum(counts)[:-1])
    return {str(name): share for name, share in zip(names, shares, strict=True)}
