"""What every benchmark shares: running a job in its own process and measuring it from outside.

Every figure a benchmark prints is a ratio against a baseline measured in the same run, with the
absolute numbers alongside; no timing threshold lives in a test (timings depend on the machine).

* :func:`run_job_process` runs one job script as a child process, after waiting for the machine
  to be quiet, with a :class:`TreeMonitor` sampling the peak memory and CPU of its whole process
  tree and the CPU everything else used meanwhile; a disturbed run is repeated.
* :func:`median_of_runs` folds repeated runs into one; :func:`write_result` stamps results with
  the machine and writes ``bench/results/<name>.json`` (see :func:`result_name`).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

__all__ = [
    "BENCH_DIR",
    "REPO_DIR",
    "RESULTS_DIR",
    "TreeMonitor",
    "background_note",
    "busy_cores",
    "command_line",
    "console",
    "job_document",
    "machine",
    "mean_std",
    "median_of_runs",
    "ratio",
    "result_name",
    "run_job_process",
    "subprocess_env",
    "wait_until_quiet",
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


def console() -> Console:
    """A console for tables: the terminal's width, or 160 columns when output goes to a file."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces this run, for the results file."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python", f"bench/{script}", *arguments])


def background_note(runs: Sequence[Mapping[str, Any]]) -> str:
    """One line on how busy the rest of the machine was during ``runs`` (markup for rich)."""
    worst = max((float(run.get("background_cores", 0.0)) for run in runs), default=0.0)
    steal = max((float(run.get("steal_cores", 0.0)) for run in runs), default=0.0)
    line = (
        f"Other processes used at most {worst:.2f} cores during these runs "
        f"(hypervisor steal at most {steal:.2f})"
    )
    if worst > 0.2 or steal > 0.2:
        return f"[red]{line}: the machine was shared, timings are suspect.[/]"
    return f"[dim]{line}.[/]"


def result_name(base: str, *, quick: bool = False, custom: bool = False) -> str:
    """Where a run's results go: the reference run keeps ``<base>``; quick and custom runs
    (settings changed on the command line) get their own file, so neither overwrites it."""
    return f"{base}_custom" if custom else f"{base}_quick" if quick else base


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


def _busy_seconds(times: Any) -> tuple[float, float]:
    """(busy, steal) CPU-seconds from ``psutil.cpu_times()``: all but idle and I/O wait."""
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    steal = getattr(times, "steal", 0.0)
    return total - idle - steal, steal


def busy_cores(interval_s: float = 1.0) -> float:
    """Cores' worth of CPU the whole machine used over the next ``interval_s`` seconds."""
    before, _ = _busy_seconds(psutil.cpu_times())
    time.sleep(interval_s)
    after, _ = _busy_seconds(psutil.cpu_times())
    return (after - before) / interval_s


def wait_until_quiet(
    *, max_busy_cores: float = 0.3, settle_s: int = 3, timeout_s: float = 900.0
) -> dict[str, float]:
    """Wait until other processes leave the CPUs alone before a timed run.

    The machine may be shared (another session's test suite, a build): a benchmark that runs
    while others use a core measures them too. Waits until the whole machine used less than
    ``max_busy_cores`` for ``settle_s`` consecutive seconds, or ``timeout_s`` passed.

    Returns
    -------
    dict
        ``waited_s`` and ``busy_cores_before`` (the last one-second reading); a run that timed out
        is marked by ``busy_cores_before`` above the threshold.
    """
    start = time.perf_counter()
    quiet = 0
    busy = busy_cores()
    warned = False
    while True:
        quiet = quiet + 1 if busy < max_busy_cores else 0
        if quiet >= settle_s or time.perf_counter() - start > timeout_s:
            break
        if not warned and time.perf_counter() - start > 5:
            print(
                f"  (waiting for the machine to go quiet: other processes use {busy:.1f} cores)",
                file=sys.stderr,
                flush=True,
            )
            warned = True
        busy = busy_cores()
    return {"waited_s": round(time.perf_counter() - start, 1), "busy_cores_before": busy}


