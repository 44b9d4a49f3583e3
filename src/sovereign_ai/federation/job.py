"""The job spec: one training run described in a TOML file a person writes.

Parsed into pydantic models that refuse unknown keys and out-of-range values with a message naming
the key, so a typo never silently falls back to a default. Strategy and model options are checked by
their registries when the job is built.

Example
-------
.. code-block:: toml

    [job]
    name = "breast-cancer"
    rounds = 20
    seed = 7

    [model]
    name = "mlp"
    hidden = [32]          # any further key is a model option

    [strategy]
    name = "fedavg"
    min_train_nodes = 3    # any further key is a strategy option

    [train]
    local_epochs = 2
    learning_rate = 0.05

    [data]                 # simulation only: where simulated nodes get their rows
    dataset = "breast_cancer"
    partition = "dirichlet"
    alpha = 0.5
    nodes = 10
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from sovereign_ai.errors import ConfigError, UnknownNameError

__all__ = [
    "CoordinatorSection",
    "DataSection",
    "JobSection",
    "JobSpec",
    "ModelSection",
    "PrivacySection",
    "SecureAggregationSection",
    "SimulationBackend",
    "SimulationSection",
    "StrategySection",
    "TrainSection",
    "load_job_spec",
    "parse_job_spec",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Section(BaseModel):
    """Every part of a job file: numbers must be written as numbers.

    Strict validation refuses what lax pydantic would convert: a quoted number (``rounds = "3"``),
    a boolean for a number (``rounds = true``) and a float for an integer (``rounds = 3.0``), so a
    key declared here takes exactly what a strategy or model option takes. A field added to any
    section inherits the rule. TOML documents are validated as JSON (see :func:`parse_job_spec`),
    where strings still name enum members.
    """

    model_config = ConfigDict(strict=True, frozen=True)


class _Strict(_Section):
    model_config = ConfigDict(extra="forbid")


class _Open(_Section):
    """A section whose extra keys are options for a registry (strategy or model).

    The registry checks each option's type and range; a quoted number is refused here already, as
    in every other section, since no option takes a number written as text.
    """

    model_config = ConfigDict(extra="allow")

    @property
    def options(self) -> dict[str, Any]:
        """The keys beyond the declared fields, handed to the registry."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _no_quoted_numbers(self) -> Self:
        for key, value in (self.model_extra or {}).items():
            if _holds_quoted_number(value):
                raise PydanticCustomError(
                    _QUOTED_OPTION,
                    "must hold numbers without quotes",
                    {"key": key, "value": value},
                )
        return self


_QUOTED_OPTION = "quoted_number_option"
_NUMBER_TEXT = re.compile(
    r"[+-]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)"
)


