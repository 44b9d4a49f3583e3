"""Differential privacy over real processes, with secure aggregation: each node's own ledger.

Three sites over mutual TLS, the distributed-noise mode (each site adds its share of the noise
before its update is masked). Two sites' owners hold a budget the job fits; the third's is too
small, so that node refuses the job at its first task, with the numbers, and the job finishes with
the other two. Each node's ledger, in its kit, holds exactly the job's spend. (The clip is small:
with three sites, noise for ε ≈ 9 at a clip of 1 would swamp a 256x256 network and make local
training diverge; this test is about the accounting, bench/privacy.py about utility. Inputs are
scaled by the dataset's published ranges for the same reason: on raw features, up to 4,000, an
unlucky draw of the noise made local training diverge in round 2.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovereign_ai.data import published_scaling
from sovereign_ai.federation.checkpoint import CheckpointStore
from sovereign_ai.federation.local_processes import LocalFederation
from sovereign_ai.federation.private_node import LEDGER_FILE
from sovereign_ai.privacy import PrivacyEvent, PrivacyLedger, Sampler, epsilon_spent

from .conftest import NODES, start_nodes, write_job

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]

BUDGETS = {"north": 50.0, "south": 50.0, "central": 0.1}


def set_budgets(federation: LocalFederation, budgets: dict[str, float]) -> None:
    """Each site's owner writes its budget into its kit's node.toml."""
    for name, budget in budgets.items():
        config = federation.node_kit(name) / "node.toml"
        config.write_text(
            config.read_text()
            + f'\n[privacy]\ndataset = "{name}-patients"\nmax_epsilon = {budget}\n'
        )


def private_job(
    folder: Path, privacy: str, *, rounds: int = 3, epochs: int = 2, scaled: bool = False
) -> Path:
    """The sites' job with secure aggregation, ``privacy`` as its [privacy] body, and no pooled
    statistics (with ``scaled``, the public scaling of the dataset in [model])."""
    job = write_job(folder, rounds=rounds, epochs=epochs)
    text = job.read_text().replace(
        "[coordinator]\n", "[coordinator]\nstandardize_features = false\n"
    )
    if scaled:
        means, spreads = published_scaling("breast_cancer")
        text = text.replace(
            "num_classes = 2\n",
            f"num_classes = 2\ninput_mean = {list(means)}\ninput_std = {list(spreads)}\n",
        )
    job.write_text(text + f"\n[secure_aggregation]\nenabled = true\n\n[privacy]\n{privacy}")
    return job


def test_a_private_secure_job_is_accounted_in_each_nodes_own_ledger(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    set_budgets(federation, BUDGETS)
    job = private_job(
        tmp_path, 'mode = "distributed"\nnoise_multiplier = 1.0\nclip = 0.01\n', scaled=True
    )
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail(
        "coordinator", lines=80
    )
    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    assert [sorted(r["answered"]) for r in rounds] == [["north", "south"]] * 3
    assert all("over its owner's budget" in r["failures"]["central"] for r in rounds)

    expected = epsilon_spent([PrivacyEvent(1.0, 1.0, 3, Sampler.FULL)], delta=1e-5)
    for name in ("north", "south"):
        with PrivacyLedger(federation.node_kit(name) / LEDGER_FILE) as ledger:
            assert ledger.spent(f"{name}-patients") == pytest.approx(expected)
    with PrivacyLedger(federation.node_kit("central") / LEDGER_FILE) as ledger:
        assert ledger.entries("central-patients") == []
    assert "Privacy budget of dataset 'north-patients'" in federation.tail("north", lines=400)


def test_dpsgd_on_every_site_spends_exactly_the_target_in_each_ledger(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    """Sample-level DP over real processes, with secure aggregation: each site calibrates the
    job's target ε for its own rows, trains with DP-SGD and records each round before training."""
    set_budgets(federation, dict.fromkeys(BUDGETS, 10.0))
    job = private_job(
        tmp_path, 'mode = "dpsgd"\ntarget_epsilon = 4.0\nclip = 1.0\n', rounds=2, epochs=1,
        scaled=True,
    )  # fmt: skip
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail(
        "coordinator", lines=80
    )
    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    assert [sorted(r["answered"]) for r in rounds] == [sorted(BUDGETS)] * 2
    for name in BUDGETS:
        with PrivacyLedger(federation.node_kit(name) / LEDGER_FILE) as ledger:
            entries = ledger.entries(f"{name}-patients")
            assert [e.what for e in entries] == ["dpsgd", "dpsgd"]
            assert ledger.spent(f"{name}-patients") == pytest.approx(4.0, rel=0.01)


def test_adaptive_clipping_over_real_processes_moves_the_clip_within_the_same_spend(
    federation: LocalFederation, node_files: dict[str, Path], tmp_path: Path
) -> None:
    # Distributed noise with secure aggregation: each site's bit, noised with its share, travels
    # masked with its update. The clip starts far below every update's norm, so it must grow;
    # z = 0.2 with σ_b = 0.2 keeps the summed bits' noise small enough to say so for sure.
    set_budgets(federation, dict.fromkeys(NODES, 1000.0))
    privacy = (
        'mode = "distributed"\nnoise_multiplier = 0.2\nclip = 0.001\n'
        'clipping = "adaptive"\ncount_noise = 0.2\n'
    )
    job = private_job(tmp_path, privacy, rounds=2, epochs=1)
    federation.start_coordinator(job)
    start_nodes(federation, node_files)
    assert federation.wait_for_coordinator(timeout_s=240) == 0, federation.tail(
        "coordinator", lines=80
    )
    rounds = json.loads(federation.run.metrics.read_text())["rounds"]
    assert [sorted(r["answered"]) for r in rounds] == [sorted(NODES)] * 2

    store = CheckpointStore(federation.run.state)
    try:
        latest = store.latest()
    finally:
        store.close()
    assert latest is not None and latest.round_number == 2
    assert float(latest.strategy_state["adaptive_clip"][0]) > 0.001 * 1.1

    expected = epsilon_spent([PrivacyEvent(0.2, 1.0, 2, Sampler.FULL)], delta=1e-5)
    for name in NODES:  # bits and updates: the one event of z per round, as with a fixed clip
        with PrivacyLedger(federation.node_kit(name) / LEDGER_FILE) as ledger:
            assert ledger.spent(f"{name}-patients") == pytest.approx(expected)
