"""The Krum score, shared by Krum, Multi-Krum and Bulyan.

P. Blanchard, E. M. El Mhamdi, R. Guerraoui and J. Stainer, "Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS 2017, Section 4: the score of vector ``i`` is the sum
of its squared distances to its ``n - f - 2`` nearest other vectors.
"""

from __future__ import annotations

import numpy as np

from sovereign_ai.strategies._base import Matrix, Vector

__all__ = ["krum_scores", "pairwise_squared_distances"]


def pairwise_squared_distances(updates: Matrix) -> Matrix:
    """Squared Euclidean distances between the rows of ``updates`` (``(n, d)``) → ``(n, n)``.

    Computed row by row from differences (not via ``|a|² + |b|² - 2ab``), so the result is exactly
    symmetric, never negative, and memory stays ``O(n d)``.
    """
    count = updates.shape[0]
    distances = np.empty((count, count), dtype=np.float64)
    for row in range(count):
        difference = updates - updates[row]  # (n, d)
        distances[row] = np.einsum("ij,ij->i", difference, difference)  # (n,)
    return distances


def krum_scores(distances: Matrix, *, num_closest: int) -> Vector:
    """Each row's sum of its ``num_closest`` smallest distances to *other* rows → ``(n,)``.

    ``num_closest`` is clipped to ``n - 1``; with a single row the score is 0.
    """
    count = distances.shape[0]
    closest = max(0, min(num_closest, count - 1))
    scores = np.empty(count, dtype=np.float64)
    for row in range(count):
        others = np.delete(distances[row], row)  # (n - 1,)
        scores[row] = np.sort(others)[:closest].sum()
    return scores
