"""Kill a real `sovereign simulate` process mid-run, resume it, and get the identical model."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sovereign_ai.core import Parameters

JOB = """
[job]
name = "resume"
rounds = 12
seed = 11
[model]
name = "mlp"
hidden = [64, 64]
[strategy]
name = "fedadam"
server_learning_rate = 0.02
min_train_nodes = 3
[train]
local_epochs = 3
batch_size = 8
learning_rate = 0.05
[data]
dataset = "digits"
partition = "dirichlet"
alpha = 0.5
nodes = 4
"""

# Real processes with deadlines of seconds: one such test at a time, on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("processes")]


def sovereign(*args: str) -> list[str]:
    return [sys.executable, "-m", "sovereign_ai.cli", *args]


def durable_round(state: Path) -> int:
    try:
        with sqlite3.connect(state / "state.db") as db:
            row = db.execute("SELECT MAX(round_number) FROM rounds").fetchone()
    except sqlite3.Error:
        return -1
    return -1 if row is None or row[0] is None else int(row[0])


def final_parameters(state: Path) -> Parameters:
    files = sorted((state / "parameters").glob("round-*.safetensors"))
    return Parameters.from_bytes(files[-1].read_bytes())


def test_sigkill_then_resume_gives_identical_final_parameters(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    env = {**os.environ, "COLUMNS": "120"}

    uninterrupted = tmp_path / "a"
    subprocess.run(
        sovereign("simulate", str(job), "--out", str(uninterrupted)),
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )

    interrupted = tmp_path / "b"
    process = subprocess.Popen(
        sovereign("simulate", str(job), "--out", str(interrupted)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while durable_round(interrupted / "state") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; make the job longer"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_after = durable_round(interrupted / "state")
    assert 4 <= killed_after < 12

    again = subprocess.run(
        sovereign("simulate", str(job), "--out", str(interrupted)),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert again.returncode == 2
    assert "--resume" in again.stderr

    resumed = subprocess.run(
        sovereign("simulate", str(job), "--out", str(interrupted), "--resume"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed after round {killed_after}" in resumed.stdout
    assert durable_round(interrupted / "state") == 12
    assert final_parameters(interrupted / "state") == final_parameters(uninterrupted / "state")
