"""``sovereign node check --policy / --kit``: the site's policy validated, and the job judged by
it with the node's own rules, before the site joins."""

from __future__ import annotations

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
FITS = ["--label", "diagnosis", "--ignore-columns", "patient_id,site"]

runner = CliRunner(env={"COLUMNS": "300"})  # rich wraps output at the terminal width


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(JOB, encoding="utf-8")
    return path


def check_policy(job: Path, policy_text: str, tmp_path: Path, *extra: str) -> tuple[int, str]:
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text, encoding="utf-8")
    arguments = ["node", "check", "--data", str(EXPORT), "--job", str(job), *FITS]
    result = runner.invoke(app, [*arguments, "--policy", str(policy), *extra])
    return result.exit_code, result.output


def test_an_accepted_job_exits_0_with_the_rules_and_what_waits(job: Path, tmp_path: Path) -> None:
    policy = 'jurisdiction = "DE"\nallowed_models = ["mlp"]\nmax_rounds = 10\n'
    policy += 'coordinator_jurisdictions = ["DE", "EU"]\nmin_rows_per_statistic = 20\n'
    code, output = check_policy(job, policy, tmp_path)
    assert code == 0, output
    assert f"OK {EXPORT} fits job 'three-hospitals'." in output
    assert f"Policy {tmp_path / 'policy.toml'} is valid. What it allows:" in output
    assert " - this site is in DE (recorded, not checked)" in output
    assert " - models mlp" in output
    assert " - ≤ 10 rounds" in output
    assert (
        "Job 'three-hospitals' as the node reads it: model 'mlp', 3 rounds, secure aggregation "
        "off, privacy mode 'none', at least 2 node(s) per round." in output
    )
    assert "ACCEPTED this node would join job 'three-hospitals'." in output
    assert "evaluation metrics that would leave: loss, accuracy" in output
    checked_now = output.split("Checked now, from the job file:\n", 1)[1].splitlines()
    assert [line.rstrip() for line in checked_now[:2]] == [" - allowed_models", " - max_rounds"]
    assert " - min_rows_per_statistic: against all the file's rows" in output
    assert " - [outputs]: which kinds of answer may leave" in output
    assert "Checked only when the node connects and runs the job:" in output
    assert " - coordinator_jurisdictions: the jurisdiction certified for the coordinator" in output
    assert " - min_rows_per_statistic: the rows behind each answer (the file holds 70;" in output


@pytest.mark.parametrize(
    ("policy", "code", "reason"),
    [
        (
            "require_secure_aggregation = true",
            "policy.secure_aggregation_required",
            "why: the job runs without secure aggregation: this node's updates would reach the "
            "coordinator one by one",
        ),
        (
            'allowed_models = ["logreg"]',
            "policy.model_not_allowed",
            "why: the job trains model 'mlp'; allowed_models lists logreg",
        ),
        (
            "max_rounds = 2",
            "policy.too_many_rounds",
            "why: the job has 3 rounds; max_rounds is 2",
        ),
        (
            'required_privacy_modes = ["distributed", "dpsgd"]',
            "policy.privacy_mode_not_allowed",
            "why: the job's privacy mode is 'none'; required_privacy_modes allows distributed, "
            "dpsgd",
        ),
        (
            "max_epsilon_per_job = 3.0",
            "policy.epsilon_over_limit",
            "why: the job has no differential privacy, so its ε is unbounded",
        ),
        (
            "min_cohort = 5",
            "policy.cohort_too_small",
            "why: the job aggregates as few as 2 node(s); min_cohort is 5",
        ),
        (
            "max_parameters = 100",
            "policy.model_too_large",
            "parameters; max_parameters is 100",
        ),
    ],
    ids=lambda value: value.split(" ")[0] if " = " in value else "",
)
def test_a_refused_job_exits_1_naming_the_rule(
    job: Path, tmp_path: Path, policy: str, code: str, reason: str
) -> None:
    exit_code, output = check_policy(job, policy + "\n", tmp_path)
    assert exit_code == 1, output
    assert f"OK {EXPORT} fits job 'three-hospitals'." in output
    assert f"REFUSED this node would refuse job 'three-hospitals': {code}" in output
    assert reason in output
    assert f"The coordinator would see only the code {code}; the reason stays in" in output
    assert "ACCEPTED" not in output


def test_the_model_size_is_counted_as_the_node_builds_it(job: Path, tmp_path: Path) -> None:
    code, output = check_policy(job, "max_parameters = 1_000_000\n", tmp_path)
    assert code == 0, output
    assert "model 'mlp' (" in output
    assert " parameters), 3 rounds" in output
    assert " - ≤ 1,000,000 parameters" in output


