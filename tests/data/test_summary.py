"""Tests for :mod:`sovereign_ai.data.summary`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sovereign_ai.data import (
    Dataset,
    NodeSummary,
    PartitionSummary,
    load_csv,
    partition,
    partition_natural,
    summarize_partition,
)
from sovereign_ai.errors import ConfigError

SAMPLE = Path(__file__).parents[2] / "examples" / "data" / "hospital_sample.csv"


def test_counts_rows_and_labels_per_node(small_dataset: Dataset) -> None:
    summary = summarize_partition(small_dataset, [np.array([0, 3, 1]), np.array([2])])
    assert [node.name for node in summary.nodes] == ["node-0", "node-1"]
    assert summary.nodes[0].label_counts == (2, 1, 0)
    assert summary.nodes[1].label_counts == (0, 0, 1)
    assert [node.num_examples for node in summary.nodes] == [3, 1]
    assert summary.num_examples == 4
    assert summary.class_names == ("x", "y", "z")


def test_table_is_aligned_plain_text(small_dataset: Dataset) -> None:
    summary = summarize_partition(
        small_dataset, [[0, 1, 2, 3], [4, 5]], node_names=["hospital-a", "b"]
    )
    assert summary.to_table() == (
        "Partition of 'small': 2 node(s), 6 rows, 3 classes\n"
        "node        rows  x  y  z\n"
        "hospital-a     4  2  1  1\n"
        "b              2  0  1  1\n"
        "-------------------------\n"
        "total          6  2  2  2"
    )


def test_dict_is_json_ready(small_dataset: Dataset) -> None:
    summary = summarize_partition(small_dataset, {"h1": [0, 1], "h2": [2]})
    expected = {
        "dataset": "small",
        "class_names": ["x", "y", "z"],
        "num_examples": 3,
        "nodes": [
            {"name": "h1", "num_examples": 2, "label_counts": {"x": 1, "y": 1, "z": 0}},
            {"name": "h2", "num_examples": 1, "label_counts": {"x": 0, "y": 0, "z": 1}},
        ],
    }
    assert summary.to_dict() == expected
    assert json.loads(json.dumps(summary.to_dict())) == expected


def test_summarises_the_registry_output_of_the_sample_file() -> None:
    dataset = load_csv(SAMPLE, label="diagnosis", group="hospital")
    assert dataset.groups is not None
    summary = summarize_partition(dataset, partition_natural(dataset.groups))
    assert [node.name for node in summary.nodes] == ["central", "north", "south"]
    shares = partition(dataset, scheme="dirichlet", num_nodes=4, seed=0, alpha=0.3)
    assert [n.num_examples for n in summarize_partition(dataset, shares).nodes] == [
        len(rows) for rows in shares
    ]
    assert summary.num_examples == dataset.num_examples == 200
    assert sum(node.label_counts[1] for node in summary.nodes) == int(dataset.labels.sum())


def test_an_empty_share_is_counted_as_zero(small_dataset: Dataset) -> None:
    summary = summarize_partition(small_dataset, [np.array([], dtype=np.int64), [0]])
    assert summary.nodes[0].label_counts == (0, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"partitions": []}, "'partitions' parameter of summarize_partition must not be empty"),
        ({"partitions": {}}, "must not be empty"),
        ({"partitions": [[0, 6]]}, r"node 'node-0' has indices from 0 to 6"),
        ({"partitions": [[-1]]}, "has indices from -1"),
        ({"partitions": [[[0, 1]]]}, "1-D integer index arrays"),
        ({"partitions": [[0.5]]}, "1-D integer index arrays"),
        ({"partitions": [[0], [1]], "node_names": ["a"]}, "must name each of the 2 partitions"),
        ({"partitions": {"a": [0]}, "node_names": ["a"]}, "must be None when 'partitions' is a"),
        ({"partitions": [[0], [1]], "node_names": ["a", "a"]}, "must have unique names"),
    ],
)
def test_bad_partitions_are_config_errors(
    small_dataset: Dataset, kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        summarize_partition(small_dataset, **kwargs)


def test_summaries_validate_themselves() -> None:
    with pytest.raises(ConfigError, match="'name' parameter of NodeSummary"):
        NodeSummary(name="", label_counts=(1,))
    with pytest.raises(ConfigError, match="counts >= 0"):
        NodeSummary(name="a", label_counts=(1, -1))
    with pytest.raises(ConfigError, match="node 'a' has 1 counts"):
        PartitionSummary(
            dataset_name="d",
            class_names=("x", "y"),
            nodes=(NodeSummary(name="a", label_counts=(1,)),),
        )
    with pytest.raises(ConfigError, match="must not be empty"):
        PartitionSummary(dataset_name="d", class_names=("x",), nodes=())
