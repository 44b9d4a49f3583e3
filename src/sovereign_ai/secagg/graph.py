"""SecAgg+'s communication graph: who shares secrets with whom, and the threshold ``t``.

Bonawitz et al. (CCS 2017) have every node share its secrets with every other node, which costs
``O(n)`` key agreements, shares and pairwise masks per node. Bell et al. ("Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020, §3-4) replace the complete graph by a
sparse one of degree ``k = O(log n)``: a Harary graph ``H(n, k)`` (each node joined to the ``k/2``
nearest on either side of a ring) whose positions are a uniformly random permutation of the
cohort. The protocol stays correct and private as long as, in every node's *neighbourhood* (its
``k`` neighbours and itself, the ``k + 1`` holders of its secret shares):

- at least ``t`` holders survive to the unmask stage (otherwise the round fails closed), and
- fewer than ``t`` holders are corrupted, i.e. collude with the coordinator (otherwise the
  coordinator could rebuild that node's secrets).

How ``k`` and ``t`` are chosen (:func:`choose_neighbourhood`). Bell et al. prove that both hold with
overwhelming probability once ``k`` is a large enough multiple of ``log n`` (their Theorem 3.6,
via Chernoff bounds). Here the same two events are bounded *exactly*, with binomial tails, for the
given ``n``, expected dropout rate ``δ`` and tolerated corruption rate ``γ`` (each holder drops
out, or is corrupted, independently):

- security: ``n · P[Binomial(k, γ) >= t] <= 2**-σ`` (``σ = 40`` bits by default);
- correctness: ``n · P[Binomial(k, 1 - δ) < t] <= 2**-η`` (``η = 20`` bits by default; the
  node's own share is not counted, since a node that dropped cannot reveal it);
- and ``t > (k + 1) / 2``: a majority of holders, so that a coordinator which tells different
  holders different stories about who dropped out still cannot collect ``t`` shares of *both*
  secrets of one node from honest holders (each honest holder reveals only one of them).

The smallest even ``k`` for which some ``t`` meets all three is used, with the smallest such ``t``
(the most dropouts tolerated). When no ``k < n - 1`` does, the graph is complete (``k = n - 1``,
Bonawitz et al.'s protocol) and ``t`` is the smallest majority above ``γ n`` corrupted holders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sovereign_ai.errors import ConfigError

__all__ = ["Neighbourhood", "choose_neighbourhood", "communication_graph"]

_DEFAULT_SECURITY_BITS = 40
_DEFAULT_CORRECTNESS_BITS = 20


@dataclass(frozen=True)
class Neighbourhood:
    """The degree and threshold of a round's communication graph.

    Parameters
    ----------
    nodes
        ``n``: the cohort size the graph was chosen for.
    degree
        ``k``: neighbours per node (``n - 1`` for the complete graph).
    threshold
        ``t``: shares needed to rebuild a node's secret, out of its ``k + 1`` holders.
    """

    nodes: int
    degree: int
    threshold: int

    @property
    def holders(self) -> int:
        """``k + 1``: a node's neighbours and the node itself each hold one share."""
        return self.degree + 1

    @property
    def tolerated_dropouts(self) -> int:
        """Holders of one node's shares that may drop out with the round still completing."""
        return self.holders - self.threshold

    @property
    def is_complete(self) -> bool:
        """Whether every node neighbours every other (Bonawitz et al.'s protocol)."""
        return self.degree == self.nodes - 1


