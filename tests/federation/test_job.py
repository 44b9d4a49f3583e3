"""Job spec validation: every bad value is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.federation import JobSpec, SimulationBackend, load_job_spec, parse_job_spec

GOOD = """
[job]
name = "t"
rounds = 3
[model]
name = "mlp"
hidden = [8]
[strategy]
name = "fedavg"
fraction_train = 0.5
[data]
dataset = "iris"
nodes = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_good_spec_parses_with_options(tmp_path: Path) -> None:
    spec = load_job_spec(write(tmp_path, GOOD))
    assert spec.job.rounds == 3
    assert spec.model.options == {"hidden": [8]}
    assert spec.strategy.options == {"fraction_train": 0.5}
    assert spec.job_id.startswith("t-")


def test_job_id_changes_with_what_shapes_the_model(tmp_path: Path) -> None:
    a = load_job_spec(write(tmp_path, GOOD))
    b = load_job_spec(write(tmp_path, GOOD.replace("hidden = [8]", "hidden = [9]")))
    assert a.job_id != b.job_id


def test_job_id_ignores_operational_settings(tmp_path: Path) -> None:
    a = load_job_spec(write(tmp_path, GOOD))
    changed = GOOD.replace("rounds = 3", "rounds = 40") + (
        "\n[coordinator]\nround_timeout_s = 5\nwait_for_nodes = 3\n"
        '[simulation]\nbackend = "process"\n'
    )
    b = load_job_spec(write(tmp_path, changed))
    assert a.job_id == b.job_id
    assert a.canonical_json() != b.canonical_json()


def test_inconsistent_train_settings_are_refused_before_running(tmp_path: Path) -> None:
    text = GOOD + '\n[train]\noptimizer = "adam"\nmomentum = 0.9\n'
    with pytest.raises(ConfigError, match="momentum"):
        load_job_spec(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("rounds = 3", "rounds = 0"), "'job.rounds'"),
        (GOOD.replace("rounds = 3", "rounds = -2"), "'job.rounds'"),
        (
            GOOD + "\n[train]\nlocal_epochs = 1\nlerning_rate = 0.1\n",
            "unknown key 'train.lerning_rate'",
        ),
        (GOOD.replace("[job]", "[jobb]"), "unknown key 'jobb'"),
        (
            GOOD.replace('dataset = "iris"', 'dataset = "iris"\npartition = "random"'),
            "data.partition",
        ),
        (GOOD.replace('name = "t"', 'name = "bad name!"'), "'job.name'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_job_spec(write(tmp_path, text))


def test_unknown_strategy_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="fedfoo"):
        load_job_spec(write(tmp_path, GOOD.replace('name = "fedavg"', 'name = "fedfoo"')))


def test_unknown_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="resnet"):
        load_job_spec(write(tmp_path, GOOD.replace('name = "mlp"', 'name = "resnet"')))


@pytest.mark.parametrize("fraction", ["0.0", "1.5", "-0.1"])
def test_fraction_outside_unit_interval_is_refused(tmp_path: Path, fraction: str) -> None:
    with pytest.raises(ConfigError, match="fraction_train"):
        load_job_spec(write(tmp_path, GOOD.replace("0.5", fraction)))


