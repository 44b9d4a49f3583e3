"""``sovereign node check``: a site's file against a job, before it joins; and the same options on
``node start``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign_ai.cli.main import app

EXAMPLES = Path(__file__).parents[2] / "examples" / "data"
EXPORT = EXAMPLES / "hospital_export.csv"  # ';', patient_id and site columns, 10 features
JOB = """
[job]
name = "three-hospitals"
rounds = 3

[model]
name = "mlp"
num_features = 10
num_classes = 2
"""

runner = CliRunner(env={"COLUMNS": "300"})  # rich wraps output at the terminal width


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(JOB, encoding="utf-8")
    return path


def check(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["node", "check", *args])
    return result.exit_code, result.output


def test_a_fitting_file_passes_with_a_summary(job: Path) -> None:
    code, output = check(
        "--data", str(EXPORT), "--job", str(job), "--label", "diagnosis",
        "--ignore-columns", "patient_id,site", "--classes", "benign,malignant",
    )  # fmt: skip
    assert code == 0, output
    assert "against job three-hospitals (model 'mlp': 10 features, 2 classes)" in output
    assert "rows       70" in output
    assert "delimiter  ';' (detected)" in output
    assert "features   10: mean_radius, mean_texture," in output
    assert "classes    2: benign 19, malignant 51" in output
    assert f"OK {EXPORT} fits job 'three-hospitals'." in output


def test_the_export_as_is_fails_with_each_problem_named(job: Path) -> None:
    code, output = check("--data", str(EXPORT), "--job", str(job), "--label", "diagnosis")
    assert code == 1, output
    assert f"FAIL {EXPORT} does not fit job 'three-hospitals': 2 problems." in output
    assert " 1. Column 'site' holds text, not numbers ('north' in row 1 (line 2))." in output
    assert "-> If it is an ID, a site name or another column that is not a feature, leave it" in (
        output
    )
    assert " 2. The file has 12 feature column(s); the job's model takes num_features = 10." in (
        output
    )
    assert "note: Column 'patient_id' is named like an ID" in output


def test_an_unknown_class_fails_and_is_named(job: Path, tmp_path: Path) -> None:
    data = tmp_path / "site.csv"
    text = EXPORT.read_text(encoding="utf-8").replace(";benign\n", ";Benign\n", 1)
    data.write_text(text, encoding="utf-8")
    code, output = check(
        "--data", str(data), "--job", str(job), "--label", "diagnosis",
        "--ignore-columns", "patient_id,site", "--classes", "benign,malignant",
    )  # fmt: skip
    assert code == 1, output
    assert "1. Label 'Benign' in column 'diagnosis' (1 row(s), first row" in output
    assert "is not one of the federation's classes ('benign', 'malignant')." in output
    assert "-> Did you mean 'benign'?" in output


def test_a_non_numeric_column_fails_and_is_named(job: Path, tmp_path: Path) -> None:
    data = tmp_path / "site.csv"
    rows = [line.split(";") for line in EXPORT.read_text(encoding="utf-8").splitlines()]
    assert rows[0][2:4] == ["mean_radius", "mean_texture"]
    rows[5][2] = "n/a"  # row 5 (line 6)
    rows[7][3] = "high"  # row 7 (line 8)
    data.write_text("".join(";".join(row) + "\n" for row in rows), encoding="utf-8")
    code, output = check(
        "--data", str(data), "--job", str(job), "--label", "diagnosis",
        "--ignore-columns", "patient_id,site",
    )  # fmt: skip
    assert code == 1, output
    assert (
        "Column 'mean_texture' has 1 cell(s) that are not numbers ('high' in row 7 (line 8))"
        in (output)
    )
    assert "Column 'mean_radius' has 1 missing value(s) (row 5 (line 6))." in output


def test_a_label_differing_in_case_is_named_as_spelt(job: Path) -> None:
    code, output = check("--data", str(EXPORT), "--job", str(job), "--label", "Diagnosis")
    assert code == 1, output
    assert "has no label column 'Diagnosis' (did you mean 'diagnosis'? Names are" in output


def test_a_wrong_delimiter_fails_with_the_one_that_fits(job: Path) -> None:
    code, output = check(
        "--data", str(EXPORT), "--job", str(job), "--label", "diagnosis", "--delimiter", "tab"
    )
    assert code == 1, output
    assert "reads as a single column with the delimiter tab" in output
    assert "the file looks ';'-delimited" in output


def test_chosen_columns_and_a_named_delimiter_are_used(job: Path) -> None:
    features = "mean_radius,mean_texture"
    code, output = check(
        "--data", str(EXPORT), "--job", str(job), "--label", "diagnosis",
        "--columns", features, "--delimiter", "semicolon",
    )  # fmt: skip
    assert code == 1, output
    assert "delimiter  ';' (given)" in output
    assert "features   2: mean_radius, mean_texture" in output
    assert "The file has 2 feature column(s); the job's model takes num_features = 10." in output


def test_a_job_without_the_model_shape_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "sim"\n[model]\nname = "mlp"\n', encoding="utf-8")
    code, output = check("--data", str(EXPORT), "--job", str(job), "--label", "diagnosis")
    assert code == 2, output
    assert "add 'num_features = <columns>' and 'num_classes = <labels>' to [model]" in output


def test_a_job_with_a_quoted_number_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("num_features = 10", 'num_features = "10"'), encoding="utf-8")
    code, output = check("--data", str(EXPORT), "--job", str(job), "--label", "diagnosis")
    assert code == 2, output
    assert "'model.num_features' must be an integer, not text" in output


def test_a_missing_label_option_is_asked_for(job: Path) -> None:
    code, output = check("--data", str(EXPORT), "--job", str(job))
    assert code == 2, output
    assert "Which column holds the classes? Pass --label COLUMN." in output


def test_the_installed_command_exits_0_and_1(job: Path) -> None:
    command = [sys.executable, "-m", "sovereign_ai.cli", "node", "check", "--job", str(job)]
    command += ["--data", str(EXPORT), "--label", "diagnosis"]
    env = {**os.environ, "COLUMNS": "200"}
    fails = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert fails.returncode == 1, fails.stdout + fails.stderr
    assert "2 problems" in fails.stdout
    fits = subprocess.run(
        [*command, "--ignore-columns", "patient_id,site"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert "fits job 'three-hospitals'" in fits.stdout


# node start reads the same options, from the command line or KIT/node.toml ----------------------
PASSPHRASE = "a long passphrase for the tests"
FEDERATION = """
[federation]
name = "check-test"

