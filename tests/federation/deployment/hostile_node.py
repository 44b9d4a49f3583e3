"""An enrolled node with a real certificate that answers what fits the wire but not the job.

Run as a process by the deployment tests::

    python hostile_node.py --kit KIT --data FILE.csv --label diagnosis --classes a,b \
        --statistics no-count --train extra,missing --evaluate num-examples

Each stage option lists one tampering per round (the last repeats); ``honest`` answers as a real
node would. The node computes its honest answer with the real :class:`Node` first, then rewrites it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from safetensors.numpy import save

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.data import load_file
from sovereign_ai.federation import Node
from sovereign_ai.federation.deployment import node_from_dataset
from sovereign_ai.federation.transports.grpc import GrpcNodeClient
from sovereign_ai.pki import load_node_kit

Tamper = Callable[[Result], Result]
TAMPERED_STAGES = (Stage.STATISTICS, Stage.TRAIN, Stage.EVALUATE)


def _tensors(result: Result, change: Callable[[dict[str, np.ndarray]], None]) -> Result:
    tensors = {name: np.array(array) for name, array in result.parameters.items()}
    change(tensors)
    return replace(result, parameters=Parameters(tensors))


def _first_transposed(tensors: dict[str, np.ndarray]) -> None:
    name = next(n for n, a in tensors.items() if a.ndim == 2 and a.shape[0] != a.shape[1])
    tensors[name] = tensors[name].T.copy()


def _reference_library(result: Result) -> Result:
    """The same update, written by the safetensors library itself (its order, no metadata)."""
    payload = bytes(save({name: np.array(a) for name, a in result.parameters.items()}))
    return replace(result, parameters=Parameters.from_bytes(payload))


TAMPERS: dict[str, Tamper] = {
    "honest": lambda r: r,
    # statistics
    "no-count": lambda r: _tensors(r, lambda t: t.pop("count")),
    "wide-sums": lambda r: _tensors(
        r, lambda t: t.update(sum=np.append(t["sum"], 1.0), sum_sq=np.append(t["sum_sq"], 1.0))
    ),
    "negative-count": lambda r: _tensors(r, lambda t: t.update(count=-t["count"])),
    # train
    "extra": lambda r: _tensors(r, lambda t: t.update(smuggled=np.ones(4))),
    "missing": lambda r: _tensors(r, lambda t: t.pop(next(iter(t)))),
    "transposed": lambda r: _tensors(r, _first_transposed),
    "empty": lambda r: replace(r, parameters=Parameters({})),
    "zero-size": lambda r: _tensors(
        r, lambda t: t.update({next(iter(t)): np.zeros((2**40, 0), np.float32)})
    ),
    "huge-count": lambda r: replace(r, num_examples=2**63 - 1),
    "zero-examples": lambda r: replace(r, num_examples=0),
    "reference-order": _reference_library,
    "uint64": lambda r: replace(
        r,
        parameters=Parameters.typed(
            {n: np.zeros(a.shape, np.uint64) for n, a in r.parameters.items()}
        ),
    ),
    # evaluate
    "num-examples": lambda r: replace(r, metrics={**r.metrics, "num_examples": 1e12}),
    "zero-with-metric": lambda r: replace(r, num_examples=0, metrics={"only_mine": 1.0}),
    "bit-flip": lambda r: replace(
        r, metrics={name[:-1] + chr(ord(name[-1]) ^ 1): v for name, v in r.metrics.items()}
    ),
}


class HostileNode:
    """Wraps a real node; rewrites its answers per stage and round."""

    def __init__(self, node: Node, plan: dict[Stage, list[str]]) -> None:
        self.node_id = node.node_id
        self._node = node
        self._plan = plan

    def handle(self, task: Task) -> Result:
        honest = self._node.handle(task)
        modes = self._plan.get(task.stage) or ["honest"]
        mode = modes[min(max(task.round_number, 1), len(modes)) - 1]
        return TAMPERS[mode](honest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kit", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--classes", required=True)
    for stage in TAMPERED_STAGES:
        parser.add_argument(f"--{stage.value}", default="honest")
    args = parser.parse_args()
    kit = load_node_kit(args.kit)
    dataset = load_file(args.data, label=args.label, classes=args.classes.split(","))
    plan = {stage: getattr(args, stage.value).split(",") for stage in TAMPERED_STAGES}
    hostile = HostileNode(node_from_dataset(kit.name, dataset), plan)
    client = GrpcNodeClient(kit=kit, node=hostile)
    signal.signal(signal.SIGTERM, lambda signum, frame: client.stop())
    ended = client.serve_forever()
    print(f"hostile node {kit.name} ended: {ended}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
