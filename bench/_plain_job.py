"""The floor for ``bench/scale.py``: FedAvg as a plain torch for-loop in one process, one thread.

No coordinator, transport, tasks, parameter records or checks: for each round, every node's rows
are trained on starting from the global weights with the loop of ``sovereign_ai.learning.train``
(same seeds), the weights are averaged by example count, and (as our job does with
``evaluate_every = 1``) the model is scored on every node's local test rows and on the held-out
rows. What our simulation adds on top of this is the framework's cost::

    python bench/_plain_job.py JOB.json      # prints one JSON line
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812  # torch's conventional alias

from sovereign_ai.federation import node_seed, parse_job_spec, prepare_simulation
from sovereign_ai.learning import create_model


def main(job_path: str) -> None:
    job = json.loads(open(job_path, encoding="utf-8").read())  # noqa: SIM115
    torch.set_num_threads(1)
    spec = parse_job_spec(job["spec"], source="benchmark job")
    setup = prepare_simulation(spec)
    train = spec.train
    nodes = [
        (
            node.node_id,
            torch.from_numpy(np.array(node.data.train_features)),
            torch.from_numpy(np.array(node.data.train_labels)),
            torch.from_numpy(np.array(node.data.test_features)),
            torch.from_numpy(np.array(node.data.test_labels)),
        )
        for node in setup.nodes
    ]
    test_x = torch.from_numpy(np.array(setup.test_features))
    test_y = torch.from_numpy(np.array(setup.test_labels))
    start = time.perf_counter()
    model = create_model(
        spec.model.name,
        num_features=setup.num_features,
        num_classes=setup.num_classes,
        seed=spec.job.seed,
        **spec.model.options,
    )
    rows = torch.cat([x for _, x, _, _, _ in nodes]).double()  # the federated statistics, pooled
    mean = rows.mean(dim=0)
    std = rows.std(dim=0, unbiased=False)
    with torch.no_grad():
        model.input_mean.copy_(mean.float())
        model.input_std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)).float())
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    ends: list[float] = []
    accuracy = float("nan")
    for round_number in range(1, spec.job.rounds + 1):
        total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_state.items()}
        count = 0
        for node_id, x, y, _, _ in nodes:
            model.load_state_dict(global_state)
            optimizer = torch.optim.SGD(params, lr=train.learning_rate)
            generator = torch.Generator().manual_seed(
                node_seed(spec.job.seed, round_number, node_id)
            )
            model.train()
            for _ in range(train.local_epochs):
                order = torch.randperm(x.shape[0], generator=generator)
                for begin in range(0, x.shape[0], train.batch_size):
                    batch = order[begin : begin + train.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    F.cross_entropy(model(x[batch]), y[batch]).backward()
                    optimizer.step()
            n = int(x.shape[0])
            for k, v in model.state_dict().items():
                total[k] += n * v.double()
            count += n
        global_state = {k: (v / count).float() for k, v in total.items()}
        model.load_state_dict(global_state)
        model.eval()
        with torch.no_grad():
            for _, _, _, tx, ty in nodes:
                if tx.shape[0]:
                    F.cross_entropy(model(tx), ty)
            accuracy = float((model(test_x).argmax(dim=1) == test_y).float().mean())
        ends.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "framework": "plain torch loop",
                "job_s": time.perf_counter() - start,
                "round_end_s": ends,
                "central_accuracy": [None] * (len(ends) - 1) + [accuracy],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
