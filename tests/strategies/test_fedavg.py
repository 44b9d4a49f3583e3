"""FedAvg: hand-computed rounds and properties of the example-weighted mean."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sovereign_ai.core import Parameters, Result, Stage
from sovereign_ai.strategies import FedAvg

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)
vectors = hnp.arrays(np.float32, st.integers(min_value=1, max_value=6), elements=finite)


def test_hand_computed_round(results, params) -> None:
    # mean update = (1 * [2, 0] + 3 * [-1, 4]) / 4 = [-0.25, 3]; global [1, 2] -> [0.75, 5]
    new = FedAvg().aggregate_train(
        round_number=1,
        parameters=params([1.0, 2.0]),
        results=results([[2.0, 0.0], [-1.0, 4.0]], [1, 3]),
    )
    np.testing.assert_array_equal(new["w"], np.array([0.75, 5.0], dtype=np.float32))


def test_keeps_names_shapes_and_order_of_a_multi_tensor_model() -> None:
    glob = Parameters({"z.weight": np.ones((2, 3)), "a.bias": np.zeros(3)})
    results = [
        Result(
            job_id="job",
            round_number=1,
            stage=Stage.TRAIN,
            node_id=node_id,
            num_examples=1,
            parameters=Parameters({"z.weight": np.full((2, 3), value), "a.bias": np.ones(3)}),
        )
        for node_id, value in (("a", 1.0), ("b", 3.0))
    ]
    new = FedAvg().aggregate_train(round_number=1, parameters=glob, results=results)
    assert list(new) == ["z.weight", "a.bias"]
    np.testing.assert_array_equal(new["z.weight"], np.full((2, 3), 3.0, dtype=np.float32))
    np.testing.assert_array_equal(new["a.bias"], np.ones(3, dtype=np.float32))


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    update=vectors,
    examples=st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=8),
)
def test_identical_updates_average_to_that_update(results, params, data, update, examples) -> None:
    glob = data.draw(hnp.arrays(np.float32, update.shape, elements=finite))
    new = FedAvg().aggregate_train(
        round_number=1,
        parameters=params(glob),
        results=results([update] * len(examples), examples),
    )
    expected = (glob.astype(np.float64) + update.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(new["w"], expected)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    size=st.integers(min_value=1, max_value=5),
    count=st.integers(min_value=2, max_value=8),
)
def test_mean_lies_within_the_updates_and_ignores_arrival_order(
    results, params, data, size, count
) -> None:
    updates = [data.draw(hnp.arrays(np.float32, size, elements=finite)) for _ in range(count)]
    examples = data.draw(st.lists(st.integers(1, 1000), min_size=count, max_size=count))
    order = data.draw(st.permutations(range(count)))
    glob = params(np.zeros(size))
    batch = results(updates, examples)
    new = FedAvg().aggregate_train(round_number=1, parameters=glob, results=batch)
    shuffled = FedAvg().aggregate_train(
        round_number=1, parameters=glob, results=[batch[i] for i in order]
    )
    np.testing.assert_array_equal(new["w"], shuffled["w"])
    stacked = np.stack(updates)  # (n, d)
    assert np.all(new["w"] >= stacked.min(axis=0)) and np.all(new["w"] <= stacked.max(axis=0))


def test_returns_new_parameters_and_leaves_inputs_alone(results, params) -> None:
    glob = params([1.0, 2.0])
    batch = results([[1.0, 1.0], [3.0, 3.0]])
    new = FedAvg().aggregate_train(round_number=1, parameters=glob, results=batch)
    assert new is not glob
    np.testing.assert_array_equal(glob["w"], np.array([1.0, 2.0], dtype=np.float32))
    np.testing.assert_array_equal(batch[0].parameters["w"], np.ones(2, dtype=np.float32))
