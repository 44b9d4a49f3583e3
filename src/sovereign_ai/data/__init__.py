"""Datasets for federated learning: bundled ones, a data owner's own files, and partitioners.

A :class:`Dataset` holds float32 features and int64 labels with their names. Load one with
:func:`load_builtin` (scikit-learn's bundled datasets, no download) or :func:`load_file`
(CSV with any common delimiter, Parquet, NPZ, with errors that name the file, column and row);
check a site's file against a model's shape with :func:`check_file`, which reports every problem
at once; split a dataset among simulated nodes with :func:`partition` (IID, Dirichlet label skew,
McMahan shards, or by a group column); check the split with :func:`summarize_partition`.

Depends on numpy, scikit-learn, pyarrow and :mod:`sovereign_ai.core` only.
"""

from sovereign_ai.data.builtin import builtin_names, load_builtin, published_scaling
from sovereign_ai.data.dataset import Dataset, Int64Array, train_test_split
from sovereign_ai.data.dirichlet import partition_dirichlet
from sovereign_ai.data.file_check import FileCheck, FileProblem, check_file
from sovereign_ai.data.files import FileFormat, file_format, load_csv, load_file, load_parquet
from sovereign_ai.data.iid import partition_iid
from sovereign_ai.data.natural import partition_natural
from sovereign_ai.data.npz import load_npz
from sovereign_ai.data.partition import PartitionScheme, node_names, partition
from sovereign_ai.data.scaling import Standardizer
from sovereign_ai.data.shards import partition_shards
from sovereign_ai.data.summary import NodeSummary, PartitionSummary, summarize_partition

__all__ = [
    "Dataset",
    "FileCheck",
    "FileFormat",
    "FileProblem",
    "Int64Array",
    "NodeSummary",
    "PartitionScheme",
    "PartitionSummary",
    "Standardizer",
    "builtin_names",
    "check_file",
    "file_format",
    "load_builtin",
    "load_csv",
    "load_file",
    "load_npz",
    "load_parquet",
    "node_names",
    "partition",
    "partition_dirichlet",
    "partition_iid",
    "partition_natural",
    "partition_shards",
    "published_scaling",
    "summarize_partition",
    "train_test_split",
]
