"""Tests for the file loaders: :mod:`sovereign_ai.data.files` and :mod:`sovereign_ai.data.npz`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sovereign_ai.data import Dataset, load_csv, load_file, load_npz, load_parquet
from sovereign_ai.errors import ConfigError, DataError

WriteText = Callable[[str, str], Path]  # the write_text fixture of conftest.py

GOOD_CSV = (
    "age,weight,site,diagnosis\n"
    "61,70.5,north,malignant\n45,80,south,benign\n50,65.25,north,benign\n"
)


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# CSV: what loads, and how ------------------------------------------------------------------------
def test_csv_loads_features_text_labels_and_groups(write_text: WriteText) -> None:
    path = write_text("clinic.csv", GOOD_CSV)
    dataset = load_csv(path, label="diagnosis", group="site")
    assert dataset.name == "clinic"
    assert dataset.feature_names == ("age", "weight")
    assert dataset.features.tolist() == [[61.0, 70.5], [45.0, 80.0], [50.0, 65.25]]
    assert dataset.class_names == ("benign", "malignant")  # sorted
    assert dataset.labels.tolist() == [1, 0, 0]
    assert dataset.groups is not None
    assert dataset.groups.tolist() == ["north", "south", "north"]


def test_csv_without_group_makes_every_other_column_a_feature(write_text: WriteText) -> None:
    path = write_text("c.csv", "a,y,b\n1,0,2\n3,1,4\n")
    dataset = load_csv(path, label="y")
    assert dataset.feature_names == ("a", "b")
    assert dataset.features.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_csv_features_are_taken_in_the_order_asked(write_text: WriteText) -> None:
    dataset = load_csv(write_text("c.csv", GOOD_CSV), label="diagnosis", features=["weight", "age"])
    assert dataset.feature_names == ("weight", "age")
    assert dataset.features[0].tolist() == [70.5, 61.0]


def test_csv_numeric_labels_keep_sorted_values_as_class_names(write_text: WriteText) -> None:
    path = write_text("c.csv", "x,y\n1,7\n2,3\n3,10\n4,7.0\n")
    dataset = load_csv(path, label="y")
    assert dataset.class_names == ("3", "7", "10")  # numeric order, not text order
    assert dataset.labels.tolist() == [1, 0, 2, 1]


def test_csv_mixed_labels_are_text(write_text: WriteText) -> None:
    dataset = load_csv(write_text("c.csv", "x,y\n1,2\n2,none\n"), label="y")
    assert dataset.class_names == ("2", "none")


def test_csv_tolerates_bom_blank_lines_spaces_and_quotes(write_text: WriteText) -> None:
    text = '\ufeff a , y \n\n 1.5 , "yes, sure"\n\n-2e1,no\n'
    dataset = load_csv(write_text("c.csv", text), label="y")
    assert dataset.feature_names == ("a",)
    assert dataset.features[:, 0].tolist() == [1.5, -20.0]
    assert dataset.class_names == ("no", "yes, sure")


def test_csv_loading_is_pure(write_text: WriteText) -> None:
    path = write_text("c.csv", GOOD_CSV)
    first = load_csv(path, label="diagnosis", group="site")
    assert first == load_csv(str(path), label="diagnosis", group="site")
    assert path.read_text() == GOOD_CSV


# CSV: what is refused, and how the message says where ------------------------------------------
@pytest.mark.parametrize(
    ("text", "column", "row", "detail"),
    [
        ("a,b,y\n1,2,0\n3,abc,1\n", "b", "row 2 (line 3)", "'abc' instead (not a number)"),
        ("a,b,y\n1,2,0\n3,,1\n", "b", "row 2 (line 3)", "'' instead (an empty cell)"),
        ("a,b,y\n1,NaN,0\n3,4,1\n", "b", "row 1 (line 2)", "'NaN' instead (a missing value)"),
        ("a,b,y\n1,2,0\n3,NA,1\n", "b", "row 2 (line 3)", "'NA' instead (a missing value)"),
        ("a,b,y\n1,2,0\n-inf,4,1\n", "a", "row 2 (line 3)", "'-inf' instead (not finite)"),
        (
            "a,b,y\n1,2,0\n1e39,4,1\n",
            "a",
            "row 2 (line 3)",
            "1e+39 instead (not finite in float32)",
        ),
        ("a,b,y\n1,2,0\n1_000,4,1\n", "a", "row 2 (line 3)", "'1_000' instead (not a number)"),
        ("a,b,y\n1,2,0\n\n3,4,\n", "y", "row 2 (line 4)", "'' instead (a missing value)"),
        ("a,b,y\n1,2,0\n3,4,0.5\n", "y", "row 2 (line 3)", "whole-number or text class label"),
        ("a,b,y\n1,2\n3,4,1\n", "c", "row 1 (line 2)", "no value for column 'y'"),
        ("a,b,y\n1,2,0\n3,4,1,5\n", "y", "row 2 (line 3)", "extra value(s) after the last column"),
        ("g,a,y\n1,2,0\n,4,1\n", "g", "row 2 (line 3)", "expected a group name"),
    ],
)
def test_bad_csv_cells_name_file_column_and_row(
    write_text: WriteText, text: str, column: str, row: str, detail: str
) -> None:
    path = write_text("bad.csv", text)
    group = "g" if text.startswith("g,") else None
    message = refusal(load_csv, path, label="y", group=group)
    assert message.startswith(f"{path}: ")
    if column != "c":  # a short row names the column that has no value
        assert f"column {column!r}" in message
    assert row in message
    assert detail in message


def test_single_class_label_is_refused(write_text: WriteText) -> None:
    path = write_text("one.csv", "a,y\n1,sick\n2,sick\n")
    message = refusal(load_csv, path, label="y")
    assert message == (
        f"{path}: label column 'y' holds only one class ('sick') in all 2 rows; "
        "a classifier needs at least two."
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"label": "outcome"}, "has no label column 'outcome'; the columns are: 'a', 'b', 'y'."),
        ({"label": "y", "features": ["a", "c"]}, "has no feature column 'c'; the columns are"),
        ({"label": "y", "group": "site"}, "has no group column 'site'; the columns are"),
        ({"label": "y", "features": ["c", "d"]}, "(missing: 'c', 'd')"),
        ({"label": "a", "group": "b", "features": None}, "has no feature columns besides"),
    ],
)
def test_missing_columns_are_named_with_the_available_ones(
    write_text: WriteText, kwargs: dict[str, Any], fragment: str
) -> None:
    text = "a,b\n0,g\n1,h\n" if kwargs.get("group") == "b" else "a,b,y\n1,2,0\n3,4,1\n"
    path = write_text("cols.csv", text)
    message = refusal(load_csv, path, **kwargs)
    assert message.startswith(f"{path}: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty; expected a header line"),
        ("\n\n", "is empty"),
        ("a,y\n", "has a header but no data rows"),
        ("a,a,y\n1,2,0\n", "repeats column name(s) 'a'"),
        ("a,,y\n1,2,0\n", "header column 2 has no name"),
        ('a,y\n1,"x"z\n', "line 2: not valid CSV"),
    ],
)
def test_malformed_csv_files_are_refused(write_text: WriteText, text: str, fragment: str) -> None:
    path = write_text("m.csv", text)
    message = refusal(load_csv, path, label="y")
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    assert refusal(load_csv, missing, label="y") == f"{missing}: no such file."
    assert refusal(load_csv, tmp_path, label="y") == f"{tmp_path}: is not a regular file."
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("a,y\n1,café\n2,b\n".encode("latin-1"))
    assert "is not UTF-8 text" in refusal(load_csv, latin1, label="y")


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"label": ""}, "'label'"),
        ({"label": "y", "group": "y"}, "'group'"),
        ({"label": "y", "features": "a"}, "'features'"),
        ({"label": "y", "features": ["y"]}, "'features'"),
        ({"label": "y", "features": ["a", "a"]}, "'features'"),
        ({"label": "y", "features": []}, "'features'"),
    ],
)
def test_bad_arguments_are_config_errors(
    write_text: WriteText, kwargs: dict[str, Any], parameter: str
) -> None:
    path = write_text("c.csv", "a,y\n1,0\n2,1\n")
    with pytest.raises(ConfigError, match=f"The {parameter} parameter of load_csv"):
        load_csv(path, **kwargs)


def test_path_must_be_path_like() -> None:
    with pytest.raises(ConfigError, match="'path' parameter of load_csv"):
        load_csv(42, label="y")  # type: ignore[arg-type]


# Parquet ---------------------------------------------------------------------------------------
def write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_csv_and_parquet_of_one_table_load_equal(write_text: WriteText, tmp_path: Path) -> None:
    from_csv = load_csv(write_text("clinic.csv", GOOD_CSV), label="diagnosis", group="site")
    parquet = write_parquet(
        tmp_path / "clinic.parquet",
        {
            "age": pa.array([61, 45, 50], pa.int64()),
            "weight": [70.5, 80.0, 65.25],
            "site": pa.array(["north", "south", "north"]).dictionary_encode(),
            "diagnosis": ["malignant", "benign", "benign"],
        },
    )
    assert load_parquet(parquet, label="diagnosis", group="site") == from_csv


def test_csv_and_parquet_with_integer_labels_load_equal(
    write_text: WriteText, tmp_path: Path
) -> None:
    from_csv = load_csv(write_text("t.csv", "x,label\n0.5,3\n1.5,1\n2.5,3\n"), label="label")
    parquet = write_parquet(tmp_path / "t.parquet", {"x": [0.5, 1.5, 2.5], "label": [3, 1, 3]})
    from_parquet = load_parquet(parquet, label="label")
    assert from_parquet == from_csv
    assert from_parquet.class_names == ("1", "3")


def test_parquet_boolean_labels_are_text(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "b.parquet", {"x": [1, 2], "y": [True, False]})
    assert load_parquet(path, label="y").class_names == ("False", "True")


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ({"x": [1.0, None, 2.0], "y": [0, 1, 1]}, "feature column 'x', row 2: expected a value"),
        ({"x": [1.0, float("nan"), 2.0], "y": [0, 1, 1]}, "column 'x', row 2: expected a finite"),
        ({"x": ["1", "2", "3"], "y": [0, 1, 1]}, "feature column 'x' must have a numeric type"),
        ({"x": [1, 2, 3], "y": [0, None, 1]}, "label column 'y', row 2: expected a value"),
        ({"x": [1, 2, 3], "y": [0.0, 1.0, 2.5]}, "label column 'y', row 3: expected a whole"),
        ({"x": [1, 2, 3], "y": [[1], [2], [3]]}, "label column 'y' must hold text or whole"),
        ({"x": [1, 2, 3], "y": ["a", "a", "a"]}, "label column 'y' holds only one class"),
        ({"x": [1, 2, 3], "y": ["a", "", "b"]}, "label column 'y', row 2: expected a class"),
        ({"x": [1, 2, 3], "y": [0, 1, 1], "g": ["h", None, "h"]}, "group column 'g', row 2"),
        ({"x": pa.array([], pa.int64()), "y": pa.array([], pa.int64())}, "has no data rows"),
        ({"x": [1, 2], "z": [0, 1]}, "has no label column 'y'; the columns are: 'x', 'z'."),
    ],
)
def test_bad_parquet_columns_name_file_column_and_row(
    tmp_path: Path, columns: dict[str, Any], fragment: str
) -> None:
    path = write_parquet(tmp_path / "bad.parquet", columns)
    message = refusal(load_parquet, path, label="y", group="g" if "g" in columns else None)
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_a_file_that_is_not_parquet_is_refused(write_text: WriteText) -> None:
    path = write_text("fake.parquet", "a,y\n1,0\n")
    assert "is not a readable Parquet file" in refusal(load_parquet, path, label="y")


# NPZ -------------------------------------------------------------------------------------------
def test_npz_loads_arrays_and_encodes_labels(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(
        path, x=np.array([[1, 2], [3, 4], [5, 6]]), y=np.array([5, 2, 5]), g=np.array([1, 2, 1])
    )
    dataset = load_npz(path, groups_key="g")
    assert dataset == Dataset(
        name="arrays",
        features=np.array([[1, 2], [3, 4], [5, 6]]),
        labels=np.array([1, 0, 1]),
        feature_names=("feature_0", "feature_1"),
        class_names=("2", "5"),
        groups=np.array(["1", "2", "1"]),
    )


def test_npz_text_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, features=np.eye(2), labels=np.array(["sick", "well"]))
    dataset = load_npz(path, features_key="features", labels_key="labels")
    assert dataset.class_names == ("sick", "well")


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"x": np.eye(2)}, "has no array 'y'; the arrays are: 'x'."),
        ({"x": np.ones(3), "y": np.array([0, 1, 1])}, "array 'x' must be a non-empty 2-D array"),
        ({"x": np.eye(3), "y": np.array([0, 1])}, "array 'y' must have shape (3,)"),
        ({"x": np.eye(2).astype(bool), "y": np.array([0, 1])}, "array 'x' must be"),
        ({"x": np.array([[0, 1], [1, np.nan]]), "y": np.array([0, 1])}, "column 'x[:, 1]', row 2"),
        ({"x": np.eye(2), "y": np.array([0.0, 0.5])}, "label column 'y', row 2"),
        ({"x": np.eye(2), "y": np.array([b"a", b"b"])}, "array 'y' must hold text or whole"),
        ({"x": np.eye(2), "y": np.array([1, 1])}, "holds only one class"),
    ],
)
def test_bad_npz_arrays_are_refused(tmp_path: Path, arrays: dict[str, Any], fragment: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    message = refusal(load_npz, path)
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_npz_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([[1.0]]), y=np.array([{"evil": 1}], dtype=object))
    message = refusal(load_npz, path)
    assert "array 'y' cannot be read (it holds pickled Python objects" in message
    assert "allow_pickle" not in message


def test_npz_that_is_not_an_archive_is_refused(tmp_path: Path, write_text: WriteText) -> None:
    npy = tmp_path / "single.npz"
    with npy.open("wb") as handle:
        np.save(handle, np.eye(2))
    assert "holds a single .npy array" in refusal(load_npz, npy)
    assert "is not a readable .npz archive" in refusal(load_npz, write_text("t.npz", "a,b\n"))
    assert "is not a readable .npz archive" in refusal(load_npz, write_text("e.npz", ""))


def test_npz_keys_must_be_distinct(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distinct non-empty strings"):
        load_npz(tmp_path / "a.npz", features_key="x", labels_key="x")


# load_file -------------------------------------------------------------------------------------
def test_load_file_dispatches_on_the_suffix(write_text: WriteText, tmp_path: Path) -> None:
    from_csv = load_file(write_text("t.csv", "x,label\n0.5,3\n1.5,1\n"), label="label")
    parquet = write_parquet(tmp_path / "t.PARQUET", {"x": [0.5, 1.5], "label": [3, 1]})
    assert load_file(parquet, label="label") == from_csv
    npz = tmp_path / "t.npz"
    np.savez(npz, features=np.array([[0.5], [1.5]]), label=np.array([3, 1]))
    from_npz = load_file(npz, label="label", features=["features"])
    np.savez(tmp_path / "default.npz", x=np.array([[0.5], [1.5]]), y=np.array([3, 1]))
    assert load_file(tmp_path / "default.npz").labels.tolist() == from_npz.labels.tolist()
    assert from_npz.labels.tolist() == from_csv.labels.tolist()
    assert from_npz.features.tolist() == from_csv.features.tolist()


def test_load_file_refuses_unknown_suffixes_and_bad_npz_features(
    write_text: WriteText, tmp_path: Path
) -> None:
    path = write_text("t.xlsx", "")
    assert refusal(load_file, path, label="y") == (
        f"{path}: unrecognised file suffix '.xlsx'; expected one of "
        ".csv, .npz, .parquet, .pq, .tsv."
    )
    with pytest.raises(ConfigError, match="one features array"):
        load_file(tmp_path / "t.npz", label="y", features=["a", "b"])
    with pytest.raises(ConfigError, match="'label' parameter of load_file must name the label"):
        load_file(write_text("t.csv", "a,y\n1,0\n"))


def test_a_wide_file_lists_only_the_first_columns(write_text: WriteText) -> None:
    header = ",".join(f"pixel_{i}" for i in range(100))
    path = write_text("wide.csv", header + "\n" + ",".join(["0"] * 100) + "\n")
    message = refusal(load_csv, path, label="digit")
    assert "'pixel_29', ... (70 more)." in message
    assert "'pixel_30'" not in message


def test_federation_classes_encode_every_site_alike(tmp_path: Path) -> None:
    site = tmp_path / "site.csv"
    site.write_text("a,b,diagnosis\n1,2,benign\n3,4,benign\n")
    loaded = load_csv(site, label="diagnosis", classes=["benign", "malignant"])
    assert loaded.class_names == ("benign", "malignant")
    assert loaded.labels.tolist() == [0, 0]
    flipped = load_csv(site, label="diagnosis", classes=["malignant", "benign"])
    assert flipped.labels.tolist() == [1, 1]


def test_numeric_labels_against_federation_classes(tmp_path: Path) -> None:
    site = tmp_path / "site.csv"
    site.write_text("a,y\n1,2\n3,0\n")
    loaded = load_file(site, label="y", classes=["0", "1", "2"])
    assert loaded.labels.tolist() == [2, 0]


def test_label_outside_federation_classes_names_row(tmp_path: Path) -> None:
    site = tmp_path / "site.csv"
    site.write_text("a,diagnosis\n1,benign\n2,unknown\n")
    with pytest.raises(DataError, match=r"site\.csv.*'diagnosis'.*row 2.*'unknown'"):
        load_csv(site, label="diagnosis", classes=["benign", "malignant"])


@pytest.mark.parametrize("classes", [["only"], ["a", "a"]])
def test_bad_federation_classes_are_refused(tmp_path: Path, classes: list[str]) -> None:
    site = tmp_path / "site.csv"
    site.write_text("a,diagnosis\n1,a\n2,a\n")
    with pytest.raises(ConfigError, match="classes"):
        load_csv(site, label="diagnosis", classes=classes)
