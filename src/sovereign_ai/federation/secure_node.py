"""A node's part in secure aggregation: four stage handlers and the egress pipeline's masking slot.

:func:`enable_secure_aggregation` registers the handlers of SecAgg+'s stages on a
:class:`~sovereign_ai.federation.node.Node` and fills its egress ``masking`` slot. The masked-input
stage runs the node's own handler of the stage the coordinator names (``train`` or ``statistics``);
its answer then passes the egress pipeline like any other — policy, privacy (noise is added to the
float update *before* masking), masking, audit — and leaves as one masked integer vector. The
node's example count leaves only inside it, summed with the others'.

The node keeps one session per (job, round): a new key advertisement for the same round (the
coordinator retrying it) replaces the old session and its secrets, so shares of a failed attempt
can never be combined with a later one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sovereign_ai.core import Parameters, Result, Stage, Task
from sovereign_ai.errors import SecureAggregationError
from sovereign_ai.federation.node import Node
from sovereign_ai.federation.secure_wire import (
    SETTINGS,
    advert_to_tensors,
    adverts_from_tensors,
    masked_to_tensors,
    node_list,
    reveal_to_tensors,
    sealed_to_tensors,
    split_model_and_shares,
)
from sovereign_ai.secagg.adverts import AdvertSigner, AdvertVerifier, SessionId
from sovereign_ai.secagg.encoding import encode_exact, encode_update
from sovereign_ai.secagg.node_session import NodeSession

__all__ = ["SECURE_INPUTS", "enable_secure_aggregation"]

SECURE_INPUTS = (Stage.TRAIN, Stage.STATISTICS)
"""The stages whose answers can be summed securely."""


def _int(task: Task, key: str) -> int:
    value = task.config.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SecureAggregationError(
            f"The task's {key!r} setting must be an integer; got {value!r}."
        )
    return value


@dataclass
class _SecureNode:
    node: Node
    signer: AdvertSigner
    verifier: AdvertVerifier
    sessions: dict[tuple[str, int], NodeSession] = dataclasses.field(default_factory=dict)

    def _session(self, task: Task) -> NodeSession:
        session = self.sessions.get((task.job_id, task.round_number))
        if session is None or session.session.attempt != _int(task, "secagg_attempt"):
            raise SecureAggregationError(
                f"Node {self.node.node_id!r} has no secure-aggregation session for round "
                f"{task.round_number} attempt {task.config.get('secagg_attempt')!r} of job "
                f"{task.job_id!r}: keys must be advertised first."
            )
        return session

    def advertise(self, task: Task) -> Result:
        session = NodeSession(
            node_id=self.node.node_id,
            session=SessionId(task.job_id, task.round_number, _int(task, "secagg_attempt")),
            neighbours=node_list(task.config, "secagg_neighbours"),
            threshold=_int(task, "secagg_threshold"),
            modulus_bits=_int(task, "secagg_modulus_bits"),
            signer=self.signer,
        )
        # One live session per job: a retry or the next round replaces the old one and its secrets.
        self.sessions = {k: v for k, v in self.sessions.items() if k[0] != task.job_id}
        self.sessions[(task.job_id, task.round_number)] = session
        parameters = Parameters.typed(advert_to_tensors(session.advertise()))
        return _answer(self.node, task, parameters)

    def share_keys(self, task: Task) -> Result:
        sealed = self._session(task).share_keys(
            adverts_from_tensors(task.parameters), verifier=self.verifier
        )
        return _answer(self.node, task, sealed_to_tensors(sealed))

    def masked_input(self, task: Task) -> Result:
        named = str(task.config.get("secagg_input"))
        inner_stage = next((s for s in SECURE_INPUTS if s.value == named), None)
        if inner_stage is None:
            raise SecureAggregationError(
                f"Stage {named[:40]!r} cannot be summed securely; only "
                f"{', '.join(s.value for s in SECURE_INPUTS)}."
            )
        model, sealed = split_model_and_shares(task.parameters)
        self._session(task).receive_shares(sealed)
        inner = self.node.handler_for(inner_stage)(
            dataclasses.replace(task, stage=inner_stage, parameters=model)
        )
        # Still the float answer: it is masked by the egress pipeline's masking slot.
        return dataclasses.replace(inner, stage=task.stage)

    def mask(self, task: Task, result: Result) -> Result:
        """The egress masking slot: encode and mask a masked-input answer; pass the others."""
        if task.stage is not Stage.SECAGG_MASKED_INPUT:
            return result
        session = self._session(task)
        bits = session.modulus_bits
        if task.config.get("secagg_input") == Stage.STATISTICS.value:
            values = np.concatenate(
                [np.ravel(result.parameters[name]) for name in ("count", "sum", "sum_sq")]
            )
            encoded = encode_exact(
                values, modulus_bits=bits, cohort_size=_int(task, "secagg_cohort_size")
            )
        else:
            clipping = task.config.get("secagg_clipping_range")
            if isinstance(clipping, bool) or not isinstance(clipping, int | float):
                raise SecureAggregationError("The task lacks a numeric 'secagg_clipping_range'.")
            encoded = encode_update(
                result.parameters.flatten(),
                weight=max(1, min(result.num_examples, _int(task, "secagg_max_weight"))),
                clipping_range=float(clipping),
                quantisation_bits=_int(task, "secagg_quantisation_bits"),
                modulus_bits=bits,
                rng=np.random.default_rng(_int(task, "seed")),
            )
        masked = session.mask(encoded)
        return _answer(self.node, task, masked_to_tensors(masked, modulus_bits=bits))

    def unmask(self, task: Task) -> Result:
        reveal = self._session(task).reveal(
            survivors=node_list(task.config, "secagg_survivors"),
            dropped=node_list(task.config, "secagg_dropped"),
        )
        return _answer(self.node, task, reveal_to_tensors(reveal))


def _answer(node: Node, task: Task, parameters: Parameters) -> Result:
    """A secure-aggregation answer: tensors only; no example count, no metrics."""
    return Result(task.job_id, task.round_number, task.stage, node.node_id, 0, parameters, {})


def enable_secure_aggregation(
    node: Node, *, signer: AdvertSigner, verifier: AdvertVerifier
) -> None:
    """Let ``node`` take part in secure aggregation, signing with ``signer``'s identity.

    Parameters
    ----------
    node
        The node; gains the four SecAgg+ stage handlers and a filled ``masking`` egress slot.
    signer
        The node's federation identity (:class:`sovereign_ai.pki.IdentitySigner`).
    verifier
        Checks the neighbours' advertisements against the federation CA
        (:class:`sovereign_ai.pki.NodeSignatureVerifier`).
    """
    secure = _SecureNode(node=node, signer=signer, verifier=verifier)
    node.register_stage(Stage.SECAGG_ADVERTISE_KEYS, secure.advertise, settings=SETTINGS)
    node.register_stage(Stage.SECAGG_SHARE_KEYS, secure.share_keys)
    node.register_stage(Stage.SECAGG_MASKED_INPUT, secure.masked_input)
    node.register_stage(Stage.SECAGG_UNMASK, secure.unmask)
    node.egress.install("masking", secure.mask)