def _check_rate(value: float, name: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
        raise ConfigError(
            f"The {name!r} parameter of choose_neighbourhood must be a number in [0, 1); "
            f"got {value!r} instead."
        )


@lru_cache(maxsize=4096)
def _binomial_tail_at_least(trials: int, probability: float, at_least: int) -> float:
    """``P[Binomial(trials, probability) >= at_least]``, summed exactly in floating point."""
    if at_least <= 0:
        return 1.0
    if at_least > trials:
        return 0.0
    return math.fsum(
        math.comb(trials, i) * probability**i * (1.0 - probability) ** (trials - i)
        for i in range(at_least, trials + 1)
    )


def choose_neighbourhood(
    nodes: int,
    *,
    dropout_rate: float = 0.1,
    corruption_rate: float = 0.1,
    security_bits: int = _DEFAULT_SECURITY_BITS,
    correctness_bits: int = _DEFAULT_CORRECTNESS_BITS,
) -> Neighbourhood:
    """The smallest degree ``k`` and its threshold ``t`` that meet the module's three conditions.

    Parameters
    ----------
    nodes
        ``n`` >= 2: nodes in the cohort that advertise keys.
    dropout_rate
        ``δ``: expected share of nodes that drop out during the round.
    corruption_rate
        ``γ``: share of nodes that may collude with the coordinator.
    security_bits, correctness_bits
        ``σ`` and ``η`` of the module docstring.

    Returns
    -------
    Neighbourhood
        ``k`` even and below ``n - 1``, or ``n - 1`` (complete graph).

    Raises
    ------
    ConfigError
        If an argument is out of range, or even the complete graph cannot meet the conditions
        (too many corrupted nodes for a majority threshold).

    Examples
    --------
    >>> choose_neighbourhood(3)
    Neighbourhood(nodes=3, degree=2, threshold=2)
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise ConfigError(
            f"The 'nodes' parameter of choose_neighbourhood must be an integer >= 2; "
            f"got {nodes!r} instead."
        )
    _check_rate(dropout_rate, "dropout_rate")
    _check_rate(corruption_rate, "corruption_rate")
    for name, bits in (("security_bits", security_bits), ("correctness_bits", correctness_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 128:
            raise ConfigError(
                f"The {name!r} parameter of choose_neighbourhood must be an integer in [1, 128]; "
                f"got {bits!r} instead."
            )
    security_limit = 2.0**-security_bits / nodes
    correctness_limit = 2.0**-correctness_bits / nodes
    for degree in range(2, nodes - 1, 2):
        majority = (degree + 1) // 2 + 1
        threshold = next(
            (
                t
                for t in range(majority, degree + 2)
                if _binomial_tail_at_least(degree, corruption_rate, t) <= security_limit
            ),
            None,
        )
        if threshold is None:
            continue
        # P[survivors < t] as the tail of the dropouts, P[dropouts > k - t]: the complement of a
        # tail near 1 would lose all precision.
        failure = _binomial_tail_at_least(degree, dropout_rate, degree - threshold + 1)
        if failure <= correctness_limit:
            return Neighbourhood(nodes=nodes, degree=degree, threshold=threshold)
    corrupted = math.floor(corruption_rate * nodes)
    threshold = max(nodes // 2 + 1, corrupted + 1)
    if threshold > nodes:
        raise ConfigError(
            f"With {nodes} nodes and up to {corrupted} of them colluding with the coordinator, "
            "no threshold protects the nodes' secrets; lower 'corruption_rate' or add nodes."
        )
    return Neighbourhood(nodes=nodes, degree=nodes - 1, threshold=threshold)


def communication_graph(
    node_ids: Sequence[str], *, degree: int, rng: np.random.Generator
) -> dict[str, tuple[str, ...]]:
    """A Harary graph ``H(n, degree)`` over a random permutation of ``node_ids``.

    Parameters
    ----------
    node_ids
        The distinct nodes that advertised keys.
    degree
        ``k``: even and below ``n - 1``, or ``n - 1`` for the complete graph.
    rng
        Chooses the permutation (the coordinator's round generator: reproducible on resume).

    Returns
    -------
    dict
        Node id to its neighbours, sorted; symmetric (``a`` lists ``b`` iff ``b`` lists ``a``).

    Raises
    ------
    ConfigError
        If ids repeat or ``degree`` is not a valid degree for ``n`` nodes.
    """
    nodes = sorted(node_ids)
    count = len(nodes)
    if len(set(nodes)) != count:
        raise ConfigError("The 'node_ids' parameter of communication_graph must not repeat ids.")
    is_complete = degree == count - 1
    if not is_complete and not (2 <= degree < count - 1 and degree % 2 == 0):
        raise ConfigError(
            f"The 'degree' parameter of communication_graph must be even and in [2, {count - 2}],"
            f" or {count - 1} for the complete graph; got {degree!r} instead."
        )
    if is_complete:
        return {node: tuple(other for other in nodes if other != node) for node in nodes}
    ring = [nodes[int(i)] for i in rng.permutation(count)]  # (n,) positions on the ring
    half = degree // 2
    return {
        ring[p]: tuple(
            sorted(ring[(p + step) % count] for step in range(-half, half + 1) if step != 0)
        )
        for p in range(count)
    }
