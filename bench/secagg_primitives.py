"""Benchmark: what the secure-aggregation primitives cost, against numpy baselines in the same run.

Run::

    .venv/bin/python bench/secagg_primitives.py            # median of 15 (masks) / 5 (Shamir) runs
    .venv/bin/python bench/secagg_primitives.py --quick    # fewer repeats

1. **Mask generation** (``secagg.generate_mask``, AES-256-CTR, ``b = 62``) for 100k and 1M
   elements, against numpy's own ``np.add`` of two ``uint64`` vectors of the same length (the cost
   of applying a mask once it exists) and a plain ``copy`` of the vector.
2. **Shamir share + reconstruct** of one 32-byte secret (``secagg.split_secret`` then
   ``secagg.reconstruct_secret`` from ``t`` shares) at ``n = 100`` and ``n = 500``, ``t = n / 2``,
   against generating one 100k-element mask (what a node does per neighbour anyway). When
   pycryptodome is importable (e.g. ``PYTHONPATH=/tmp/pycryptodome``; it is not a dependency), its
   GF(2**128) ``Shamir`` is measured on the same secret as two 16-byte halves.

Reported: the median seconds of each and the ratio to its baseline; written to
``bench/results/secagg_primitives.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rich.table import Table

from _harness import command_line, console, ratio, result_name, write_result
from sovereign_ai.secagg import generate_mask, reconstruct_secret, split_secret

MODULUS_BITS = 62


def median_seconds(work: Callable[[], object], *, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one uncounted warm-up."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_masks(repeats: int) -> list[dict[str, Any]]:
    rows = []
    seed = os.urandom(32)
    for length in (100_000, 1_000_000):
        vector = np.arange(length, dtype=np.uint64)
        add_s = median_seconds(lambda v=vector: np.add(v, v), repeats=repeats)
        copy_s = median_seconds(lambda v=vector: v.copy(), repeats=repeats)
        mask_s = median_seconds(
            lambda n=length: generate_mask(seed, length=n, modulus_bits=MODULUS_BITS),
            repeats=repeats,
        )
        rows.append(
            {
                "elements": length,
                "generate_mask_s": mask_s,
                "np_add_s": add_s,
                "copy_s": copy_s,
                "ratio_to_np_add": ratio(mask_s, add_s),
                "ratio_to_copy": ratio(mask_s, copy_s),
                "elements_per_s": length / mask_s,
            }
        )
    return rows


def pycryptodome_split_combine(secret: bytes, share_count: int, threshold: int) -> None:
    from Crypto.Protocol.SecretSharing import Shamir

    halves = [secret[:16], secret[16:]]
    shares = [Shamir.split(threshold, share_count, half) for half in halves]
    recovered = b"".join(Shamir.combine(part[:threshold]) for part in shares)
    if recovered != secret:
        raise RuntimeError("pycryptodome did not reconstruct the secret")


def bench_shamir(repeats: int) -> list[dict[str, Any]]:
    try:
        import Crypto.Protocol.SecretSharing  # noqa: F401

        has_pycryptodome = True
    except ImportError:
        has_pycryptodome = False
    seed = os.urandom(32)
    baseline_s = median_seconds(
        lambda: generate_mask(seed, length=100_000, modulus_bits=MODULUS_BITS), repeats=repeats
    )
    rows = []
    secret = os.urandom(32)
    for share_count in (100, 500):
        threshold = share_count // 2

        def ours(n: int = share_count, t: int = threshold) -> None:
            shares = split_secret(secret, threshold=t, share_count=n)
            if reconstruct_secret(shares[-t:], threshold=t) != secret:
                raise RuntimeError("secagg did not reconstruct the secret")

        ours_s = median_seconds(ours, repeats=repeats)
        row: dict[str, Any] = {
            "n": share_count,
            "t": threshold,
            "split_and_reconstruct_s": ours_s,
            "mask_100k_s": baseline_s,
            "ratio_to_mask_100k": ratio(ours_s, baseline_s),
        }
        if has_pycryptodome:
            theirs_s = median_seconds(
                lambda n=share_count, t=threshold: pycryptodome_split_combine(secret, n, t),
                repeats=max(1, repeats // 5),
            )
            row["pycryptodome_s"] = theirs_s
            row["pycryptodome_over_ours"] = ratio(theirs_s, ours_s)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    arguments = parser.parse_args(argv)
    mask_repeats, shamir_repeats = (5, 2) if arguments.quick else (15, 5)
    out = console()

    masks = bench_masks(mask_repeats)
    table = Table(title=f"Mask generation (AES-256-CTR, modulus 2**{MODULUS_BITS})")
    for column in ("elements", "generate_mask", "np.add", "copy", "× np.add", "× copy"):
        table.add_column(column, justify="right")
    for row in masks:
        table.add_row(
            f"{row['elements']:,}",
            f"{row['generate_mask_s'] * 1e3:.2f} ms",
            f"{row['np_add_s'] * 1e3:.2f} ms",
            f"{row['copy_s'] * 1e3:.2f} ms",
            f"{row['ratio_to_np_add']:.1f}",
            f"{row['ratio_to_copy']:.1f}",
        )
    out.print(table)

    shamir = bench_shamir(shamir_repeats)
    table = Table(title="Shamir share + reconstruct of one 32-byte secret, t = n/2")
    for column in ("n", "t", "secagg", "× one 100k mask", "pycryptodome", "pycryptodome / ours"):
        table.add_column(column, justify="right")
    for row in shamir:
        table.add_row(
            str(row["n"]),
            str(row["t"]),
            f"{row['split_and_reconstruct_s'] * 1e3:.1f} ms",
            f"{row['ratio_to_mask_100k']:.1f}",
            f"{row['pycryptodome_s'] * 1e3:.0f} ms" if "pycryptodome_s" in row else "not installed",
            f"{row['pycryptodome_over_ours']:.0f}×" if "pycryptodome_over_ours" in row else "-",
        )
    out.print(table)

    path = write_result(
        result_name("secagg_primitives", quick=arguments.quick),
        {
            "command": command_line("secagg_primitives.py", argv),
            "modulus_bits": MODULUS_BITS,
            "masks": masks,
            "shamir": shamir,
        },
    )
    out.print(f"Written to {path}")


if __name__ == "__main__":
    main()