def test_outputs_that_may_not_leave_refuse_those_tasks_only(job: Path, tmp_path: Path) -> None:
    policy = '[outputs]\nstatistics = false\nevaluate = ["accuracy"]\n'
    code, output = check_policy(job, policy, tmp_path)
    assert code == 0, output
    assert "ACCEPTED this node would join job 'three-hospitals'." in output
    assert (
        "note: its statistics tasks would be refused (policy.output_not_allowed): [outputs] does "
        "not let this node's statistics leave; the job goes on without them." in output
    )
    assert "evaluation metrics that would leave: accuracy" in output


def test_too_few_rows_in_the_file_refuses_statistics(job: Path, tmp_path: Path) -> None:
    code, output = check_policy(job, "min_rows_per_statistic = 100\n", tmp_path)
    assert code == 0, output
    assert "its statistics tasks would be refused (policy.too_few_rows): the statistics would" in (
        output
    )
    assert "its evaluation tasks would be refused (policy.too_few_rows)" in output


def test_a_misspelt_key_exits_2_naming_it(job: Path, tmp_path: Path) -> None:
    code, output = check_policy(job, "max_round = 10\n", tmp_path)
    assert code == 2, output
    assert "unknown key 'max_round' (did you mean 'max_rounds'?)" in output
    assert "Checking" not in output  # nothing judged by a policy with a typo


def test_a_value_of_the_wrong_type_exits_2_naming_the_key(job: Path, tmp_path: Path) -> None:
    code, output = check_policy(job, 'min_cohort = "5"\n[outputs]\ntrain = "yes"\n', tmp_path)
    assert code == 2, output
    assert "'min_cohort' must be an integer; got '5'" in output
    assert "'outputs.train' must be true or false; got 'yes'" in output


def test_a_missing_policy_file_exits_2(job: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    arguments = ["node", "check", "--data", str(EXPORT), "--job", str(job), *FITS]
    result = runner.invoke(app, [*arguments, "--policy", str(missing)])
    assert result.exit_code == 2, result.output
    assert "does not exist; check the path given to --policy" in result.output


def test_a_file_that_does_not_fit_and_an_accepted_job_exit_1(job: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("max_rounds = 10\n", encoding="utf-8")
    arguments = ["node", "check", "--data", str(EXPORT), "--job", str(job), "--label", "diagnosis"]
    result = runner.invoke(app, [*arguments, "--policy", str(policy)])
    assert result.exit_code == 1, result.output
    assert "does not fit job 'three-hospitals': 2 problems." in result.output
    assert "ACCEPTED this node would join job 'three-hospitals'." in result.output


# --kit: KIT/policy.toml and KIT/node.toml's data settings ----------------------------------------
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
    folder = tmp_path / "fed" / "nodes" / "north"
    (folder / "node.toml").write_text(
        f'[node]\ndata = "{EXPORT}"\nlabel = "diagnosis"\n'
        'ignore_columns = ["patient_id", "site"]\n',
        encoding="utf-8",
    )
    return folder


def test_the_kit_gives_the_data_settings_and_the_policy(kit: Path, job: Path) -> None:
    (kit / "policy.toml").write_text("require_secure_aggregation = true\n", encoding="utf-8")
    result = runner.invoke(app, ["node", "check", "--kit", str(kit), "--job", str(job)])
    assert result.exit_code == 1, result.output
    assert f"OK {EXPORT} fits job 'three-hospitals'." in result.output
    assert f"Policy {kit / 'policy.toml'} is valid." in result.output
    assert "REFUSED this node would refuse job 'three-hospitals': " in result.output
    assert "policy.secure_aggregation_required" in result.output


def test_a_kit_without_a_policy_says_every_job_is_answered(kit: Path, job: Path) -> None:
    result = runner.invoke(app, ["node", "check", "--kit", str(kit), "--job", str(job)])
    assert result.exit_code == 0, result.output
    assert f"No policy.toml in {kit}: this node would answer every job's tasks" in result.output


def test_policy_option_overrides_the_kit_policy(kit: Path, job: Path, tmp_path: Path) -> None:
    (kit / "policy.toml").write_text("max_rounds = 1\n", encoding="utf-8")
    other = tmp_path / "draft.toml"
    other.write_text("max_rounds = 5\n", encoding="utf-8")
    arguments = ["node", "check", "--kit", str(kit), "--job", str(job), "--policy", str(other)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert f"Policy {other} is valid." in result.output


def test_without_data_or_kit_the_data_is_asked_for(job: Path) -> None:
    result = runner.invoke(app, ["node", "check", "--job", str(job), "--label", "diagnosis"])
    assert result.exit_code == 2, result.output
    assert "Pass --data FILE, or --kit DIR whose node.toml names it." in result.output
