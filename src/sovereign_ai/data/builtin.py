"""Small classification datasets bundled with scikit-learn, loaded from disk by name.

Only the datasets scikit-learn ships inside its own package are offered, so loading one never
touches the network and works air-gapped. They are meant for demos, tests and simulations.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from sovereign_ai.data.dataset import Dataset
from sovereign_ai.errors import UnknownNameError

__all__ = ["builtin_names", "load_builtin"]

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
    loader_name = _LOADERS.get(name) if isinstance(name, str) else None
    if loader_name is None:
        raise UnknownNameError("dataset", str(name), builtin_names())
    bunch = getattr(importlib.import_module("sklearn.datasets"), loader_name)()
    return Dataset(
        name=name,
        features=np.asarray(bunch.data, dtype=np.float32),  # (n, d)
        labels=np.asarray(bunch.target, dtype=np.int64),  # (n,)
        feature_names=tuple(str(f) for f in bunch.feature_names),
        class_names=tuple(str(c) for c in bunch.target_names),
    )
