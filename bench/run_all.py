"""Run every benchmark that needs nothing beyond the project's own environment (``make bench``).

Run::

    .venv/bin/python bench/run_all.py                 # accuracy, scale, backends (~10 min)
    .venv/bin/python bench/run_all.py --quick         # their quick variants (~4 min)
    .venv/bin/python bench/run_all.py --with-flower   # also bench/flower_compare.py and
                                                      # bench/flower_deployment.py, which
                                                      # install Flower into bench/.flower-venv

Each benchmark runs as its own process, prints its tables and writes ``bench/results/<name>.json``;
this script then prints the headline figures of all of them. ``docs/benchmarks.md`` explains each
figure and records a run on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _harness import BENCH_DIR, RESULTS_DIR, console, result_name

BENCHMARKS = (
    "accuracy",
    "scale",
    "backends",
    "grpc_transport",
    "answer_checks",
    "secagg_primitives",
    "secagg",
)


def headline(name: str, document: dict[str, Any]) -> list[str]:
    """The figures of one results file that answer the foundation issue, one line each."""
    lines: list[str] = []
    if name == "accuracy":
        for result in document["results"]:
            s = result["summary"]
            lines.append(
                f"{result['case']}: federated {s['federated']['mean']:.3f} vs centralised "
                f"{s['centralised']['mean']:.3f} = {s['ratio_vs_centralised']['mean']:.3f}x "
                f"({s['difference_points']['mean']:+.2f} ± {s['difference_points']['std']:.2f} "
                f"pts; within 1 pt: {'yes' if s['target_met'] else 'no'})"
            )
    elif name == "scale":
        big = next(iter(document["runs"].values()))
        r = document["ratios"]
        lines.append(
            f"{big['nodes']} nodes: {big['rounds_per_minute_steady']:.1f} rounds/min "
            f"({r['rounds_per_minute_vs_plain_loop']:.2f}x a plain torch loop; serial "
            f"{r['rounds_per_minute_serial_vs_plain_loop']:.2f}x), peak RSS "
            f"{big['peak_rss_mib']:.0f} MiB (target < {document['target_peak_rss_mib']} MiB: "
            f"{'met' if document['target_met'] else 'not met'})"
        )
    elif name == "backends":
        for model, configurations in document["results"].items():
            parts = [
                f"{label} {figures['vs_serial']['steady_round']:.2f}x"
                for label, figures in configurations.items()
                if label != "serial"
            ]
            lines.append(f"{model}: steady round vs serial: " + ", ".join(parts))
    elif name == "grpc_transport":
        o, t = document["round_overhead"], document["large_payload"]
        lines.append(
            f"{o['nodes']} nodes: gRPC + mTLS round {o['ratio_grpc_over_in_memory']:.2f}x the "
            f"in-memory round (+{o['overhead_per_round_s'] * 1000:.0f} ms); "
            f"{t['payload_bytes'] / (1 << 20):.0f} MiB model at "
            f"{t['throughput_ratio_vs_raw']:.2f}x raw loopback TCP throughput"
        )
    elif name == "answer_checks":
        for size, figures in document["results"].items():
            lines.append(
                f"{size} parameters, {document['nodes']} nodes: checking every update "
                f"{figures['check_vs_aggregate']:.4f}x the FedAvg aggregation"
            )
    elif name == "secagg":
        for row in document.get("round_overhead", []):
            lines.append(
                f"{row['nodes']} nodes, {row['parameters']:,} parameters: secure round "
                f"{row['round_ratio']:.1f}x the plain round (every node's work on this machine), "
                f"coordinator {row['coordinator_ratio']:.1f}x"
            )
        for row in document.get("bonawitz_setting", []):
            lines.append(
                f"{row['nodes']} nodes, {row['dropout']:.0%} dropout: coordinator "
                f"{row['coordinator_s']:.2f} s, median node {row['node_median_s']:.3f} s, "
                f"exact sum: {'yes' if row['exact'] else 'NO'}"
            )
        if "bytes" in document:
            b = document["bytes"]
            lines.append(
                f"bytes per node: {b['bytes_per_node'] / b['plain_bytes_per_node']:.3f}x the "
                "plain update"
            )
    elif name == "secagg_flower":
        for row in document["flower"]:
            lines.append(
                f"{row['flower']['nodes']} nodes, {row['dropout']:.0%} dropout: Flower's SecAgg+ "
                f"round {row['flower_over_ours']:.1f}x ours"
            )
    elif name == "secagg_primitives":
        for row in document["masks"]:
            lines.append(
                f"mask of {row['elements']:,} elements: {row['ratio_to_np_add']:.1f}x np.add"
            )
    elif name in ("flower_compare", "flower_deployment") and "flower_unavailable" in document:
        lines.append("Flower could not be installed: " + document["flower_unavailable"])
    elif name == "flower_compare":
        for result in document["results"]:
            r = result["ratios_vs_flower"]["ours (threads)"]
            lines.append(
                f"{result['nodes']} nodes: ours/Flower wall {r['job_wall']:.2f}x (job), "
                f"{r['process_wall']:.2f}x (process), peak RSS {r['peak_rss']:.2f}x, accuracy "
                f"{round(r['accuracy_points'], 1) + 0.0:+.1f} pts"
            )
    elif name == "flower_deployment":
        result = document["result"]
        r = result["ratios_vs_flower"]
        lines.append(
            f"{result['nodes']} nodes, {result['rounds']} rounds, processes over TLS: ours/Flower "
            f"wall to the final model {r['wall_to_final_model']:.2f}x (target <= "
            f"{result['target']['wall_ratio_at_most']}x: "
            f"{'met' if result['target']['met'] else 'not met'}), steady round "
            f"{r['steady_round']:.3f}x, accuracy {round(r['accuracy_points'], 1) + 0.0:+.1f} pts"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick variant of each benchmark")
    parser.add_argument(
        "--with-flower",
        action="store_true",
        help="also compare with Flower (installs it into bench/.flower-venv on first use)",
    )
    args = parser.parse_args(argv)
    flower = ["flower_compare", "flower_deployment", "secagg_flower"]
    names = [*BENCHMARKS, *flower] if args.with_flower else list(BENCHMARKS)
    out = console()
    failed = []
    for name in names:
        out.rule(f"[bold]{name}")
        script = "secagg.py --parts 4" if name == "secagg_flower" else f"{name}.py"
        script_name, *options = script.split()
        command = [sys.executable, str(BENCH_DIR / script_name), *options]
        if args.quick:
            command.append("--quick")
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
    out.rule("[bold]Headline figures (ratios against baselines measured in the same run)")
    for name in names:
        path = RESULTS_DIR / f"{result_name(name, quick=args.quick)}.json"
        if name in failed or not path.exists():
            out.print(f"[red]{name}: failed, no results[/]")
            continue
        for line in headline(name, json.loads(path.read_text(encoding="utf-8"))):
            out.print(f"{name}: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
