"""The (ε, δ) a job costs each node, as the coordinator can compute it for the passport.

The figures are those each node's own ledger projects for the whole job when it first answers
(:mod:`sovereign_ai.federation.private_node`), computed with the same accounting code:

- client level (``central``, ``distributed``, ``local``): ``rounds`` Gaussian mechanisms of the
  job's noise multiplier ``z`` at the cohort sampling rate ``q``; every node of the population is
  charged every round, so every node has the same ε;
- sample level (``dpsgd``) with a target ε: each node calibrates its own noise to reach it, so
  its ε is the target;
- sample level with a fixed noise multiplier: ``rounds x steps`` DP-SGD steps at ``q = batch /
  n``, which needs the node's row count ``n`` (known in simulation, not to a deployed
  coordinator: ``None`` there).
"""

from __future__ import annotations

from collections.abc import Mapping

from sovereign_ai.federation.assembly import build_strategy
from sovereign_ai.federation.job import JobSpec
from sovereign_ai.federation.private_strategy import DifferentiallyPrivate
from sovereign_ai.learning import dpsgd_schedule
from sovereign_ai.privacy import Accounting, PrivacyEvent, Sampler, epsilon_spent
from sovereign_ai.registry import PrivacyRecord

__all__ = ["node_epsilons", "privacy_record"]


def privacy_record(spec: JobSpec) -> PrivacyRecord:
    """The job's ``[privacy]`` for the passport, with how its per-node ε are obtained."""
    section = spec.privacy
    if not section.enabled:
        return PrivacyRecord(mode="none")
    client_level = not section.sample_level
    noise_multiplier, sampling_rate = section.noise_multiplier, None
    if client_level:
        strategy = _client_level(spec)
        noise_multiplier, sampling_rate = strategy.noise_multiplier, strategy.sampling_rate
        basis = (
            f"Client level: {spec.job.rounds} rounds of noise multiplier {noise_multiplier:.4g} "
            f"at sampling rate {sampling_rate:g}; every node is charged every round, so every "
            "node's ε is the same."
        )
    elif section.target_epsilon is not None:
        basis = (
            "Sample level (DP-SGD): each node calibrated its noise for its own row count to "
            f"reach the target ε = {section.target_epsilon:g} over the whole job."
        )
    else:
        basis = (
            "Sample level (DP-SGD) with a fixed noise multiplier: ε depends on each node's row "
            "count; given where the coordinator knew it (simulation), else left out (the "
            "node's 'sovereign privacy report' has it)."
        )
    return PrivacyRecord(
        mode=section.mode,
        unit="node" if client_level else "record",
        accounting=section.accounting,
        delta=section.delta,
        target_epsilon=section.target_epsilon,
        noise_multiplier=noise_multiplier,
        sampling_rate=sampling_rate,
        clip=section.clip,
        clipping=section.clipping,
        epsilon_basis=basis
        + " Each figure is what the node's ledger projects for the whole job: an upper bound.",
    )


def node_epsilons(
    spec: JobSpec, node_ids: list[str], *, num_examples: Mapping[str, int] | None = None
) -> dict[str, float | None]:
    """ε of the whole job for each node at the job's δ (``None``: not knowable here or no DP).

    Parameters
    ----------
    spec
        The job.
    node_ids
        The nodes.
    num_examples
        Each node's training rows, where known (simulation): needed for DP-SGD with a fixed
        noise multiplier.
    """
    section = spec.privacy
    if not section.enabled:
        return dict.fromkeys(node_ids)
    method = Accounting(section.accounting)
    if not section.sample_level:
        strategy = _client_level(spec)
        q = strategy.sampling_rate
        event = PrivacyEvent(strategy.noise_multiplier, q, spec.job.rounds, Sampler.for_rate(q))
        epsilon = epsilon_spent([event], delta=section.delta, method=method)
        return dict.fromkeys(node_ids, epsilon)
    if section.target_epsilon is not None:
        return dict.fromkeys(node_ids, float(section.target_epsilon))
    known = num_examples or {}
    epsilons: dict[str, float | None] = {}
    for node_id in node_ids:
        rows = known.get(node_id)
        if rows is None or rows < 1 or section.noise_multiplier is None:
            epsilons[node_id] = None
            continue
        schedule = dpsgd_schedule(
            num_examples=rows,
            batch_size=spec.train.batch_size,
            local_epochs=spec.train.local_epochs,
        )
        q = schedule.sampling_rate
        steps = spec.job.rounds * schedule.steps
        event = PrivacyEvent(section.noise_multiplier, q, steps, Sampler.for_rate(q))
        epsilons[node_id] = epsilon_spent([event], delta=section.delta, method=method)
    return epsilons


def _client_level(spec: JobSpec) -> DifferentiallyPrivate:
    strategy = build_strategy(spec)
    if not isinstance(strategy, DifferentiallyPrivate):  # build_strategy wraps client-level DP
        raise TypeError(f"expected DifferentiallyPrivate; got {type(strategy).__name__}")
    return strategy
