"""Small, seeded inputs for the strategy conformance checks: a model, node names and results."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sovereign_ai.core import NodeInstruction, Parameters, Result, Stage

__all__ = [
    "JOB_ID",
    "copy_parameters",
    "evaluate_results",
    "global_parameters",
    "instruction_summary",
    "node_names",
    "train_results",
    "with_same_weighted_sum",
]

JOB_ID = "conformance"

_SHAPES = {"layer.weight": (3, 2), "layer.bias": (2,)}  # two tensors, 8 scalars


def global_parameters(*, seed: int) -> Parameters:
    """A small two-tensor model with values drawn from ``N(0, 1)``."""
    rng = np.random.default_rng(seed)
    return Parameters({name: rng.normal(size=shape) for name, shape in _SHAPES.items()})


def node_names(count: int) -> list[str]:
    """``count`` node ids that sort in numeric order: ``node-000``, ``node-001``, ..."""
    return [f"node-{index:03d}" for index in range(count)]


def train_results(
    *,
    parameters: Parameters,
    count: int,
    round_number: int,
    seed: int,
    scale: float = 0.1,
) -> list[Result]:
    """``count`` train results whose updates have ``parameters``' spec, drawn ``N(0, scale²)``.

    ``scale=0`` gives all-zero updates. Example counts are drawn from ``[1, 100)``.
    """
    rng = np.random.default_rng(seed)
    results = []
    for node_id in node_names(count):
        update = {name: scale * rng.normal(size=array.shape) for name, array in parameters.items()}
        results.append(
            Result(
                job_id=JOB_ID,
                round_number=round_number,
                stage=Stage.TRAIN,
                node_id=node_id,
                num_examples=int(rng.integers(1, 100)),
                parameters=Parameters(update),
                metrics={"train_loss": float(rng.uniform(0.1, 2.0))},
            )
        )
    return results


def with_same_weighted_sum(results: Sequence[Result], *, seed: int) -> list[Result]:
    """``results`` with other updates but the same example-weighted sum and example counts.

    Node ``k``'s update becomes ``Δ_k + s_k / n_k`` with shifts ``s_k ~ N(0, 0.5²)`` that sum to
    zero, so ``Σ n_k Δ_k`` — all that secure aggregation reveals — is unchanged. Needs every
    ``n_k > 0``.
    """
    rng = np.random.default_rng(seed)
    shifts = {
        name: rng.normal(scale=0.5, size=(len(results), *array.shape))  # (n, *shape)
        for name, array in results[0].parameters.items()
    }
    moved = []
    for row, result in enumerate(results):
        update = {
            name: array + (shifts[name][row] - shifts[name].mean(axis=0)) / result.num_examples
            for name, array in result.parameters.items()
        }
        moved.append(dataclasses.replace(result, parameters=Parameters(update)))
    return moved


def as_secure_sum(results: Sequence[Result]) -> Result:
    """What secure aggregation hands a strategy for ``results``: one result standing for them all.

    Its update is their example-weighted mean, its example count their sum, and ``contributors``
    their number.
    """
    total = sum(r.num_examples for r in results)
    mean = {
        name: sum(r.num_examples * np.asarray(r.parameters[name], np.float64) for r in results)
        / total
        for name in results[0].parameters
    }
    return dataclasses.replace(
        results[0],
        node_id="secure-aggregate",
        num_examples=total,
        parameters=Parameters(mean),
        contributors=len(results),
    )


def evaluate_results(*, count: int, round_number: int, seed: int) -> list[Result]:
    """``count`` evaluate results reporting ``loss`` and ``accuracy`` on 1-99 examples each."""
    rng = np.random.default_rng(seed)
    return [
        Result(
            job_id=JOB_ID,
            round_number=round_number,
            stage=Stage.EVALUATE,
            node_id=node_id,
            num_examples=int(rng.integers(1, 100)),
            metrics={
                "loss": float(rng.uniform(0.1, 2.0)),
                "accuracy": float(rng.uniform(0.0, 1.0)),
            },
        )
        for node_id in node_names(count)
    ]


def copy_parameters(parameters: Parameters) -> Parameters:
    """A deep copy (``Parameters`` copies the arrays it is given)."""
    return Parameters(dict(parameters))


def instruction_summary(
    instructions: Sequence[NodeInstruction],
) -> list[tuple[str, list[tuple[str, object]]]]:
    """Comparable form of instructions: ``[(node_id, sorted config items), ...]``."""
    return [
        (instruction.node_id, sorted(dict(instruction.config).items()))
        for instruction in instructions
    ]
