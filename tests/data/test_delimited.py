"""Real sites' exports: delimiters, ID and site columns, names that differ only in case."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sovereign_ai.data import load_csv, load_file, load_npz, load_parquet
from sovereign_ai.errors import ConfigError, DataError

WriteText = Callable[[str, str], Path]  # the write_text fixture of conftest.py

EXAMPLES = Path(__file__).parents[2] / "examples" / "data"

# A hospital export: ';' between fields, an ID and a site column before the measurements.
EXPORT = (
    "PatientID;Site;Age;Weight;Diagnosis\n"
    "100017;north;61;70.5;malignant\n"
    "100018;north;45;80;benign\n"
    "100019;south;50;65.25;benign\n"
)


def refusal(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# Delimiters --------------------------------------------------------------------------------------
def test_semicolon_export_loads_with_its_id_and_site_columns_ignored(
    write_text: WriteText,
) -> None:
    path = write_text("export.csv", EXPORT)
    dataset = load_csv(path, label="Diagnosis", ignore_columns=["PatientID", "Site"])
    assert dataset.feature_names == ("Age", "Weight")
    assert dataset.features.tolist() == [[61.0, 70.5], [45.0, 80.0], [50.0, 65.25]]
    assert dataset.class_names == ("benign", "malignant")
    assert dataset.labels.tolist() == [1, 0, 0]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_common_delimiter_is_detected(write_text: WriteText, delimiter: str) -> None:
    text = EXPORT.replace(";", delimiter)
    dataset = load_file(write_text("t.csv", text), label="Diagnosis", ignore_columns=["Site"])
    assert dataset.feature_names == ("PatientID", "Age", "Weight")
    assert dataset.features[:, 2].tolist() == [70.5, 80.0, 65.25]


def test_an_explicit_delimiter_is_used_as_given(write_text: WriteText) -> None:
    # Split by ';' it is two columns; by ',' it is two others: only the caller knows which.
    path = write_text("t.csv", "a;b,y\n1;2,0\n3;4,1\n")
    by_semicolon = load_csv(path, label="b,y", delimiter=";")
    assert by_semicolon.feature_names == ("a",)
    assert by_semicolon.features[:, 0].tolist() == [1.0, 3.0]
    assert by_semicolon.class_names == ("2,0", "4,1")
    with pytest.raises(DataError, match="column 'a;b', row 1 \\(line 2\\): expected a number"):
        load_csv(path, label="y", delimiter=",")


def test_a_tab_separated_file_with_a_tsv_suffix_loads(write_text: WriteText) -> None:
    dataset = load_file(write_text("t.tsv", "a\tb\ty\n1\t2\tx\n3\t4\tz\n"), label="y")
    assert dataset.features.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_quoted_cells_may_hold_the_other_delimiters(write_text: WriteText) -> None:
    text = 'a;note;y\n1;"left, upper";x\n2;"right, lower";z\n'
    dataset = load_csv(write_text("t.csv", text), label="y", group="note")
    assert dataset.groups is not None
    assert dataset.groups.tolist() == ["left, upper", "right, lower"]


def test_an_ambiguous_file_is_refused_with_a_delimiter_hint(write_text: WriteText) -> None:
    path = write_text("t.csv", "a;b,y\n1;2,0\n3;4,1\n")
    message = refusal(load_csv, path, label="y")
    assert message.startswith(f"{path}: the delimiter is ambiguous")
    assert "',' (2 columns) or ';' (2 columns)" in message
    assert "(on the command line: --delimiter ',' or --delimiter ';')" in message


def test_a_single_column_file_is_refused_with_a_hint(write_text: WriteText) -> None:
    path = write_text("t.csv", "a:b:y\n1:2:0\n3:4:1\n")
    message = refusal(load_csv, path, label="y")
    assert "reads as a single column with each of the delimiters" in message
    assert "first line: 'a:b:y'" in message
    assert "--delimiter" in message
    assert load_csv(path, label="y", delimiter=":").feature_names == ("a", "b")


def test_a_wrong_explicit_delimiter_names_the_one_that_fits(write_text: WriteText) -> None:
    path = write_text("export.csv", EXPORT)
    message = refusal(load_csv, path, label="Diagnosis", delimiter=",")
    assert "reads as a single column with the delimiter ','" in message
    assert (
        "the file looks ';'-delimited: pass delimiter=';' (on the command line: --delimiter ';')"
        in message
    )


def test_decimal_commas_in_a_semicolon_file_are_refused_by_cell(write_text: WriteText) -> None:
    path = write_text("t.csv", "a;b;y\n1,5;2;x\n2,5;3;z\n")
    message = refusal(load_csv, path, label="y")
    assert "column 'a', row 1 (line 2): expected a number; got '1,5'" in message
    assert message.endswith("(not a number); write decimals with '.', as in 70.5.")


def test_a_column_of_text_is_refused_with_the_option_to_leave_it_out(
    write_text: WriteText,
) -> None:
    message = refusal(load_csv, write_text("export.csv", EXPORT), label="Diagnosis")
    assert "column 'Site', row 1 (line 2): expected a number; got 'north' instead" in message
    assert "the column holds no numbers at all" in message
    assert message.endswith("(on the command line: --ignore-columns Site).")


def test_detection_reads_only_the_first_lines_and_rows_past_them_are_still_checked(
    write_text: WriteText,
) -> None:
    rows = "".join(f"{i};{i * 2};{i % 2}\n" for i in range(9000))  # about 110 kB
    path = write_text("big.csv", "a;b;y\n" + rows + "1;2;3;4\n")
    message = refusal(load_csv, path, label="y")
    assert "row 9001 (line 9002): expected 3 fields as in the header; got 4" in message


@pytest.mark.parametrize("bad", ["", ";;", "a", "1", '"', "\n", " ", ".", 59])
def test_an_invalid_delimiter_option_is_refused(write_text: WriteText, bad: object) -> None:
    path = write_text("export.csv", EXPORT)
    with pytest.raises(ConfigError, match="The 'delimiter' parameter of load_csv must be one"):
        load_csv(path, label="Diagnosis", delimiter=bad)  # type: ignore[arg-type]


def test_the_delimiter_option_is_for_csv_only(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["x", "z"]}), path)
    with pytest.raises(ConfigError, match="applies to CSV files only"):
        load_file(path, label="y", delimiter=";")


# Choosing and ignoring columns -------------------------------------------------------------------
def test_ignored_columns_also_work_for_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = {"id": [7, 8, 9], "site": ["n", "s", "n"], "age": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    pq.write_table(pa.table(table), path)
    dataset = load_parquet(path, label="y", ignore_columns=["id", "site"])
    assert dataset.feature_names == ("age",)
    assert load_file(path, label="y", ignore_columns=["id", "site"]) == dataset


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ignore_columns": ["Site"], "features": ["Age"]}, "must be None when 'features'"),
        ({"ignore_columns": ["Diagnosis"]}, "must not name the label or group column"),
        ({"ignore_columns": "Site"}, "must be a sequence of column names"),
        ({"ignore_columns": []}, "must name at least one column, each once"),
        ({"ignore_columns": ["Site", "Site"]}, "must name at least one column, each once"),
    ],
)
def test_invalid_ignore_columns_are_refused(
    write_text: WriteText, kwargs: dict[str, object], needle: str
) -> None:
    path = write_text("export.csv", EXPORT)
    with pytest.raises(ConfigError, match=needle):
        load_csv(path, label="Diagnosis", **kwargs)  # type: ignore[arg-type]


def test_ignore_columns_do_not_apply_to_npz(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, x=np.ones((2, 2)), y=np.array([0, 1]))
    with pytest.raises(ConfigError, match="applies to CSV and Parquet files only"):
        load_file(path, ignore_columns=["x"])


def test_ignoring_every_feature_is_refused(write_text: WriteText) -> None:
    path = write_text("export.csv", EXPORT)
    message = refusal(
        load_csv, path, label="Diagnosis", ignore_columns=["PatientID", "Site", "Age", "Weight"]
    )
    assert "has no feature columns besides the label, group and ignored columns" in message


# Names that differ only in case ------------------------------------------------------------------
def test_a_label_differing_in_case_names_the_column_as_spelt(write_text: WriteText) -> None:
    path = write_text("export.csv", EXPORT)
    message = refusal(load_csv, path, label="diagnosis", ignore_columns=["PatientID", "Site"])
    assert message.startswith(
        f"{path}: has no label column 'diagnosis' (did you mean 'Diagnosis'? Names are "
        "case-sensitive);"
    )
    assert message.endswith("the columns are: 'PatientID', 'Site', 'Age', 'Weight', 'Diagnosis'.")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"features": ["age", "Weight"]},
            "has no feature column 'age' (did you mean 'Age'? Names are",
        ),
        (
            {"features": ["age", "weight"]},
            "(missing: 'age', 'weight') (did you mean 'Age' for 'age', 'Weight' for 'weight'?",
        ),
        ({"ignore_columns": ["site"]}, "has no ignored column 'site' (did you mean 'Site'?"),
        ({"ignore_columns": ["PatientId"]}, "did you mean 'PatientID'?"),
        ({"ignore_columns": [" Site"]}, "did you mean 'Site'?"),
        (
            {"ignore_columns": ["Sitee"]},
            "has no ignored column 'Sitee' (did you mean 'Site'?); the",
        ),
    ],
)
def test_column_names_differing_in_case_get_a_hint(
    write_text: WriteText, kwargs: dict[str, object], needle: str
) -> None:
    path = write_text("export.csv", EXPORT)
    assert needle in refusal(load_csv, path, label="Diagnosis", **kwargs)


def test_a_name_unlike_any_column_gets_no_guess(write_text: WriteText) -> None:
    message = refusal(load_csv, write_text("export.csv", EXPORT), label="outcome")
    assert "did you mean" not in message
    assert "has no label column 'outcome'; the columns are:" in message


def test_parquet_and_npz_names_get_the_same_hint(tmp_path: Path) -> None:
    table_path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"Age": [1.0, 2.0], "Diagnosis": ["x", "z"]}), table_path)
    assert "did you mean 'Diagnosis'?" in refusal(load_parquet, table_path, label="diagnosis")
    npz_path = tmp_path / "t.npz"
    np.savez(npz_path, X=np.ones((2, 2)), y=np.array([0, 1]))
    assert "has no array 'x' (did you mean 'X'? Names are case-sensitive);" in refusal(
        load_npz, npz_path
    )


# The example export ------------------------------------------------------------------------------
def test_the_example_export_is_the_north_rows_of_the_sample(tmp_path: Path) -> None:
    export = load_file(
        EXAMPLES / "hospital_export.csv",
        label="diagnosis",
        ignore_columns=["patient_id", "site"],
    )
    sample = load_file(EXAMPLES / "hospital_sample.csv", label="diagnosis", group="hospital")
    assert sample.groups is not None
    north = sample.subset(np.flatnonzero(sample.groups == "north"))
    assert export.feature_names == north.feature_names
    np.testing.assert_array_equal(export.features, north.features)
    assert [export.class_names[k] for k in export.labels] == [
        north.class_names[k] for k in north.labels
    ]
    # The script regenerates it byte for byte.
    out = tmp_path / "export.csv"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make_hospital_export.py"), str(out)],
        check=True,
        cwd=EXAMPLES,
    )
    assert out.read_bytes() == (EXAMPLES / "hospital_export.csv").read_bytes()
    with out.open(newline="") as handle:
        assert next(csv.reader(handle, delimiter=";"))[:2] == ["patient_id", "site"]
