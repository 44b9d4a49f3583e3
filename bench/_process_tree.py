"""The processes a deployment benchmark starts, every process they start, and stopping them all.

A deployment run starts servers that start processes of their own: Flower's SuperLink and each
SuperNode start a SuperExec, which starts one ``flwr-serverapp`` or ``flwr-clientapp`` process per
task. :class:`ProcessTree` remembers every descendant it has seen, and :meth:`ProcessTree.stop`
stops all of them, by id, with SIGTERM and then SIGKILL: at the end of a run, on failure and on
Ctrl-C. psutil refuses to signal a process id that has been reused by another process since it was
seen. With :func:`become_subreaper`, a process whose parent died is re-parented to this one rather
than to init, so it stays in view.

:class:`ChildrenMonitor` is the harness's :class:`~_harness.TreeMonitor` over every process this
benchmark started (the driver itself left out), since a side here is not one process tree, with
CPU time taken from the kernel's accounts instead of samples.
"""

from __future__ import annotations

import ctypes
import os
import resource
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from _harness import TreeMonitor

__all__ = [
    "ChildrenMonitor",
    "ProcessTree",
    "become_subreaper",
    "reap_orphans",
    "wait_for_port",
]


class ProcessTree:
    """Processes started with :meth:`spawn` and all their descendants, stopped together."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self._seen: dict[int, psutil.Process] = {}
        self._cmdlines: dict[int, str] = {}

    def spawn(
        self, command: Sequence[str], *, log: Path, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` with its output appended to ``log``."""
        with open(log, "ab") as handle:
            process = subprocess.Popen(
                list(command), stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd
            )
        self.started.append(process)
        return process

    def remember(self) -> None:
        """Note every live descendant of this process (orphans come back to it: see
        :func:`become_subreaper`), with its command line."""
        try:
            descendants = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for process in descendants:
            if process.pid in self._seen:
                continue
            self._seen[process.pid] = process
            try:
                self._cmdlines[process.pid] = " ".join(process.cmdline())
            except psutil.Error:
                self._cmdlines[process.pid] = ""

    def has_exited(self, marker: str) -> bool:
        """Whether a descendant whose command line contains ``marker`` was seen and has ended."""
        for pid, process in self._seen.items():
            if marker not in self._cmdlines.get(pid, ""):
                continue
            try:
                if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.Error:
                return True
        return False

    def stop(self, *, grace_s: float = 5.0) -> None:
        """SIGTERM every process still running, then SIGKILL those left after ``grace_s``."""
        self.remember()
        targets: list[psutil.Process] = []
        for process in self.started:
            if process.poll() is None:
                try:
                    targets.append(psutil.Process(process.pid))
                except psutil.Error:
                    continue
        targets.extend(self._seen.values())
        alive = []
        for process in targets:
            try:
                if process.is_running():
                    process.terminate()  # psutil refuses if the pid now names another process
                    alive.append(process)
            except psutil.Error:
                continue
        _, left = psutil.wait_procs(alive, timeout=grace_s)
        for process in left:
            try:
                process.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(left, timeout=grace_s)
        for process in self.started:  # reap our own children
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
        reap_orphans()

    def __enter__(self) -> ProcessTree:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ChildrenMonitor(TreeMonitor):
    """:class:`~_harness.TreeMonitor` over every descendant of this process, not itself.

    Peak memory and process count come from sampling, as in the harness. CPU does not: a Flower
    run starts a few-second ``flwr-clientapp`` process per message, whose last moments no sampler
    sees. Here the kernel counts it: a process's CPU goes to its parent's account of reaped
    children when its parent waits for it, and to this process's once this process has reaped
    every process it started (:meth:`ProcessTree.stop`, with :func:`become_subreaper` catching
    the orphans). So :meth:`stop` must come after the run's processes have all been reaped;
    ``tree_cpu_s`` is then exact, and so is ``background_cores`` (the rest of the machine).
    """

    def __init__(self, *, interval_s: float = 0.25, pss_every: int = 8) -> None:
        super().__init__(os.getpid(), interval_s=interval_s, pss_every=pss_every)
        self._clock = (0.0, 0.0, 0.0, 0.0)  # wall, machine busy, own CPU, reaped children's CPU
        self._kind_by_pid: dict[int, str] = {}

    def _tree(self) -> list[psutil.Process]:
        try:
            processes = list(self.root.children(recursive=True))
        except psutil.Error:
            return []
        for process in processes:
            if process.pid not in self._kind_by_pid:
                try:
                    self._kind_by_pid[process.pid] = process_kind(process.cmdline())
                except psutil.Error:
                    continue
        return processes

    def cpu_by_kind(self) -> dict[str, dict[str, float]]:
        """Sampled CPU-seconds and process count per kind of process (see :func:`process_kind`).

        From samples, so a process loses its last ``interval_s`` of CPU and one that lived less
        than ``interval_s`` may be missing; the total is within a few per cent of ``tree_cpu_s``.
        """
        kinds: dict[str, dict[str, float]] = {}
        for pid, cpu_s in self._cpu_by_pid.items():
            kind = self._kind_by_pid.get(pid, "?")
            entry = kinds.setdefault(kind, {"cpu_s": 0.0, "processes": 0})
            entry["cpu_s"] = round(entry["cpu_s"] + cpu_s, 2)
            entry["processes"] += 1
        return dict(sorted(kinds.items(), key=lambda item: -item[1]["cpu_s"]))

    @staticmethod
    def _readings() -> tuple[float, float, float, float]:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0) + getattr(times, "steal", 0.0)
        own = resource.getrusage(resource.RUSAGE_SELF)
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.perf_counter(),
            sum(times) - idle,
            own.ru_utime + own.ru_stime,
            reaped.ru_utime + reaped.ru_stime,
        )

    def start(self) -> ChildrenMonitor:
        """Start sampling."""
        self._clock = self._readings()
        super().start()
        return self

    def stop(self) -> None:
        """Stop sampling; CPU from the kernel's accounts (every process must be reaped)."""
        super().stop()
        now = self._readings()
        wall, busy, own, tree = (max(b - a, 0.0) for a, b in zip(self._clock, now, strict=True))
        wall = max(wall, 1e-9)
        self._figures.update(
            {
                "tree_cpu_s": round(tree, 2),
                "tree_cores": round(tree / wall, 2),
                "sampled_tree_cpu_s": round(sum(self._cpu_by_pid.values()), 2),
                "cpu_by_kind": self.cpu_by_kind(),
                "background_cores": round(max(busy - tree - own, 0.0) / wall, 2),
            }
        )


