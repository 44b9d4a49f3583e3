"""What each node got: rows and label counts per node, as a table for people or a dict for JSON.

Printed before a simulation starts, so that a skewed or empty split is seen before it costs a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.data.dataset import Dataset
from sovereign_ai.data.partition import node_names as default_node_names
from sovereign_ai.errors import ConfigError

__all__ = ["NodeSummary", "PartitionSummary", "summarize_partition"]


@dataclass(frozen=True)
class NodeSummary:
    """One node's share of a dataset.

    Parameters
    ----------
    name
        The node's name.
    label_counts
        Rows per class, in the order of the dataset's ``class_names``.
    """

    name: str
    label_counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(
                f"The 'name' parameter of NodeSummary must be a non-empty string; "
                f"got {self.name!r} instead."
            )
        counts = tuple(int(c) for c in self.label_counts)
        if any(c < 0 for c in counts):
            raise ConfigError(
                f"The 'label_counts' parameter of NodeSummary must hold counts >= 0; "
                f"got {counts!r} instead."
            )
        object.__setattr__(self, "label_counts", counts)

    @property
    def num_examples(self) -> int:
        """The node's number of rows."""
        return sum(self.label_counts)


@dataclass(frozen=True)
class PartitionSummary:
    """Rows and label counts of every node in a partition of one dataset.

    Parameters
    ----------
    dataset_name
        The partitioned dataset's name.
    class_names
        The dataset's class names; every node's ``label_counts`` follows this order.
    nodes
        One summary per node, with unique names; at least one.
    """

    dataset_name: str
    class_names: tuple[str, ...]
    nodes: tuple[NodeSummary, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            raise ConfigError("The 'nodes' parameter of PartitionSummary must not be empty.")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError(
                f"The 'nodes' parameter of PartitionSummary must have unique names; "
                f"got {names!r} instead."
            )
        for node in self.nodes:
            if len(node.label_counts) != len(self.class_names):
                raise ConfigError(
                    f"The 'nodes' parameter of PartitionSummary must count each of the "
                    f"{len(self.class_names)} classes; node {node.name!r} has "
                    f"{len(node.label_counts)} counts instead."
                )

    @property
    def num_examples(self) -> int:
        """Rows over all nodes (a row given to two nodes counts twice)."""
        return sum(node.num_examples for node in self.nodes)

    def to_table(self) -> str:
        """Render a plain-text table: one line per node, then a total line.

        Returns
        -------
        str
            Lines joined by ``"\\n"``, no trailing newline; numbers right-aligned.
        """
        header = ["node", "rows", *self.class_names]
        body = [
            [node.name, str(node.num_examples), *map(str, node.label_counts)] for node in self.nodes
        ]
        totals = [
            sum(node.label_counts[k] for node in self.nodes) for k in range(len(self.class_names))
        ]
        body.append(["total", str(self.num_examples), *map(str, totals)])
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
            return "  ".join([first, *rest]).rstrip()

        title = (
            f"Partition of {self.dataset_name!r}: {len(self.nodes)} node(s), "
            f"{self.num_examples} rows, {len(self.class_names)} classes"
        )
        rule = "-" * len(line(header))
        return "\n".join([title, line(header), *map(line, body[:-1]), rule, line(body[-1])])

    def to_dict(self) -> dict[str, Any]:
        """Return plain, JSON-serialisable data.

        Returns
        -------
        dict
            ``{"dataset": str, "class_names": [str], "num_examples": int, "nodes": [{"name":
            str, "num_examples": int, "label_counts": {class name: int}}]}``.
        """
        return {
            "dataset": self.dataset_name,
            "class_names": list(self.class_names),
            "num_examples": self.num_examples,
            "nodes": [
                {
                    "name": node.name,
                    "num_examples": node.num_examples,
                    "label_counts": dict(zip(self.class_names, node.label_counts, strict=True)),
                }
                for node in self.nodes
            ],
        }


def summarize_partition(
    dataset: Dataset,
    partitions: Sequence[npt.ArrayLike] | Mapping[str, npt.ArrayLike],
    *,
    node_names: Sequence[str] | None = None,
) -> PartitionSummary:
    """Count each node's rows and labels.

    Parameters
    ----------
    dataset
        The dataset the partitions index into.
    partitions
        Row indices per node: a list as :func:`partition` returns (nodes named by
        ``node_names``), or a mapping of node name to indices as :func:`partition_natural`
        returns. Positional, unlike the house rule, because it is the call's second subject.
    node_names
        Names for a list of partitions, one each; default ``node-0``, ``node-1``, … Must be None
        when ``partitions`` is a mapping, which names its nodes itself.

    Returns
    -------
    PartitionSummary
        Nodes in the order given.

    Raises
    ------
    ConfigError
        If there are no partitions, an index array is not 1-D integers in range, or the names do
        not match the partitions.
    """
    owner = "summarize_partition"
    if isinstance(partitions, Mapping):
        if node_names is not None:
            raise ConfigError(
                f"The 'node_names' parameter of {owner} must be None when 'partitions' is a "
                f"mapping (its keys name the nodes); got {node_names!r} instead."
            )
        names = [str(name) for name in partitions]
        shares = list(partitions.values())
    else:
        shares = list(partitions)
        if not shares:
            raise ConfigError(f"The 'partitions' parameter of {owner} must not be empty.")
        names = list(default_node_names(len(shares)) if node_names is None else node_names)
        if len(names) != len(shares):
            raise ConfigError(
                f"The 'node_names' parameter of {owner} must name each of the {len(shares)} "
                f"partitions; got {len(names)} name(s) instead."
            )
    if not shares:
        raise ConfigError(f"The 'partitions' parameter of {owner} must not be empty.")
    nodes = []
    for name, share in zip(names, shares, strict=True):
        rows = np.asarray(share)
        if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise ConfigError(
                f"The 'partitions' parameter of {owner} must hold 1-D integer index arrays; "
                f"node {name!r} has shape {rows.shape} and dtype {rows.dtype} instead."
            )
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= dataset.num_examples):
            raise ConfigError(
                f"The 'partitions' parameter of {owner} must index rows in "
                f"[0, {dataset.num_examples}); node {name!r} has indices from {int(rows.min())} "
                f"to {int(rows.max())} instead."
            )
        counts = np.bincount(dataset.labels[rows.astype(np.int64)], minlength=dataset.num_classes)
        nodes.append(NodeSummary(name=name, label_counts=tuple(int(c) for c in counts)))
    return PartitionSummary(
        dataset_name=dataset.name, class_names=dataset.class_names, nodes=tuple(nodes)
    )
