"""Write ``hospital_sample.csv``: 200 breast-cancer records spread over three hospitals.

A small, realistic-looking file for the docs and tests: tabular features, a text label
(``diagnosis``) and a column saying which site holds each row (``hospital``), so that it can be
split naturally, one node per hospital.

Recipe (deterministic; rerun it and the file is byte-for-byte the same for a given NumPy):

1. Load scikit-learn's bundled Wisconsin diagnostic breast cancer data (569 rows, no download).
2. Keep the ten ``mean ...`` features, renamed to snake case (``mean radius`` -> ``mean_radius``).
3. Draw 200 distinct rows with ``numpy.random.default_rng(SEED)`` and keep them in source order.
4. ``diagnosis`` is the class name, ``"malignant"`` or ``"benign"``.
5. Assign each row a hospital with the same generator, skewed by diagnosis so the sites differ
   as real ones do: malignant rows go to ``north``/``central``/``south`` with probabilities
   0.6/0.3/0.1, benign rows with 0.2/0.3/0.5.
6. Write features with 6 significant digits, columns ``hospital, <features>, diagnosis``.

Run ``python examples/data/make_hospital_sample.py [output.csv]``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

SEED = 20240501
NUM_ROWS = 200
HOSPITALS = ("north", "central", "south")
# P(hospital | diagnosis), rows in the order of scikit-learn's target_names: malignant, benign.
HOSPITAL_PROBABILITIES = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
DEFAULT_OUTPUT = Path(__file__).with_name("hospital_sample.csv")


def make_rows() -> tuple[list[str], list[list[str]]]:
    """Return the header and the data rows of the sample, as text cells."""
    bunch = load_breast_cancer()
    keep = [i for i, name in enumerate(bunch.feature_names) if str(name).startswith("mean ")]
    feature_names = [str(bunch.feature_names[i]).replace(" ", "_") for i in keep]
    rng = np.random.default_rng(SEED)
    rows = np.sort(rng.choice(bunch.data.shape[0], size=NUM_ROWS, replace=False))  # (200,)
    header = ["hospital", *feature_names, "diagnosis"]
    records = []
    for row in rows:
        target = int(bunch.target[row])
        hospital = HOSPITALS[int(rng.choice(len(HOSPITALS), p=HOSPITAL_PROBABILITIES[target]))]
        values = [f"{float(v):.6g}" for v in bunch.data[row, keep]]
        records.append([hospital, *values, str(bunch.target_names[target])])
    return header, records


def main(output: Path) -> None:
    """Write the sample CSV to ``output``."""
    header, records = make_rows()
    with output.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(records)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
