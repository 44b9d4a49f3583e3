"""Dirichlet label-skew partitioning (non-IID), after Hsu et al. (2019).

Hsu, Qi and Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification", arXiv:1909.06335, 2019, model each node's label distribution as a draw from a
Dirichlet distribution with concentration ``alpha``: as ``alpha -> inf`` every node sees the
global label mix (IID); as ``alpha -> 0`` each node sees one class.

To give every row to exactly one node we draw per *class* rather than per node, as Yurochkin et
al. (ICML 2019, "Bayesian Nonparametric Federated Learning of Neural Networks") and Flower's
``DirichletPartitioner`` do: for each class ``k`` draw ``p_k ~ Dir(alpha * 1_N)`` over the ``N``
nodes and cut that class's shuffled rows at the cumulative shares ``p_k``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sovereign_ai.data._validation import (
    Int64Array,
    check_int,
    check_labels,
    check_num_nodes,
    check_positive_float,
    check_seed,
)
from sovereign_ai.errors import ConfigError

__all__ = ["partition_dirichlet"]


def _draw_cuts(
    class_sizes: Int64Array, *, num_nodes: int, alpha: float, rng: np.random.Generator
) -> Int64Array:
    """Draw each class's Dirichlet shares over the nodes; return where to cut its rows."""
    concentration = np.full(num_nodes, alpha)  # (num_nodes,)
    shares = rng.dirichlet(concentration, size=class_sizes.size)  # (classes, nodes), rows sum to 1
    cuts = np.cumsum(shares, axis=1)[:, :-1] * class_sizes[:, None]  # (classes, nodes - 1)
    return np.minimum(cuts.astype(np.int64), class_sizes[:, None])


def partition_dirichlet(
    labels: npt.ArrayLike,
    *,
    num_nodes: int,
    alpha: float,
    seed: int,
    min_examples: int = 1,
    max_attempts: int = 1000,
) -> list[Int64Array]:
    """Split rows so that each node's label mix is skewed by a Dirichlet(``alpha``) draw.

    Parameters
    ----------
    labels
        Shape ``(num_examples,)``, integer class indices.
    num_nodes
        Number of nodes, in ``[1, num_examples]``.
    alpha
        Concentration, > 0. Small values (0.05–0.5) give strongly skewed nodes, large values
        (100+) nearly IID ones. Node sizes vary too.
    seed
        Integer in ``[0, 2**32)``; the same seed gives the same partition.
    min_examples
        Every node must get at least this many rows (>= 1). A draw that leaves a node short is
        discarded and drawn again.
    max_attempts
        How many draws to try before giving up (>= 1).

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 array of row indices per node; every row is in exactly one.

    Raises
    ------
    ConfigError
        If an argument is invalid, ``num_nodes * min_examples`` exceeds the rows, or no draw in
        ``max_attempts`` gave every node ``min_examples`` rows (raise ``alpha``, or lower
        ``num_nodes`` or ``min_examples``).

    Notes
    -----
    Redrawing until every node has ``min_examples`` rows conditions the distribution on that
    event, as Flower's ``DirichletPartitioner`` does; for small ``alpha`` and many nodes per class
    the event can be rare and the call fails rather than loop for long.
    """
    owner = "partition_dirichlet"
    label_array = check_labels(labels, owner=owner)
    num_examples = label_array.size
    num_nodes = check_num_nodes(num_nodes, owner=owner, num_examples=num_examples)
    alpha = check_positive_float(alpha, name="alpha", owner=owner)
    rng = np.random.default_rng(check_seed(seed, owner=owner))
    min_examples = check_int(min_examples, name="min_examples", owner=owner, minimum=1)
    max_attempts = check_int(max_attempts, name="max_attempts", owner=owner, minimum=1)
    if num_nodes * min_examples > num_examples:
        raise ConfigError(
            f"The 'min_examples' parameter of {owner} must be at most {num_examples} rows / "
            f"{num_nodes} nodes = {num_examples // num_nodes}; got {min_examples!r} instead."
        )

    rows_by_class = [
        np.flatnonzero(label_array == k).astype(np.int64) for k in np.unique(label_array)
    ]
    class_sizes = np.array([rows.size for rows in rows_by_class], dtype=np.int64)  # (classes,)
    smallest = 0
    for _ in range(max_attempts):
        # Node sizes follow from the cuts alone, so a short draw is refused before any shuffling.
        cuts = _draw_cuts(class_sizes, num_nodes=num_nodes, alpha=alpha, rng=rng)
        bounds = np.column_stack([np.zeros_like(class_sizes), cuts, class_sizes])  # (K, N + 1)
        node_sizes = np.diff(bounds, axis=1).sum(axis=0)  # (num_nodes,)
        if int(node_sizes.min()) >= min_examples:
            pieces: list[list[Int64Array]] = [[] for _ in range(num_nodes)]
            for rows, class_cuts in zip(rows_by_class, cuts, strict=True):
                for node, piece in enumerate(np.split(rng.permutation(rows), class_cuts)):
                    pieces[node].append(piece)
            return [np.sort(np.concatenate(node)) for node in pieces]
        smallest = max(smallest, int(node_sizes.min()))
    raise ConfigError(
        f"The 'alpha' parameter of {owner} is too small for {num_nodes} nodes of at least "
        f"{min_examples} row(s) each: in {max_attempts} draws the smallest node got at most "
        f"{smallest}; got {alpha!r} instead. Raise 'alpha', or lower 'num_nodes' or "
        "'min_examples'."
    )
