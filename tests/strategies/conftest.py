"""Builders for the strategy tests: a one-tensor model and train results from plain vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from sovereign_ai.core import Parameters, Result, Stage

ParamsOf = Callable[[npt.ArrayLike], Parameters]
ResultsOf = Callable[..., list[Result]]


def params_of(vector: npt.ArrayLike) -> Parameters:
    """Parameters holding ``vector`` as the single tensor ``"w"``."""
    return Parameters({"w": np.asarray(vector, dtype=np.float64)})


def results_of(
    updates: Sequence[npt.ArrayLike],
    examples: Sequence[int] | None = None,
    *,
    round_number: int = 1,
    node_ids: Sequence[str] | None = None,
) -> list[Result]:
    """Train results ``node-0``, ``node-1``, ... whose ``"w"`` updates are ``updates``."""
    counts = list(examples) if examples is not None else [10] * len(updates)
    ids = list(node_ids) if node_ids is not None else [f"node-{i}" for i in range(len(updates))]
    return [
        Result(
            job_id="job",
            round_number=round_number,
            stage=Stage.TRAIN,
            node_id=node_id,
            num_examples=count,
            parameters=params_of(update),
        )
        for node_id, count, update in zip(ids, counts, updates, strict=True)
    ]


# session-scoped: hypothesis refuses function-scoped fixtures in @given tests
@pytest.fixture(scope="session")
def params() -> ParamsOf:
    """Build one-tensor ``Parameters`` from a vector."""
    return params_of


@pytest.fixture(scope="session")
def results() -> ResultsOf:
    """Build train results from update vectors (and optional example counts)."""
    return results_of
