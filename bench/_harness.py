"""What every benchmark shares: the machine it ran on, peak memory of a process tree, result files.

Every figure a benchmark prints is a ratio against a baseline measured in the same run, with the
absolute numbers alongside; no timing threshold lives in a test (timings depend on the machine).
Results go to ``bench/results/<name>.json`` (and a PNG where a plot reads better than a table).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

__all__ = [
    "BENCH_DIR",
    "REPO_DIR",
    "RESULTS_DIR",
    "TreeMemory",
    "job_document",
    "machine",
    "mean_std",
    "measured",
    "ratio",
    "write_result",
]


def machine() -> dict[str, Any]:
    """The facts about this machine a reader needs to compare our figures with theirs."""
    import numpy as np
    import torch

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": "none (CPU only)" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is 0 (never a division error in a report)."""
    return value / baseline if baseline else float("nan")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for a single value)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def job_document(
    *,
    name: str,
    rounds: int,
    seed: int,
    model: Mapping[str, Any],
    strategy: Mapping[str, Any],
    train: Mapping[str, Any],
    data: Mapping[str, Any],
    simulation: Mapping[str, Any] | None = None,
    coordinator: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A job spec document as a person would write it in TOML (see ``docs/job-spec.md``)."""
    document: dict[str, Any] = {
        "job": {"name": name, "rounds": rounds, "seed": seed},
        "model": dict(model),
        "strategy": dict(strategy),
        "train": dict(train),
        "data": dict(data),
        "simulation": dict(simulation or {"backend": "thread", "workers": 2}),
    }
    if coordinator is not None:
        document["coordinator"] = dict(coordinator)
    return document


def write_result(name: str, document: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` atomically, stamped with the time and the machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    stamped = {
        "benchmark": name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **document,
    }
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(stamped, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled on a thread.

    Ray (Flower's simulation engine) and a process pool spawn workers, so the memory a job costs is
    the sum over the whole tree, sampled while it runs. Two sums are kept:

    * ``peak_rss_bytes``: sum of RSS; counts a page shared by several processes (torch's libraries
      mapped by every worker) once per process, so it overstates what the tree really holds;
    * ``peak_pss_bytes``: sum of PSS (proportional set size: a shared page split among its
      sharers), the fairer figure; slower to read, so sampled every ``pss_every`` RSS samples.

    Parameters
    ----------
    pid
        Root of the tree (``os.getpid()`` to measure this process).
    interval_s
        Seconds between RSS samples.
    pss_every
        Read PSS on every ``pss_every``-th sample (0 turns PSS off).
    """

    def __init__(self, pid: int, *, interval_s: float = 0.05, pss_every: int = 10) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.peak_rss_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        """Take one sample now (also called by the thread)."""
        processes = self._tree()
        rss = 0
        pss = 0
        want_pss = self.pss_every > 0 and self.samples % self.pss_every == 0
        for process in processes:
            try:
                if want_pss:
                    info = process.memory_full_info()
                    rss += info.rss
                    pss += info.pss
                else:
                    rss += process.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading
        self.samples += 1
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        self.peak_processes = max(self.peak_processes, len(processes))
        if want_pss:
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def start(self) -> TreeMemory:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self._stop.set()
        self._thread.join()

    def to_json(self) -> dict[str, float]:
        """Peaks in MiB, and how many processes the tree held at most."""
        return {
            "peak_rss_mib": round(self.peak_rss_bytes / 2**20, 1),
            "peak_pss_mib": round(self.peak_pss_bytes / 2**20, 1),
            "peak_processes": self.peak_processes,
            "samples": self.samples,
        }


@contextmanager
def measured(pid: int | None = None) -> Iterator[dict[str, Any]]:
    """Time a block and sample the memory of ``pid``'s tree (this process by default).

    Yields a dict that holds, after the block, ``wall_s`` and the :class:`TreeMemory` figures.
    """
    figures: dict[str, Any] = {}
    memory = TreeMemory(os.getpid() if pid is None else pid).start()
    start = time.perf_counter()
    try:
        yield figures
    finally:
        figures["wall_s"] = time.perf_counter() - start
        memory.stop()
        figures.update(memory.to_json())
