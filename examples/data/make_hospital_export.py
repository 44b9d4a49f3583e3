"""Write ``hospital_export.csv``: one site's rows as a hospital system exports them.

The rows of the ``north`` hospital in ``hospital_sample.csv`` (see ``make_hospital_sample.py``),
laid out the way exports from hospital information systems often arrive: fields separated by ``;``,
a ``patient_id`` column and a ``site`` column in front of the measurements. Neither of those two
is a feature; a node leaves them out with ``--ignore-columns patient_id,site`` and finds the
delimiter by itself::

    sovereign node check --data examples/data/hospital_export.csv --job JOB.toml \\
        --label diagnosis --ignore-columns patient_id,site

Recipe (deterministic): take the ``north`` rows of the sample in order; ``patient_id`` counts up
from 100001; ``site`` is ``north``; the measurements and ``diagnosis`` are copied as they are.

Run ``python examples/data/make_hospital_export.py [output.csv]``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from make_hospital_sample import make_rows

SITE = "north"
FIRST_PATIENT_ID = 100001
DEFAULT_OUTPUT = Path(__file__).with_name("hospital_export.csv")


def main(output: Path) -> None:
    """Write the export to ``output``."""
    header, records = make_rows()
    site_rows = [record[1:] for record in records if record[0] == SITE]
    with output.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(["patient_id", "site", *header[1:]])
        for number, row in enumerate(site_rows):
            writer.writerow([str(FIRST_PATIENT_ID + number), SITE, *row])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT)
