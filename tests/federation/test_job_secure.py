"""The job spec's ``[secure_aggregation]`` section: parsing, refusals naming the key, the digest."""

from __future__ import annotations

import tomllib

import pytest

from sovereign_ai.errors import ConfigError
from sovereign_ai.federation import (
    InMemoryTransport,
    JobSpec,
    build_coordinator,
    parse_job_spec,
    prepare_simulation,
    run_simulation,
)
from sovereign_ai.federation.job import SecureAggregationSection
from sovereign_ai.federation.secure_steps import modulus_bits, summarise

BASE = """
[job]
name = "secure-job"
rounds = 1
seed = 5
[model]
name = "logreg"
[strategy]
name = "fedavg"
[data]
dataset = "iris"
nodes = 3
"""


def spec(extra: str = "", base: str = BASE) -> JobSpec:
    return parse_job_spec(tomllib.loads(base + extra))


def section(**keys: object) -> str:
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in keys.items()]
    return "\n[secure_aggregation]\n" + "\n".join(lines) + "\n"


# Parsing ----------------------------------------------------------------------------------------
def test_an_absent_section_is_secure_aggregation_off_with_the_defaults() -> None:
    parsed = spec().secure_aggregation
    assert parsed == SecureAggregationSection()
    assert parsed.enabled is False
    assert (parsed.clipping_range, parsed.quantisation_bits, parsed.max_weight) == (2.0, 16, 1024)
    assert parsed.modulus_bits is None and parsed.threshold is None