[coordinator]
name = "coordinator"
address = "127.0.0.1:1"
hosts = ["127.0.0.1"]

[[nodes]]
name = "north"
"""


@pytest.fixture
def kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOVEREIGN_KIT_PASSPHRASE", PASSPHRASE)
    federation = tmp_path / "federation.toml"
    federation.write_text(FEDERATION, encoding="utf-8")
    result = runner.invoke(app, ["provision", str(federation), "--out", str(tmp_path / "fed")])
    assert result.exit_code == 0, result.output
    return tmp_path / "fed" / "nodes" / "north"


def test_node_start_takes_the_column_options_from_node_toml(kit: Path) -> None:
    # A misspelt ignored column stops the node before it dials: the key reached the loader.
    (kit / "node.toml").write_text(
        f'[node]\ndata = "{EXPORT}"\nlabel = "diagnosis"\nignore_columns = ["Site"]\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["node", "start", "--kit", str(kit)])
    assert result.exit_code == 2, result.output
    assert "has no ignored column 'Site' (did you mean 'site'? Names are case-sensitive)" in (
        result.output
    )


def test_node_start_options_override_node_toml(kit: Path) -> None:
    (kit / "node.toml").write_text(
        f'[node]\ndata = "{EXPORT}"\nlabel = "diagnosis"\ndelimiter = ";"\n'
        'ignore_columns = ["patient_id", "site"]\n',
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["node", "start", "--kit", str(kit), "--delimiter", "|", "--columns", "x"]
    )
    assert result.exit_code == 2, result.output
    assert "reads as a single column with the delimiter '|'" in result.output