def _as_toml_unquoted(value: object) -> str:
    """``value`` as TOML text, with numbers written as text unquoted: ``["8"]`` -> ``[8]``."""
    if isinstance(value, str):
        text = value.strip()
        return text if _NUMBER_TEXT.fullmatch(text) else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_as_toml_unquoted(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{k} = {_as_toml_unquoted(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    return json.dumps(value)


def _holds_quoted_number(value: object) -> bool:
    """Whether ``value``, or an item of a list or table in it, is a number written as text."""
    if isinstance(value, str):
        return _NUMBER_TEXT.fullmatch(value.strip()) is not None
    if isinstance(value, list):
        return any(_holds_quoted_number(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_quoted_number(item) for item in value.values())
    return False


class JobSection(_Strict):
    """``[job]``: identity and length of the run."""

    name: str = "job"
    rounds: int = Field(default=10, gt=0, le=100_000)
    seed: int = Field(default=0, ge=0, lt=2**32)

    @field_validator("name")
    @classmethod
    def _name_is_plain(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value


class ModelSection(_Open):
    """``[model]``: a model of the zoo, by name; other keys are its options.

    ``num_features`` and ``num_classes`` are taken from the dataset in simulation; a deployed
    coordinator holds no data, so there they must be given. ``plugin`` names the package that
    provides a model which is not built in (e.g. ``"hospital-models"``): it travels to the nodes
    with the model's name, so a party without it is told what to install (``docs/plugins.md``).
    """

    name: str = "mlp"
    num_features: int | None = Field(default=None, gt=0)
    num_classes: int | None = Field(default=None, ge=2)
    plugin: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
    input_mean: list[float] | None = Field(default=None, min_length=1)
    input_std: list[float] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _given_scaling(self) -> Self:
        if (self.input_mean is None) != (self.input_std is None):
            raise ValueError("give both 'input_mean' and 'input_std', or neither")
        if self.input_mean is not None and self.input_std is not None:
            if len(self.input_mean) != len(self.input_std):
                raise ValueError("'input_mean' and 'input_std' must have one number per feature")
            if not all(math.isfinite(v) for v in self.input_mean) or not all(
                math.isfinite(v) and v > 0 for v in self.input_std
            ):
                raise ValueError("'input_mean' must be finite and 'input_std' finite and > 0")
        return self

    @property
    def given_scaling(self) -> bool:
        """Whether the job fixes the input scaling itself (no feature statistics are gathered)."""
        return self.input_mean is not None


class StrategySection(_Open):
    """``[strategy]``: an aggregation strategy, by name; other keys are its options."""

    name: str = "fedavg"


class TrainSection(_Strict):
    """``[train]``: what each node does with its data in one round."""

    local_epochs: int = Field(default=1, gt=0, le=1000)
    batch_size: int = Field(default=32, gt=0)
    learning_rate: float = Field(default=0.05, gt=0.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)


class CoordinatorSection(_Strict):
    """``[coordinator]``: deadlines, retries and evaluation cadence of the round loop."""

    round_timeout_s: float = Field(default=600.0, gt=0.0)
    max_round_attempts: int = Field(default=3, gt=0, le=100)
    evaluate_every: int = Field(default=1, ge=0)
    standardize_features: bool = True
    wait_for_nodes: int = Field(default=0, ge=0)
    wait_for_nodes_s: float = Field(default=60.0, ge=0.0)
    max_examples_per_node: int = Field(default=10_000_000, ge=1)


class SecureAggregationSection(_Strict):
    """``[secure_aggregation]``: SecAgg+, so the coordinator sees only sums of updates."""

    enabled: bool = False
    dropout_rate: float = Field(default=0.1, ge=0.0, lt=1.0)
    corruption_rate: float = Field(default=0.1, ge=0.0, lt=0.5)
    threshold: int | None = Field(default=None, ge=2)
    clipping_range: float = Field(default=2.0, gt=0.0, le=1e6)
    quantisation_bits: int = Field(default=16, ge=2, le=40)
    modulus_bits: int | None = Field(default=None, ge=16, le=64)
    max_weight: int = Field(default=1024, ge=1, le=2**24)


_ADAPTIVE_CLIPPING_KEYS = ("target_quantile", "clip_learning_rate", "count_noise")
"""``[privacy]`` keys that only apply with ``clipping = "adaptive"``."""


class PrivacySection(_Strict):
    """``[privacy]``: differential privacy (docs/differential-privacy.md).

    ``mode``: ``none``; client level (one node's whole data is the unit protected): ``central``
    (nodes clip, the coordinator noises the sum), ``distributed`` (each node adds its share of the
    noise before secure aggregation masks it), ``local`` (each node adds the whole noise to its
    own update); sample level (one record is the unit): ``dpsgd`` (each node trains with DP-SGD,
    ``clip`` bounding each example's gradient; a target ε is calibrated by each node for its own
    data size and the job's rounds).

    ``clipping``: ``fixed`` (every round clips to ``clip``) or ``adaptive`` (``clip`` is where
    the clip starts; it then follows the ``target_quantile`` of the update norms, Andrew et al.
    2021, with ``clip_learning_rate`` and ``count_noise``, by default the expected cohort / 20;
    the cost is folded into the same noise multiplier, :mod:`sovereign_ai.privacy`).
    """

    mode: Literal["none", "central", "distributed", "local", "dpsgd"] = "none"
    noise_multiplier: float | None = Field(default=None, gt=0.0, le=1e4)
    target_epsilon: float | None = Field(default=None, gt=0.0, le=1e4)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    clip: float = Field(default=1.0, gt=0.0, le=1e6)
    accounting: Literal["rdp", "pld"] = "rdp"
    clipping: Literal["fixed", "adaptive"] = "fixed"
    target_quantile: float = Field(default=0.5, gt=0.0, lt=1.0)
    clip_learning_rate: float = Field(default=0.2, gt=0.0, le=10.0)
    count_noise: float | None = Field(default=None, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _one_noise_setting(self) -> Self:
        if self.mode == "none":
            return self
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError(
                "with differential privacy on, give exactly one of 'noise_multiplier' and "
                "'target_epsilon' (the noise is then calibrated for the job's rounds)"
            )
        return self

    @model_validator(mode="after")
    def _adaptive_clipping_fits(self) -> Self:
        if self.clipping == "fixed":  # a value other than the default would be ignored: refuse
            fields = type(self).model_fields
            stray = [k for k in _ADAPTIVE_CLIPPING_KEYS if getattr(self, k) != fields[k].default]
            if stray:
                which = ", ".join(map(repr, stray))
                raise ValueError(
                    f"{which} only {'applies' if len(stray) == 1 else 'apply'} with clipping = "
                    f"'adaptive'; set clipping = 'adaptive', or remove {which}"
                )
            return self
        if self.mode == "local":
            raise ValueError(
                "clipping = 'adaptive' cannot run with mode 'local': each node's bit (whether its "
                "update fit the clip) would leave it without noise; use mode 'central' or "
                "'distributed', or clipping = 'fixed'"
            )
        if self.mode not in ("central", "distributed"):
            raise ValueError(
                "clipping = 'adaptive' needs mode 'central' or 'distributed' (it adapts the "
                "clip of each node's whole update, and those modes noise the nodes' bits); got "
                f"mode {self.mode!r}: choose one of those, or clipping = 'fixed'"
            )
        z = self.noise_multiplier
        if z is not None and self.count_noise is not None and not 2 * self.count_noise > z:
            raise ValueError(
                f"count_noise = {self.count_noise:g} leaves nothing of noise_multiplier = {z:g} "
                f"for the updates: it must exceed noise_multiplier / 2 = {z / 2:g} (2 x "
                f"noise_multiplier = {2 * z:g} costs the updates 3 % more noise)"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether the job runs with differential privacy."""
        return self.mode != "none"

    @property
    def sample_level(self) -> bool:
        """Whether one record (DP-SGD) rather than one node's data is the unit protected."""
        return self.mode == "dpsgd"


class DataSection(_Strict):
    """``[data]`` (simulation only): the rows the simulated nodes hold."""

    dataset: str = "breast_cancer"
    label: str | None = None
    group: str | None = None
    partition: Literal["iid", "dirichlet", "shards", "natural"] = "dirichlet"
    alpha: float = Field(default=0.5, gt=0.0)
    shards_per_node: int = Field(default=2, gt=0)
    nodes: int = Field(default=5, gt=0, le=100_000)
    node_names: list[str] | None = None
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    local_test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)

    @field_validator("node_names")
    @classmethod
    def _unique_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError("node names must be unique")
            for name in value:
                if not _NAME.match(name):
                    raise ValueError(f"node name {name!r} must be letters, digits, '.', '_', '-'")
        return value


class SimulationBackend(StrEnum):
    """How simulated nodes run on this machine."""

    SERIAL = "serial"
    THREAD = "thread"
    PROCESS = "process"


class SimulationSection(_Strict):
    """``[simulation]``: how nodes are run on one machine."""

    backend: SimulationBackend = SimulationBackend.SERIAL  # fastest for small models: measured
    workers: int = Field(default=2, gt=0, le=256)


_OPERATIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "job": ("rounds",),
    "model": ("plugin",),  # where the model comes from, not what it is
    "coordinator": (
        "round_timeout_s",
        "max_round_attempts",
        "evaluate_every",
        "wait_for_nodes",
        "wait_for_nodes_s",
        "max_examples_per_node",
    ),
    "simulation": (),  # every key
}


class JobSpec(_Strict):
    """A whole job: every section, validated."""

    job: JobSection = JobSection()
    model: ModelSection = ModelSection()
    strategy: StrategySection = StrategySection()
    train: TrainSection = TrainSection()
    coordinator: CoordinatorSection = CoordinatorSection()
    secure_aggregation: SecureAggregationSection = SecureAggregationSection()
    privacy: PrivacySection = PrivacySection()
    data: DataSection | None = None
    simulation: SimulationSection = SimulationSection()

    @model_validator(mode="after")
    def _one_scaling(self) -> Self:
        if self.model.given_scaling and self.coordinator.standardize_features:
            raise ValueError(
                "'[model] input_mean' and 'input_std' fix the input scaling, and "
                "'[coordinator] standardize_features' would replace it with the nodes' pooled "
                "statistics; set standardize_features = false, or drop the given scaling"
            )
        return self

    @model_validator(mode="after")
    def _privacy_fits_the_job(self) -> Self:
        if not self.privacy.enabled:
            return self
        if self.coordinator.standardize_features:
            raise ValueError(
                "[privacy] is on, but '[coordinator] standardize_features' would send each "
                "node's feature statistics without privacy accounting; set it to false and give "
                "the scaling in '[model] input_mean' and 'input_std' (from public ranges, e.g. "
                "a data dictionary), or turn privacy off"
            )
        if self.privacy.sample_level and self.strategy.name == "fedprox":
            raise ValueError(
                "[privacy] mode 'dpsgd' cannot train with fedprox: its proximal term's gradient "
                "would bypass the per-example clip; choose fedavg or another strategy"
            )
        if self.privacy.mode == "distributed" and not self.secure_aggregation.enabled:
            raise ValueError(
                "[privacy] mode 'distributed' needs '[secure_aggregation] enabled = true': each "
                "node's share of the noise protects nothing on its own; only the masked sum "
                "carries the full noise"
            )
        return self

    def canonical_json(self) -> str:
        """A stable JSON text of the spec (sorted keys), for checkpoints and digests."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """SHA-256 of every setting that shapes the model; a checkpoint refuses any other job.

        Operational settings are left out (the number of rounds, deadlines, retries, evaluation
        cadence, waiting for nodes, the simulation backend, the package named as the model's
        plug-in), so a stopped job can be resumed with more rounds or a longer deadline, and still
        yields the model an uninterrupted run would.
        """
        document = self.model_dump(mode="json")
        if not self.secure_aggregation.enabled:  # a job without it keeps its earlier digest
            document.pop("secure_aggregation")
        if not self.privacy.enabled:  # likewise
            document.pop("privacy")
        elif self.privacy.clipping == "fixed":  # a job from before adaptive clipping keeps its own
            for key in ("clipping", *_ADAPTIVE_CLIPPING_KEYS):
                document["privacy"].pop(key)
        for key in ("input_mean", "input_std"):  # likewise, without a given input scaling
            if document["model"].get(key) is None:
                document["model"].pop(key, None)
        for section, keys in _OPERATIONAL_KEYS.items():
            for key in keys or list(document.get(section) or {}):
                (document.get(section) or {}).pop(key, None)
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def job_id(self) -> str:
        """``<name>-<first 12 hex of the digest>``: the id every message is bound to."""
        return f"{self.job.name}-{self.digest[:12]}"


def parse_job_spec(document: dict[str, Any], *, source: str = "job spec") -> JobSpec:
    """Validate a parsed TOML document into a :class:`JobSpec`.

    Numbers are strict: a quoted number, a boolean where a number belongs and a float where an
    integer belongs are refused in every section, options included.

    Raises
    ------
    ConfigError
        Naming every offending key (as ``section.key``) and what was expected.
    """
    try:
        # As JSON, so that validation stays strict for numbers while text still names enum members;
        # TOML dates and times, which no key takes, become their ISO text.
        text = json.dumps(document, default=_iso_text)
        spec = JobSpec.model_validate_json(text)
    except (TypeError, ValueError) as exc:
        if not isinstance(exc, ValidationError):
            raise ConfigError(f"Invalid {source}: {exc}.") from exc
        problems = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"Invalid {source}: " + "; ".join(problems) + ".") from exc
    _check_registered_names(spec)
    return spec


def _iso_text(value: object) -> str:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"a value of type {type(value).__name__} is not a TOML value")


# What a number in a job file must look like, by pydantic error type.
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false"}


def _describe(error: ErrorDetails) -> str:
    """One problem of a validation error, naming the key as ``section.key``."""
    location = [str(part) for part in error["loc"]]
    got = error.get("input")
    if error["type"] == _QUOTED_OPTION:
        context = error.get("ctx") or {}
        key = ".".join([*location, str(context.get("key"))])
        value = context.get("value")
        name = str(context.get("key"))
        return (
            f"'{key}' must hold numbers without quotes; got {value!r} "
            f"(write {name} = {_as_toml_unquoted(value)})"
        )
    key = ".".join(location) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    if error["type"] in _EXPECTED:
        return _describe_scalar(key, location[-1] if location else "key", error["type"], got)
    return f"'{key}' {error['msg'].lower()}; got {got!r}"


def _describe_scalar(key: str, name: str, error_type: str, got: object) -> str:
    """A number or boolean of the wrong type, with how to write it."""
    expected = _EXPECTED[error_type]
    if isinstance(got, str):
        text = got.strip()
        hint = ""
        if error_type == "bool_type" and text.lower() in {"true", "false"}:
            hint = f" (write {name} = {text.lower()}, without quotes)"
        elif error_type != "bool_type" and _NUMBER_TEXT.fullmatch(text):
            hint = f" (write {name} = {text}, without quotes)"
        return f"'{key}' must be {expected}, not text; got {got!r}{hint}"
    if isinstance(got, bool):
        return f"'{key}' must be {expected}, not true or false; got {str(got).lower()}"
    if isinstance(got, float) and math.isfinite(got) and error_type == "int_type":
        return f"'{key}' must be an integer, written without a decimal point; got {got!r}"
    return f"'{key}' must be {expected}; got {got!r}"


def _check_registered_names(spec: JobSpec) -> None:
    """Refuse unknown model or strategy names and strategy options before anything runs."""
    from sovereign_ai.learning import TrainConfig, model_names
    from sovereign_ai.strategies import create_strategy

    if spec.model.name not in model_names():
        if spec.model.plugin is not None:
            raise ConfigError(
                f"This machine does not have model {spec.model.name!r}; install the plug-in "
                f"package {spec.model.plugin!r} (entry point group sovereign_ai.models) on it."
            )
        raise UnknownNameError("model", spec.model.name, model_names())
    create_strategy(spec.strategy.name, **spec.strategy.options)
    TrainConfig(**spec.train.model_dump())


def load_job_spec(path: str | Path) -> JobSpec:
    """Read and validate a job spec TOML file.

    Raises
    ------
    ConfigError
        If the file is missing, is not TOML, or does not validate.
    """
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Job spec file {str(file)!r} does not exist.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Job spec file {str(file)!r} cannot be read: {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Job spec file {str(file)!r} is not valid TOML: {exc}.") from exc
    return parse_job_spec(document, source=f"job spec {str(file)!r}")
