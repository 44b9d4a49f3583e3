"""Small classification datasets bundled with scikit-learn, loaded from disk by name.

Only the datasets scikit-learn ships inside its own package are offered, so loading one never
touches the network and works air-gapped. They are meant for demos, tests and simulations.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from sovereign_ai.data.dataset import Dataset
from sovereign_ai.errors import DataError, UnknownNameError

__all__ = ["builtin_names", "load_builtin", "published_scaling"]

# name -> loader in sklearn.datasets; each reads a file inside the installed sklearn package.
# Named, not imported: importing scikit-learn takes about a second, which every
# `import sovereign_ai.data` (and so every CLI start) would otherwise pay.
_LOADERS: Mapping[str, str] = MappingProxyType(
    {
        "breast_cancer": "load_breast_cancer",  # 569 x 30, 2 classes (Wisconsin diagnostic)
        "digits": "load_digits",  # 1797 x 64, 10 classes (8x8 handwritten digits)
        "iris": "load_iris",  # 150 x 4, 3 classes (Fisher 1936)
        "wine": "load_wine",  # 178 x 13, 3 classes (UCI wine recognition)
    }
)


def builtin_names() -> tuple[str, ...]:
    """Return the names :func:`load_builtin` accepts, sorted.

    Returns
    -------
    tuple of str
        ``("breast_cancer", "digits", "iris", "wine")``.
    """
    return tuple(sorted(_LOADERS))


def _sklearn_bunch(name: str) -> Any:
    """scikit-learn's bunch of a bundled dataset (rows, names and description)."""
    loader_name = _LOADERS.get(name) if isinstance(name, str) else None
    if loader_name is None:
        raise UnknownNameError("dataset", str(name), builtin_names())
    return getattr(importlib.import_module("sklearn.datasets"), loader_name)()


def load_builtin(name: str) -> Dataset:
    """Load a dataset bundled with scikit-learn by name.

    Parameters
    ----------
    name
        One of :func:`builtin_names`.

    Returns
    -------
    Dataset
        Named ``name``; features as float32, labels as scikit-learn numbers them, class names
        from scikit-learn's ``target_names``, no groups.

    Raises
    ------
    UnknownNameError
        If ``name`` is not a bundled dataset.

    Examples
    --------
    >>> load_builtin("iris").num_examples
    150
    """
    bunch = _sklearn_bunch(name)
    return Dataset(
        name=name,
        features=np.asarray(bunch.data, dtype=np.float32),  # (n, d)
        labels=np.asarray(bunch.target, dtype=np.int64),  # (n,)
        feature_names=tuple(str(f) for f in bunch.feature_names),
        class_names=tuple(str(c) for c in bunch.target_names),
    )


_DIGITS_PIXELS = (0.0, 16.0)  # "each element is an integer in the range 0..16" (its description)
_RANGE_ROW = re.compile(r"^[^:\n]+:\s+(-?[\d.]+)\s+(-?[\d.]+)", re.MULTILINE)


def published_scaling(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """An input scaling from the ranges a bundled dataset's description publishes.

    The centre ``(min + max) / 2`` and a spread ``(max - min) / 4`` of every feature, read from
    the dataset's data dictionary (scikit-learn's description of it), not computed from its rows:
    what a job with differential privacy gives as ``[model] input_mean`` and ``input_std``, so
    that no statistics of the nodes' rows leave them (docs/differential-privacy.md).

    Parameters
    ----------
    name
        One of :func:`builtin_names`.

    Returns
    -------
    tuple
        ``(means, spreads)``, one number per feature each.

    Raises
    ------
    UnknownNameError
        If ``name`` is not a bundled dataset.
    DataError
        If the description's table of ranges cannot be read.
    """
    bunch = _sklearn_bunch(name)
    width = len(bunch.feature_names)
    if name == "digits":
        ranges = [_DIGITS_PIXELS] * width
    else:
        text = str(bunch.DESCR)
        table = text[text.index(":Summary Statistics:") : text.index(":Missing Attribute Values:")]
        ranges = [(float(lo), float(hi)) for lo, hi in _RANGE_ROW.findall(table)]
    if len(ranges) != width:  # a newer scikit-learn reworded its description
        raise DataError(
            f"Read {len(ranges)} published ranges for the {width} features of {name!r} from "
            "scikit-learn's description; give the job's input_mean and input_std yourself."
        )
    means = tuple((lo + hi) / 2 for lo, hi in ranges)
    spreads = tuple((hi - lo) / 4 for lo, hi in ranges)
    return means, spreads