def test_unknown_strategy_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="momentum_typo"):
        load_job_spec(write(tmp_path, GOOD.replace("fraction_train = 0.5", "momentum_typo = 1")))


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_job_spec(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_job_spec(write(tmp_path, "[job\nname="))


def test_parse_rejects_wrong_types() -> None:
    with pytest.raises(ConfigError, match=r"'job\.rounds'"):
        parse_job_spec({"job": {"rounds": "many"}})


# One rule for numbers, in every section ---------------------------------------------------------
EVERY_SECTION = (
    GOOD.replace("[model]\n", "[model]\nnum_features = 30\n").replace(
        "nodes = 3", "nodes = 3\nalpha = 0.5"
    )
    + "[train]\nlearning_rate = 0.1\nbatch_size = 16\n"
    + "[coordinator]\nround_timeout_s = 120\n"
    + "[simulation]\nworkers = 2\n"
)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("rounds = 3", "job.rounds"),
        ("num_features = 30", "model.num_features"),
        ("learning_rate = 0.1", "train.learning_rate"),
        ("batch_size = 16", "train.batch_size"),
        ("round_timeout_s = 120", "coordinator.round_timeout_s"),
        ("nodes = 3", "data.nodes"),
        ("alpha = 0.5", "data.alpha"),
        ("workers = 2", "simulation.workers"),
    ],
)
def test_quoted_numbers_are_refused_in_every_section(tmp_path: Path, line: str, key: str) -> None:
    assert load_job_spec(write(tmp_path, EVERY_SECTION))  # as numbers, every one is fine
    name, _, value = line.partition(" = ")
    quoted = EVERY_SECTION.replace(line, f'{name} = "{value}"')
    with pytest.raises(ConfigError) as caught:
        load_job_spec(write(tmp_path, quoted))
    message = str(caught.value)
    assert f"'{key}' must be" in message
    assert f"not text; got '{value}' (write {name} = {value}, without quotes)" in message


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        (
            "hidden = [8]",
            'hidden = ["8"]',
            "'model.hidden' must hold numbers without quotes; got ['8'] (write hidden = [8])",
        ),
        (
            "fraction_train = 0.5",
            'fraction_train = "0.5"',
            "'strategy.fraction_train' must hold numbers without quotes; got '0.5' "
            "(write fraction_train = 0.5)",
        ),
        ("fraction_train = 0.5", 'fraction_train = " 1e-1 "', "(write fraction_train = 1e-1)"),
    ],
)
def test_quoted_numbers_are_refused_in_option_sections(
    tmp_path: Path, old: str, new: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_job_spec(write(tmp_path, GOOD.replace(old, new)))
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("rounds = 3", "rounds = true", "'job.rounds' must be an integer, not true or false"),
        ("rounds = 3", "rounds = 3.0", "'job.rounds' must be an integer, written without a"),
        ("rounds = 3", "rounds = 2.5", "got 2.5"),
        ("nodes = 3", "nodes = 1e1", "'data.nodes' must be an integer"),
        ("[data]", "[train]\nlearning_rate = false\n[data]", "'train.learning_rate' must be a"),
        ("[data]", '[coordinator]\nstandardize_features = "true"\n[data]', "without quotes"),
        ("[data]", "[coordinator]\nstandardize_features = 1\n[data]", "must be true or false"),
        ("fraction_train = 0.5", "min_train_nodes = true", "min_train_nodes"),
        ("fraction_train = 0.5", "min_train_nodes = 2.0", "min_train_nodes"),
    ],
)
def test_bools_and_floats_are_not_integers(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_job_spec(write(tmp_path, GOOD.replace(old, new)))
    assert needle in str(caught.value)


def test_numbers_as_numbers_still_parse(tmp_path: Path) -> None:
    text = GOOD + (
        "\n[train]\nlearning_rate = 1\n"  # an integer is a number
        "[coordinator]\nround_timeout_s = 30\nstandardize_features = false\n"
        '[simulation]\nbackend = "thread"\nworkers = 2\n'
    )
    spec = load_job_spec(write(tmp_path, text))
    assert spec.train.learning_rate == 1.0
    assert isinstance(spec.train.learning_rate, float)
    assert spec.coordinator.round_timeout_s == 30.0
    assert spec.simulation.backend is SimulationBackend.THREAD


def test_text_options_that_are_not_numbers_pass_through(tmp_path: Path) -> None:
    spec = parse_job_spec({"model": {"name": "mlp", "hidden": [8]}, "strategy": {"name": "fedavg"}})
    assert spec.model.options == {"hidden": [8]}
    with pytest.raises(ConfigError, match="not accepted"):  # text reaches the registry's check
        parse_job_spec({"strategy": {"name": "fedavg", "note": "three"}})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_spec({"job": {"rounds": "3", "seed": True}, "train": {"batch_size": 1.5}})
    message = str(caught.value)
    for key in ("'job.rounds'", "'job.seed'", "'train.batch_size'"):
        assert key in message


def test_a_toml_date_is_refused_as_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'job.rounds' must be an integer, not text; got '2024"):
        load_job_spec(write(tmp_path, GOOD.replace("rounds = 3", "rounds = 2024-01-01")))


def test_spec_survives_the_json_round_trip_of_the_process_transport(tmp_path: Path) -> None:
    spec = load_job_spec(write(tmp_path, GOOD + '\n[simulation]\nbackend = "process"\n'))
    again = JobSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.job_id == spec.job_id
