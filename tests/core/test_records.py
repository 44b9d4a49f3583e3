"""Results must answer exactly the task they claim to answer."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import StaleMessageError

TASK = Task("job", 3, Stage.TRAIN, "node-a", Parameters({}))


def test_matching_result_is_accepted() -> None:
    Result("job", 3, Stage.TRAIN, "node-a", 10, metrics={"loss": 0.5}).check_answers(TASK)


@pytest.mark.parametrize(
    "result",
    [
        Result("other", 3, Stage.TRAIN, "node-a", 10),
        Result("job", 2, Stage.TRAIN, "node-a", 10),
        Result("job", 3, Stage.EVALUATE, "node-a", 10),
        Result("job", 3, Stage.TRAIN, "node-b", 10),
        Result("job", 3, Stage.TRAIN, "node-a", -1),
        Result("job", 3, Stage.TRAIN, "node-a", 1, metrics={"loss": float("nan")}),
        Result("job", 3, Stage.TRAIN, "node-a", 1, Parameters({"w": np.array([1.0, np.inf])})),
    ],
)
def test_mismatched_or_invalid_result_is_refused(result: Result) -> None:
    with pytest.raises(StaleMessageError):
        result.check_answers(TASK)
