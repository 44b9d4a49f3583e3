"""check_file: every problem of a site's file against a model's shape, each with what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sovereign_ai.data import FileCheck, check_file, load_file
from sovereign_ai.errors import ConfigError

WriteText = Callable[[str, str], Path]  # the write_text fixture of conftest.py

EXPORT = (
    "PatientID;Site;Age;Weight;Diagnosis\n"
    "P-017;north;61;70.5;malignant\n"
    "P-018;north;45;80;benign\n"
    "P-019;south;50;65.25;benign\n"
)
FITS = {"label": "Diagnosis", "num_features": 2, "num_classes": 2}


def problems(result: FileCheck) -> list[str]:
    return [p.problem for p in result.problems]


def test_a_fitting_file_is_summarised(write_text: WriteText) -> None:
    path = write_text("export.csv", EXPORT)
    result = check_file(path, ignore_columns=["PatientID", "Site"], **FITS)  # type: ignore[arg-type]
    assert result.fits
    assert result.problems == ()
    assert result.num_rows == 3
    assert result.delimiter == ";"
    assert result.feature_names == ("Age", "Weight")
    assert result.class_names == ("benign", "malignant")
    assert result.class_counts == (2, 1)
    assert "labels are numbered in sorted order (benign=0, malignant=1)" in result.notes[0]
    # What fits loads, the same way.
    dataset = load_file(path, label="Diagnosis", ignore_columns=["PatientID", "Site"])
    assert dataset.feature_names == result.feature_names


def test_every_problem_is_reported_at_once_with_a_fix(write_text: WriteText) -> None:
    text = EXPORT + "P-020;north;NA;70,5;maybe\nP-021;north;;71;Benign\n"
    result = check_file(
        write_text("export.csv", text),
        label="Diagnosis",
        num_features=2,
        num_classes=2,
        classes=["benign", "malignant"],
    )
    assert not result.fits
    found = problems(result)
    assert found == [
        "Column 'PatientID' holds text, not numbers ('P-017' in row 1 (line 2)).",
        "Column 'Site' holds text, not numbers ('north' in row 1 (line 2)).",
        "Column 'Age' has 2 missing value(s) (row 4 (line 5), row 5 (line 6)).",
        "Column 'Weight' writes decimals with a comma ('70,5' in row 4 (line 5); 1 cell(s)).",
        "Label 'maybe' in column 'Diagnosis' (1 row(s), first row 4 (line 5)) is not one of the "
        "federation's classes ('benign', 'malignant').",
        "Label 'Benign' in column 'Diagnosis' (1 row(s), first row 5 (line 6)) is not one of the "
        "federation's classes ('benign', 'malignant').",
        "The file has 4 feature column(s); the job's model takes num_features = 2.",
    ]
    fixes = [p.fix for p in result.problems]
    assert "--ignore-columns PatientID" in fixes[0]
    assert "--ignore-columns Site" in fixes[1]
    assert "Fill them in, or remove those rows" in fixes[2]
    assert "'.' as the decimal mark" in fixes[3]
    assert not fixes[4].startswith("Did you mean")
    assert fixes[5].startswith("Did you mean 'benign'?")
    assert "--ignore-columns" in fixes[6]
    assert result.class_counts == (2, 1)


def test_a_file_of_the_wrong_width_is_named(write_text: WriteText) -> None:
    path = write_text("export.csv", EXPORT)
    result = check_file(path, label="Diagnosis", num_features=3, num_classes=2, features=["Age"])
    assert problems(result) == [
        "The file has 1 feature column(s); the job's model takes num_features = 3."
    ]
    assert "every feature column the federation agreed on" in result.problems[0].fix


def test_fewer_classes_than_the_job_suggest_the_class_list(write_text: WriteText) -> None:
    result = check_file(
        write_text("t.csv", "a,y\n1,x\n2,z\n"), label="y", num_features=1, num_classes=3
    )
    assert problems(result) == [
        "The label column holds 2 classes ('x', 'z'); the job's model has num_classes = 3."
    ]
    assert "pass the full list in the federation's order with --classes" in result.problems[0].fix


def test_classes_differing_only_in_case_are_pointed_out(write_text: WriteText) -> None:
    text = "a,y\n1,benign\n2,Benign\n3,malignant\n"
    result = check_file(write_text("t.csv", text), label="y", num_features=1, num_classes=2)
    assert problems(result) == [
        "The label column holds 3 classes ('Benign', 'benign', 'malignant'); the job's model has "
        "num_classes = 2."
    ]
    assert "'Benign', 'benign' differ only in case" in result.problems[0].fix


def test_a_class_list_of_the_wrong_length_is_named(write_text: WriteText) -> None:
    result = check_file(
        write_text("t.csv", "a,y\n1,x\n2,z\n"),
        label="y",
        num_features=1,
        num_classes=2,
        classes=["x", "z", "w"],
    )
    assert problems(result) == [
        "The class list names 3 classes ('x', 'z', 'w'); the job's model has num_classes = 2."
    ]
    assert result.class_counts == (1, 1, 0)


def test_a_site_with_a_single_class_needs_the_class_list(write_text: WriteText) -> None:
    path = write_text("t.csv", "a,y\n1,x\n2,x\n")
    result = check_file(path, label="y", num_features=1, num_classes=2)
    assert "holds only one class ('x')" in problems(result)[0]
    assert "--classes" in result.problems[0].fix
    assert check_file(path, label="y", num_features=1, num_classes=2, classes=["x", "z"]).fits


def test_a_column_of_mixed_numbers_and_text_lists_its_rows(write_text: WriteText) -> None:
    rows = "".join(f"{'abc' if i % 2 else i};{i % 2}\n" for i in range(14))
    result = check_file(
        write_text("t.csv", "a;y\n" + rows), label="y", num_features=1, num_classes=2
    )
    assert problems(result) == [
        "Column 'a' has 7 cell(s) that are not numbers ('abc' in row 2 (line 3), row 4 (line 5), "
        "row 6 (line 7), row 8 (line 9), row 10 (line 11) and 2 more)."
    ]


def test_values_beyond_float32_and_missing_labels_are_named(write_text: WriteText) -> None:
    result = check_file(
        write_text("t.csv", "a,y\n1e39,x\n2,\n3,z\n"), label="y", num_features=1, num_classes=2
    )
    assert problems(result) == [
        "Column 'a' has 1 value(s) that are infinite or too large for float32 (row 1 (line 2)).",
        "Label column 'y' has 1 missing label(s) (row 2 (line 3)).",
    ]


def test_a_label_or_column_differing_in_case_is_one_problem_with_the_hint(
    write_text: WriteText,
) -> None:
    result = check_file(write_text("export.csv", EXPORT), **{**FITS, "label": "diagnosis"})  # type: ignore[arg-type]
    assert len(result.problems) == 1
    assert "has no label column 'diagnosis' (did you mean 'Diagnosis'?" in problems(result)[0]
    assert result.num_rows == 3  # the file was read
    assert result.delimiter == ";"


def test_an_ambiguous_delimiter_is_one_problem_with_the_option_to_use(
    write_text: WriteText,
) -> None:
    result = check_file(write_text("t.csv", "a;b,y\n1;2,0\n3;4,1\n"), **FITS)  # type: ignore[arg-type]
    assert len(result.problems) == 1
    assert "the delimiter is ambiguous" in problems(result)[0]
    assert "--delimiter" in result.problems[0].fix
    assert result.num_rows == 0


def test_an_id_column_of_numbers_is_noted(write_text: WriteText) -> None:
    rows = "".join(f"{1000 + i},{i % 7}.5,{'xz'[i % 2]}\n" for i in range(25))
    result = check_file(
        write_text("t.csv", "patient_id,a,y\n" + rows), label="y", num_features=2, num_classes=2
    )
    assert result.fits  # an ID of numbers loads; only the owner knows it is not a feature
    assert any(note.startswith("Column 'patient_id' is named like an ID") for note in result.notes)
    unnamed = check_file(
        write_text("u.csv", "record,a,y\n" + rows), label="y", num_features=2, num_classes=2
    )
    assert any("holds a different whole number in every row" in n for n in unnamed.notes)


def test_parquet_is_scanned_and_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = {
        "id": ["a", "b", "c"],
        "age": pa.array([1.0, None, 3.0]),
        "bmi": ["1.5", "2.5", "3.5"],  # numbers stored as text: the loader refuses the type
        "y": ["x", "z", "x"],
    }
    pq.write_table(pa.table(table), path)
    result = check_file(path, label="y", num_features=3, num_classes=2)
    assert problems(result) == [
        "Column 'id' holds text, not numbers ('a' in row 1).",
        "Column 'age' has 1 missing value(s) (row 2).",
    ]
    typed = check_file(path, label="y", num_features=1, num_classes=2, features=["bmi"])
    assert problems(typed) == [
        f"{path}: feature column 'bmi' must have a numeric type; got string instead."
    ]


def test_npz_is_checked_by_loading(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, x=np.ones((4, 3)), y=np.array([0, 1, 1, 0]))
    result = check_file(path, label=None, num_features=3, num_classes=2)
    assert result.fits
    assert result.class_counts == (2, 2)
    wide = check_file(path, label=None, num_features=2, num_classes=2)
    assert problems(wide) == [
        "The file has 3 feature column(s); the job's model takes num_features = 2."
    ]


def test_a_missing_file_and_an_unknown_suffix_are_problems(tmp_path: Path) -> None:
    missing = check_file(tmp_path / "nope.csv", **FITS)  # type: ignore[arg-type]
    assert problems(missing) == [f"{tmp_path / 'nope.csv'}: no such file."]
    (tmp_path / "t.xlsx").write_bytes(b"")
    assert (
        "unrecognised file suffix '.xlsx'"
        in problems(
            check_file(tmp_path / "t.xlsx", **FITS)  # type: ignore[arg-type]
        )[0]
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_features": 0}, "'num_features' parameter of check_file"),
        ({"num_classes": True}, "'num_classes' parameter of check_file"),
        ({"classes": ["x"]}, "'classes' parameter of check_file"),
        ({"classes": ["x", "x"]}, "must name each class once"),
        ({"delimiter": "ab"}, "'delimiter' parameter of check_file"),
        ({"label": None}, "'label' parameter of check_file"),
        ({"features": ["Age"], "ignore_columns": ["Site"]}, "must be None when 'features'"),
    ],
)
def test_invalid_options_raise(
    write_text: WriteText, kwargs: dict[str, object], needle: str
) -> None:
    path = write_text("export.csv", EXPORT)
    with pytest.raises(ConfigError, match=needle):
        check_file(path, **{**FITS, **kwargs})  # type: ignore[arg-type]
