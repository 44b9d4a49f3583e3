"""A node's policy: what its data owner lets leave the site, as a validated TOML file.

The data owner writes ``policy.toml`` in the node's kit folder; every setting is optional, and
the file with none of them is the permissive policy every node without a file runs under (no
rule refuses anything). Unknown or misspelt keys and values of the wrong type are refused with an
error naming the key, so a typo never leaves a rule silently off::

    jurisdiction = "DE"                             # this site's own, recorded with decisions
    allowed_coordinators = ["3f9a...c0"]            # SHA-256 of coordinator certificates
    coordinator_jurisdictions = ["DE", "EU"]        # as the federation CA certified them
    require_secure_aggregation = true
    required_privacy_modes = ["distributed", "dpsgd"]
    max_epsilon_per_job = 3.0                       # at delta = epsilon_delta (1e-5 by default)
    min_cohort = 5
    min_rows_per_statistic = 20
    allowed_models = ["mlp", "logreg"]
    max_parameters = 1_000_000
    max_rounds = 50

    [outputs]
    train = true                                    # model updates
    train_metrics = false                           # training loss and accuracy with an update
    statistics = false                              # feature statistics (count, sums)
    evaluate = ["accuracy"]                         # which evaluation metrics; [] = none

The checks themselves are in :mod:`sovereign_ai.governance.policy_rules`; this module only says
what a policy is. docs/node-policy.md explains each setting for a site's IT team.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from sovereign_ai.core.jurisdiction import check_jurisdiction
from sovereign_ai.errors import ConfigError

__all__ = ["NodePolicy", "OutputsPolicy", "normalise_fingerprint"]

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def normalise_fingerprint(value: str) -> str:
    """A certificate's SHA-256 fingerprint as 64 lowercase hex digits, without separators.

    Accepts what ``openssl x509 -noout -fingerprint -sha256`` prints (``AB:CD:...``, with or
    without the ``sha256 Fingerprint=`` prefix) as well as plain hex.

    Raises
    ------
    ValueError
        If ``value`` is not 32 bytes of hex.
    """
    text = value.strip()
    if "=" in text:
        text = text.rsplit("=", 1)[1]
    text = text.replace(":", "").replace(" ", "").lower()
    if not _FINGERPRINT.fullmatch(text):
        raise ValueError(
            "must be a certificate's SHA-256 fingerprint: 64 hex digits, colons allowed "
            f"(openssl x509 -noout -fingerprint -sha256 -in coordinator.pem); got {value!r}"
        )
    return text


def _name(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be a {what}; got {value!r}")
        return value

    return AfterValidator(check)


Jurisdiction = Annotated[str, AfterValidator(check_jurisdiction)]
Fingerprint = Annotated[str, AfterValidator(normalise_fingerprint)]
ModelName = Annotated[str, _name(_MODEL_NAME, "model name (letters, digits, '.', '_', '-')")]
MetricName = Annotated[str, _name(_METRIC_NAME, "metric name, e.g. 'accuracy'")]
PrivacyMode = Literal["none", "central", "distributed", "local", "dpsgd"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class OutputsPolicy(_Strict):
    """The ``[outputs]`` table: which kinds of answer may leave the node at all.

    Parameters
    ----------
    train
        Model updates (the train stage, plain or under secure aggregation). ``false`` makes the
        node an evaluation-only member: it refuses every train task.
    train_metrics
        Whether an update carries the node's training loss and accuracy; ``false`` removes them
        (the update still leaves). Under differential privacy they never leave anyway.
    statistics
        Feature statistics before round 1 (row count, per-column sums and sums of squares), which
        a job gathers to scale inputs when ``[coordinator] standardize_features`` is on.
    evaluate
        Which metrics of local evaluation may leave: ``true`` any the node computes (``loss``,
        ``accuracy``), ``false`` or ``[]`` none (evaluation tasks are refused), or a list of
        names; the others are removed from the answer.
    """

    train: bool = True
    train_metrics: bool = True
    statistics: bool = True
    evaluate: bool | tuple[MetricName, ...] = True

    def evaluation_metrics(self, computed: tuple[str, ...]) -> tuple[str, ...]:
        """Of the metric names ``computed``, those this policy lets leave, in that order."""
        if self.evaluate is True:
            return computed
        if self.evaluate is False:
            return ()
        return tuple(name for name in computed if name in self.evaluate)

    @property
    def allows_evaluation(self) -> bool:
        """Whether any evaluation metric may leave."""
        return self.evaluate is True or (self.evaluate is not False and len(self.evaluate) > 0)


class NodePolicy(_Strict):
    """What a node's data owner lets leave the site: checked against each job and each task.

    Every setting is optional; the defaults refuse nothing. A list left empty means "any".

    Parameters
    ----------
    jurisdiction
        This site's own jurisdiction (e.g. ``"DE"``), shown at start and recorded with every
        decision. The node checks nothing against it: where a site is is what its owner states.
    allowed_coordinators
        SHA-256 fingerprints of the coordinator certificates this node works for (hex, colons
        allowed). Empty: any coordinator the federation CA certified. A renewed certificate has
        a new fingerprint.
    coordinator_jurisdictions
        Jurisdictions the coordinator may be under, as the federation CA wrote into its
        certificate (``[coordinator] jurisdiction`` of the federation file). Empty: any. Codes
        are compared exactly: list ``"DE"`` and ``"EU"`` to accept either.
    require_secure_aggregation
        Refuse jobs without secure aggregation: this node's update and statistics then leave
        only masked, summed with the cohort's.
    required_privacy_modes
        The ``[privacy] mode`` values a job may have (``none``, ``central``, ``distributed``,
        ``local``, ``dpsgd``). Empty: any, including none.
    max_epsilon_per_job
        The most ε one job may cost this node's data, measured by the node itself (RDP
        accounting, an upper bound) at δ = ``epsilon_delta``; a job without differential
        privacy has no bound and is refused. ``None``: no limit.
    epsilon_delta
        The δ at which ``max_epsilon_per_job`` is measured: the node's, so the coordinator
        cannot move it.
    min_cohort
        The smallest cohort whose aggregate this node's update may go into: the job's declared
        minimum of training nodes, and under secure aggregation also the nodes whose masked
        inputs each round actually sums (checked before masking and before unmasking).
    min_rows_per_statistic
        Refuse feature statistics and evaluation metrics computed over fewer rows (0: no
        minimum).
    allowed_models
        Model names a job may train. Empty: any model installed on this machine.
    max_parameters
        The most parameters (weights) the job's model may have. ``None``: no limit.
    outputs
        Which kinds of answer may leave (:class:`OutputsPolicy`).
    max_rounds
        The most rounds a job may have. ``None``: no limit.
    """

    jurisdiction: Jurisdiction | None = None
    allowed_coordinators: tuple[Fingerprint, ...] = ()
    coordinator_jurisdictions: tuple[Jurisdiction, ...] = ()
    require_secure_aggregation: bool = False
    required_privacy_modes: tuple[PrivacyMode, ...] = ()
    max_epsilon_per_job: float | None = Field(default=None, gt=0.0, le=1e4)
    epsilon_delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    min_cohort: int = Field(default=1, ge=1, le=1_000_000)
    min_rows_per_statistic: int = Field(default=0, ge=0, le=1_000_000_000)
    allowed_models: tuple[ModelName, ...] = ()
    max_parameters: int | None = Field(default=None, ge=1)
    outputs: OutputsPolicy = OutputsPolicy()
    max_rounds: int | None = Field(default=None, ge=1, le=100_000)

    @classmethod
    def parse(cls, document: Mapping[str, Any], *, source: str) -> NodePolicy:
        """Validate a parsed ``policy.toml``, naming every offending key.

        Numbers and booleans are strict: ``min_cohort = "5"`` or ``max_rounds = 10.0`` are
        refused rather than converted.

        Raises
        ------
        ConfigError
            Naming each unknown key (with the nearest known one) and each invalid value.
        """
        try:
            text = json.dumps(dict(document), default=_not_a_setting)
            return cls.model_validate_json(text)
        except TypeError as exc:
            raise ConfigError(f"The node policy {source} is invalid: {exc}.") from exc
        except ValidationError as exc:
            problems = "; ".join(_problems(exc.errors()))
            raise ConfigError(
                f"The node policy {source} is invalid: {problems}. No rule is applied until "
                "the file is fixed: the node does not start."
            ) from exc

    def summary(self) -> str:
        """One line for the node's start-up output: every rule that refuses something."""
        where = f"site in {self.jurisdiction}; " if self.jurisdiction else ""
        return where + "; ".join(self.rules())

    def rules(self) -> list[str]:
        """Each rule in force, in a few words (``"≤ 50 rounds"``); the last says which outputs
        may leave."""
        rules: list[str] = []
        if self.allowed_coordinators:
            rules.append(f"{len(self.allowed_coordinators)} pinned coordinator(s)")
        if self.coordinator_jurisdictions:
            rules.append(f"coordinator in {'/'.join(self.coordinator_jurisdictions)}")
        if self.require_secure_aggregation:
            rules.append("secure aggregation required")
        if self.required_privacy_modes:
            rules.append(f"privacy {'/'.join(self.required_privacy_modes)}")
        if self.max_epsilon_per_job is not None:
            rules.append(f"ε ≤ {self.max_epsilon_per_job:g}/job (δ {self.epsilon_delta:g})")
        if self.min_cohort > 1:
            rules.append(f"cohort ≥ {self.min_cohort}")
        if self.min_rows_per_statistic > 0:
            rules.append(f"≥ {self.min_rows_per_statistic} rows/statistic")
        if self.allowed_models:
            rules.append(f"models {'/'.join(self.allowed_models)}")
        if self.max_parameters is not None:
            rules.append(f"≤ {self.max_parameters:,} parameters")
        if self.max_rounds is not None:
            rules.append(f"≤ {self.max_rounds} rounds")
        rules.append(f"outputs: {_outputs_summary(self.outputs)}")
        return rules