def _own_addresses() -> set[str]:
    """Every IP address of this machine's own network interfaces."""
    return {
        address.address.split("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


def _peer_addresses(process: psutil.Process) -> set[str]:
    """Remote IPs of ``process``'s internet sockets that are not loopback (IPv4 unmapped)."""
    found = set()
    for connection in process.net_connections(kind="inet"):
        if not connection.raddr:
            continue
        ip = ipaddress.ip_address(connection.raddr.ip)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_loopback:
            found.add(str(ip))
    return found


class TreeMonitor:
    """Peak memory and CPU of a process and all its descendants, sampled on a thread.

    Ray (Flower's simulation engine) and a process pool spawn workers, so what a job costs is
    summed over the whole tree, sampled while it runs (every 0.1 s by default).

    * ``peak_rss_bytes``: sum of RSS; counts a page shared by several processes (torch's libraries
      mapped by every worker) once per process, so it overstates what the tree really holds;
    * ``peak_pss_bytes``: sum of PSS (proportional set size: a shared page split among its
      sharers), the fairer figure. Reading it makes the kernel walk each process's page tables
      (about 10 ms per torch process here), so it is sampled only every ``pss_every`` RSS samples
      to keep the sampler from stealing the CPU it measures (1-2 % of one core for Ray's tree);
    * ``tree_cpu_s``: CPU-seconds the tree used (each process's last reading);
    * ``background_cores``: CPU the rest of the machine used meanwhile, in cores (machine-wide busy
      time minus the tree's and this sampler's, over the wall time). Above ~0.2 the run shared the
      machine with something else, and its timings are suspect;
    * ``remote_addresses_seen``: every address of *another* machine a process of the tree had a
      connection to, checked as rarely as PSS (an air-gapped run must show none), and
      ``own_interface_addresses_seen``: this machine's own non-loopback addresses used (a process
      listening beyond loopback, as Ray's GCS does).

    Parameters
    ----------
    pid
        Root of the tree: a child process of this one.
    interval_s
        Seconds between RSS samples.
    pss_every
        Read PSS on every ``pss_every``-th sample (0 turns PSS off).
    """

    def __init__(self, pid: int, *, interval_s: float = 0.1, pss_every: int = 20) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.peak_rss_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._cpu_by_pid: dict[int, float] = {}
        self.peer_addresses: set[str] = set()
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-monitor", daemon=True)
        self._started = 0.0
        self._figures: dict[str, float] = {}

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
                with process.oneshot():
                    cpu = process.cpu_times()
                    if want_pss:
                        info = process.memory_full_info()
                        pss += info.pss
                    else:
                        info = process.memory_info()
                rss += info.rss
                self._cpu_by_pid[process.pid] = cpu.user + cpu.system
                if want_pss:  # as rarely: look for any connection that leaves the machine
                    self.peer_addresses.update(_peer_addresses(process))
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

    def start(self) -> TreeMonitor:
        """Start sampling."""
        self._started = time.perf_counter()
        self._machine_before = _busy_seconds(psutil.cpu_times())
        own = self._me.cpu_times()
        self._own_before = own.user + own.system
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and settle the CPU accounts."""
        self._stop.set()
        self._thread.join()
        wall = max(time.perf_counter() - self._started, 1e-9)
        busy_after, steal_after = _busy_seconds(psutil.cpu_times())
        own = self._me.cpu_times()
        own_s = own.user + own.system - self._own_before
        tree_s = sum(self._cpu_by_pid.values())
        busy_s = busy_after - self._machine_before[0]
        self._figures = {
            "tree_cpu_s": round(tree_s, 2),
            "tree_cores": round(tree_s / wall, 2),
            "sampler_cpu_s": round(own_s, 2),
            "background_cores": round(max(busy_s - tree_s - own_s, 0.0) / wall, 2),
            "steal_cores": round((steal_after - self._machine_before[1]) / wall, 2),
        }

    def to_json(self) -> dict[str, float]:
        """Peaks in MiB, how many processes the tree held at most, and the CPU accounts."""
        return {
            "peak_rss_mib": round(self.peak_rss_bytes / 2**20, 1),
            "peak_pss_mib": round(self.peak_pss_bytes / 2**20, 1),
            "peak_processes": self.peak_processes,
            "samples": self.samples,
            "remote_addresses_seen": sorted(self.peer_addresses - _own_addresses()),
            "own_interface_addresses_seen": sorted(self.peer_addresses & _own_addresses()),
            **self._figures,
        }


def subprocess_env() -> dict[str, str]:
    """This environment for a benchmark's child process, with telemetry off and 1 BLAS thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"})
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return env


BUSY_CORES = 0.2
"""Background load (cores used by other processes) above which a timed run is repeated."""


def run_job_process(
    script: str,
    job_path: Path,
    *,
    python: Path | None = None,
    env: dict[str, str] | None = None,
    attempts: int = 3,
) -> dict[str, Any]:
    """Run ``bench/<script> <job_path>`` as its own process and measure it from the outside.

    The script prints one JSON line with at least ``job_s``, ``round_end_s`` (seconds from the
    start of the simulation call to the end of each round) and ``central_accuracy`` (per round).
    Added here: ``process_s`` (launch to exit: interpreter, imports, data, job, shutdown),
    ``first_round_end_s``, ``steady_round_s`` (median round after the first), ``final_accuracy``,
    the peak memory and CPU of the process tree, and how busy the rest of the machine was.

    Each attempt first waits until the machine is quiet (:func:`wait_until_quiet`); if other
    processes still used more than :data:`BUSY_CORES` during the run, it is run again, up to
    ``attempts`` times, and the least disturbed run is kept (``attempts_made``, ``attempt_kept``).

    Raises
    ------
    RuntimeError
        With the end of the child's stderr if it fails.
    """
    best: dict[str, Any] | None = None
    made = 0
    for made in range(1, attempts + 1):  # `made` is reported after the loop
        figures = _run_once(script, job_path, python=python, env=env)
        figures["attempt_kept"] = made
        if best is None or figures["background_cores"] < best["background_cores"]:
            best = figures
        if figures["background_cores"] <= BUSY_CORES:
            break
    assert best is not None  # attempts >= 1
    best["attempts_made"] = made
    return best


def _run_once(
    script: str, job_path: Path, *, python: Path | None, env: dict[str, str] | None
) -> dict[str, Any]:
    """One measured run of a job script (see :func:`run_job_process`)."""
    quiet = wait_until_quiet()
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(python or sys.executable), str(BENCH_DIR / script), str(job_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or subprocess_env(),
        cwd=BENCH_DIR,
    )
    monitor = TreeMonitor(process.pid).start()
    stdout, stderr = process.communicate()
    process_s = time.perf_counter() - start
    monitor.stop()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed ({process.returncode}):\n{stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    ends = figures["round_end_s"]
    steps = [b - a for a, b in itertools.pairwise(ends)]
    figures["process_s"] = process_s
    figures["first_round_end_s"] = ends[0]
    figures["steady_round_s"] = statistics.median(steps) if steps else ends[0]
    figures["final_accuracy"] = figures["central_accuracy"][-1]
    figures.update(monitor.to_json())
    figures.update(quiet)
    return figures


def median_of_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Repeated runs of one configuration as one: every scalar figure is the median over runs.

    Per-round lists (curves, round ends) come from the run with the median ``job_s``; the range of
    the main figures goes under ``spread`` and every run under ``repeats``.
    """
    ordered = sorted(runs, key=lambda run: float(run["job_s"]))
    merged = dict(ordered[(len(ordered) - 1) // 2])
    for key, value in list(merged.items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = statistics.median(float(run[key]) for run in runs)
    spread_keys = ("process_s", "job_s", "first_round_end_s", "steady_round_s", "peak_rss_mib")
    merged["spread"] = {
        key: [min(float(run[key]) for run in runs), max(float(run[key]) for run in runs)]
        for key in spread_keys
        if key in merged
    }
    for key in ("remote_addresses_seen", "own_interface_addresses_seen"):
        merged[key] = sorted({address for run in runs for address in run.get(key, [])})
    merged["repeats"] = [{k: v for k, v in run.items() if not isinstance(v, list)} for run in runs]
    return merged
