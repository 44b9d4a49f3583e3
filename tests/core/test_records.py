"""Results must answer exactly the task they claim to answer."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import StaleMessageError

TASK = Task("job", 3, Stage.TRAIN, "node-a", Parameters({}))


def test_matching_result_is_accepted() -> None:
    Result("job", 3, Stage.TRAIN, "node-a", 10, metrics={"loss": 0.5}).check_answers(TASK)


MISBOUND = "does not answer the task"


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (Result("other", 3, Stage.TRAIN, "node-a", 10), MISBOUND),
        (Result("job", 2, Stage.TRAIN, "node-a", 10), MISBOUND),
        (Result("job", 3, Stage.EVALUATE, "node-a", 10), MISBOUND),
        (Result("job", 3, Stage.TRAIN, "node-b", 10), MISBOUND),
        (Result("job", 3, Stage.TRAIN, "node-a", -1), "reports -1 examples"),
        (
            Result("job", 3, Stage.TRAIN, "node-a", 1, metrics={"loss": float("nan")}),
            "metrics must be finite",
        ),
        (
            Result("job", 3, Stage.TRAIN, "node-a", 1, Parameters({"w": np.array([1.0, np.inf])})),
            "non-finite values in tensor 'w'",
        ),
    ],
)
def test_mismatched_or_invalid_result_is_refused(result: Result, reason: str) -> None:
    with pytest.raises(StaleMessageError, match=reason):
        result.check_answers(TASK)
