"""Job spec validation: every bad value is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_ai.errors import ConfigError, UnknownNameError
from sovereign_ai.federation import load_job_spec, parse_job_spec

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