def test_every_key_is_read() -> None:
    keys = {
        "enabled": True,
        "dropout_rate": 0.2,
        "corruption_rate": 0.05,
        "threshold": 4,
        "clipping_range": 0.5,
        "quantisation_bits": 20,
        "modulus_bits": 64,
        "max_weight": 100,
    }
    parsed = spec(section(**keys)).secure_aggregation
    assert parsed == SecureAggregationSection(**keys)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"modulus_bits": 8}, r"'secure_aggregation\.modulus_bits' .*greater than or equal to 16"),
        ({"modulus_bits": 65}, r"'secure_aggregation\.modulus_bits' .*less than or equal to 64"),
        ({"quantisation_bits": 0}, r"'secure_aggregation\.quantisation_bits' .*greater than"),
        ({"quantisation_bits": 41}, r"'secure_aggregation\.quantisation_bits' .*less than"),
        ({"threshold": 1}, r"'secure_aggregation\.threshold' .*greater than or equal to 2"),
        ({"dropout_rate": 1.0}, r"'secure_aggregation\.dropout_rate' .*less than 1"),
        ({"dropout_rate": -0.1}, r"'secure_aggregation\.dropout_rate'"),
        ({"corruption_rate": 0.5}, r"'secure_aggregation\.corruption_rate' .*less than 0\.5"),
        ({"clipping_range": 0}, r"'secure_aggregation\.clipping_range' .*greater than 0"),
        ({"clipping_range": 2e6}, r"'secure_aggregation\.clipping_range' .*less than or equal"),
        ({"max_weight": 0}, r"'secure_aggregation\.max_weight' .*greater than or equal to 1"),
        ({"max_weight": 2**24 + 1}, r"'secure_aggregation\.max_weight'"),
        ({"modulus": 32}, r"unknown key 'secure_aggregation\.modulus'"),
        ({"enable": True}, r"unknown key 'secure_aggregation\.enable'"),
        ({"enabled": '"yes"'}, r"'secure_aggregation\.enabled' must be true or false, not text"),
        ({"enabled": 1}, r"'secure_aggregation\.enabled' must be true or false"),
        (
            {"quantisation_bits": "16.0"},
            r"'secure_aggregation\.quantisation_bits' must be an integer, written without",
        ),
        (
            {"modulus_bits": '"32"'},
            r"'secure_aggregation\.modulus_bits' must be an integer, not text; got '32' "
            r"\(write modulus_bits = 32, without quotes\)",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(keys: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        spec(section(**{"enabled": True, **keys}))


def test_bad_values_are_refused_even_when_the_section_is_disabled() -> None:
    with pytest.raises(ConfigError, match=r"'secure_aggregation\.modulus_bits'"):
        spec(section(enabled=False, modulus_bits=8))


# The digest -------------------------------------------------------------------------------------
def test_the_digest_is_unchanged_by_a_disabled_section() -> None:
    absent = spec()
    disabled = spec(section(enabled=False))
    tuned_but_off = spec(section(enabled=False, quantisation_bits=24, threshold=3))
    assert absent.digest == disabled.digest == tuned_but_off.digest
    assert absent.job_id == tuned_but_off.job_id
    # The full settings are still kept with the job (checkpoints store the canonical JSON).
    assert absent.canonical_json() != tuned_but_off.canonical_json()


def test_the_digest_changes_when_secure_aggregation_is_on_and_with_its_settings() -> None:
    absent = spec()
    enabled = spec(section(enabled=True))
    digests = {
        absent.digest,
        enabled.digest,
        spec(section(enabled=True, quantisation_bits=24)).digest,
        spec(section(enabled=True, clipping_range=1.0)).digest,
        spec(section(enabled=True, threshold=3)).digest,
    }
    assert len(digests) == 5
    assert enabled.job_id != absent.job_id and enabled.job_id.startswith("secure-job-")


def test_operational_settings_still_leave_a_secure_jobs_digest_alone() -> None:
    enabled = section(enabled=True)
    longer = spec(enabled, base=BASE.replace("rounds = 1", "rounds = 9"))
    assert longer.digest == spec(enabled).digest


# What the section means for a cohort ------------------------------------------------------------
def test_the_modulus_is_the_smallest_that_fits_the_cohorts_sum() -> None:
    assert modulus_bits(SecureAggregationSection(enabled=True), 5) == 32
    assert modulus_bits(SecureAggregationSection(enabled=True, quantisation_bits=32), 5) == 64
    with pytest.raises(ConfigError):
        modulus_bits(SecureAggregationSection(enabled=True, modulus_bits=16), 5)


def test_a_configured_threshold_must_be_a_majority_of_a_nodes_share_holders() -> None:
    chosen = summarise(SecureAggregationSection(enabled=True, threshold=4), 5)
    assert (chosen.threshold, chosen.tolerated_dropouts) == (4, 1)
    assert "t = 4 of 5 share holders" in chosen.describe()
    with pytest.raises(ConfigError, match=r"must be a majority of the 5 holders.*\[3, 5\]"):
        summarise(SecureAggregationSection(enabled=True, threshold=2), 5)
    with pytest.raises(ConfigError, match=r"\[secure_aggregation\]"):
        summarise(SecureAggregationSection(enabled=True, threshold=6), 5)


# From the spec to a run -------------------------------------------------------------------------
def test_a_strategy_needing_individual_updates_is_refused_when_the_coordinator_is_built() -> None:
    krum = spec(section(enabled=True), base=BASE.replace('name = "fedavg"', 'name = "krum"'))
    with InMemoryTransport([]) as transport:
        with pytest.raises(ConfigError, match="secure aggregation"):
            build_coordinator(krum, transport=transport, num_features=4, num_classes=3)
        plain = spec(base=BASE.replace('name = "fedavg"', 'name = "krum"'))
        assert build_coordinator(plain, transport=transport, num_features=4, num_classes=3)


def test_a_secure_simulation_enables_every_node_and_runs() -> None:
    secure = spec(section(enabled=True))
    setup = prepare_simulation(secure)
    assert setup.identities is not None
    assert sorted(setup.identities.signers) == [n.node_id for n in setup.nodes]
    assert all(n.egress.installed == ("masking",) for n in setup.nodes)
    assert prepare_simulation(spec()).identities is None
    history, _ = run_simulation(secure, setup=setup)
    report = history.rounds[0]
    assert report.answered == [n.node_id for n in setup.nodes] and not report.failures
    assert "central_accuracy" in report.metrics