def process_kind(cmdline: Sequence[str]) -> str:
    """What a process is, from its command line: the program, or ``python -m``'s module and the
    two arguments after it (``sovereign_ai.cli node start``)."""
    if "-m" in cmdline[:-1]:
        at = cmdline.index("-m")
        return " ".join(cmdline[at + 1 : at + 4])
    program = [Path(part).name for part in cmdline[:2]]
    if len(program) == 2 and program[0].startswith("python"):
        return program[1]
    return program[0] if program else "?"


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A SuperExec whose SuperNode was stopped first is re-parented here instead of to init, so that
    :class:`ProcessTree` still sees it and its CPU is counted when it is reaped. Returns whether the
    call succeeded (elsewhere than on Linux it does not, and orphans' CPU goes uncounted).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1, 0, 0, 0)) == 0  # 36: PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Wait for every child of this process that has exited (orphans adopted as subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children at all
        if pid == 0:
            return  # children left, all still running


def wait_for_port(port: int, *, timeout_s: float, alive: subprocess.Popen[bytes]) -> float:
    """Block until something accepts TCP connections on 127.0.0.1:``port``; return when.

    Raises
    ------
    RuntimeError
        If ``alive`` exits first or ``timeout_s`` passes.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"The server exited with status {alive.returncode} before port "
                               f"{port} opened.")  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.time()
        time.sleep(0.05)
    raise RuntimeError(f"Nothing listened on 127.0.0.1:{port} within {timeout_s:g} s.")