def _outputs_summary(outputs: OutputsPolicy) -> str:
    kinds = []
    if outputs.train:
        kinds.append("updates" + ("" if outputs.train_metrics else " (no metrics)"))
    if outputs.statistics:
        kinds.append("statistics")
    if outputs.evaluate is True:
        kinds.append("evaluation")
    elif outputs.allows_evaluation and outputs.evaluate is not False:
        kinds.append(f"evaluation ({', '.join(outputs.evaluate)})")
    return ", ".join(kinds) or "nothing"


def _not_a_setting(value: object) -> str:
    raise TypeError(f"a value of type {type(value).__name__} is not a policy setting")


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "text in quotes",
    "tuple_type": 'a list, e.g. ["a", "b"]',
    "model_type": "a table",
}


_UNION_EXPECTED = {"outputs.evaluate": 'true, false or a list of metric names, e.g. ["accuracy"]'}
"""What a setting that takes one of several types expects, said once for all its branches."""


def _known_keys(section: str | None) -> list[str]:
    """The keys allowed in ``section`` (``None``: the top level), for a 'did you mean'."""
    model: type[BaseModel] = OutputsPolicy if section == "outputs" else NodePolicy
    return list(model.model_fields)


def _location(error: ErrorDetails) -> tuple[str, bool]:
    """The key as written in the file (``allowed_coordinators[0]``), and whether the error is
    about one branch of a setting that takes several types (pydantic names the branch)."""
    key, is_branch = "", False
    for part in error["loc"]:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part == "bool" or "[" in part:
            is_branch = True
        else:
            key += f".{part}" if key else part
    return key or "(top level)", is_branch


def _problems(errors: list[ErrorDetails]) -> list[str]:
    """Each problem once, the branches of a several-type setting folded into one."""
    located = [(error, *_location(error)) for error in errors]
    problems: list[str] = []
    for error, key, is_branch in located:
        if is_branch and key in _UNION_EXPECTED and error["type"] in _EXPECTED:
            deeper = any(other.startswith(f"{key}[") for _, other, _ in located)
            if deeper:  # a list was given: its items' errors say more
                continue
            problem = f"'{key}' must be {_UNION_EXPECTED[key]}; got {error.get('input')!r}"
        else:
            problem = _describe(error, key)
        if problem not in problems:
            problems.append(problem)
    return problems


def _describe(error: ErrorDetails, key: str) -> str:
    """One problem, naming the key as it is written in the file (``outputs.evaluate``)."""
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        section, _, name = key.rpartition(".")
        known = _known_keys(section or None)
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"unknown key '{key}'{hint}; the known keys are {', '.join(known)}"
    if kind in _EXPECTED:
        return f"'{key}' must be {_EXPECTED[kind]}; got {got!r}"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
    if kind == "value_error":
        return f"'{key}' {message}"
    return f"'{key}' must be {message}; got {got!r}"
