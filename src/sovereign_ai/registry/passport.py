"""A registered model's passport: where it came from, as one canonical JSON document.

The passport is what the coordinator signs. Its canonical bytes (:meth:`Passport.to_bytes`:
sorted keys, no spaces, UTF-8, no NaN or infinity) are the signed message, and it names the
SHA-256 of the model file (``parameter_digest``), so one signature covers the lineage *and* the
parameters. :class:`Lineage` is what the federation knows about the job; :class:`Passport` adds
what the registry assigns at registration (the model's name, version and time).

A passport read back from disk is validated field by field (unknown keys refused): a stored file
is input like any other.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sovereign_ai.errors import RegistryError

__all__ = [
    "CoordinatorRecord",
    "DataSchema",
    "InputScaling",
    "Lineage",
    "NodeRecord",
    "Passport",
    "PrivacyRecord",
    "RoundRecord",
    "SecureAggregationRecord",
    "SoftwareVersions",
    "software_versions",
]

PASSPORT_FORMAT = "sovereign-passport/1"
"""The format string of this version of the passport; a reader refuses any other."""

_SHA256 = r"^[0-9a-f]{64}$"
JsonValue = Any
"""A value of a JSON document (what a job spec's free-form options hold)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SoftwareVersions(_Record):
    """Versions of the software that trained the model (``None``: not installed)."""

    sovereign_ai: str | None
    torch: str | None
    numpy: str | None
    python: str


class CoordinatorRecord(_Record):
    """The coordinator that ran the job and signed the passport (deployment only).

    ``certificate_fingerprint`` is the SHA-256 (hex) of its certificate (DER), the one the
    signature carries; ``jurisdiction`` the one the federation CA certified in it, if any.
    """

    name: str
    federation: str
    certificate_fingerprint: str = Field(pattern=_SHA256)
    jurisdiction: str | None = None


class NodeRecord(_Record):
    """One node that took part.

    ``certificate_fingerprint`` and ``jurisdiction``: from the certificate the node presented
    over mutual TLS and pki verified (deployment); ``None`` in simulation, where nodes have no
    federation identity, or when the coordinator served plaintext (tests).

    ``epsilon`` and ``delta``: the (ε, δ) the job costs this node's data, as its own ledger
    projects the whole job when it first answers (an upper bound of what it spent: a node
    that answered fewer rounds spent no more). Client level (``central``, ``distributed``,
    ``local``): every node of the population is charged every round (Poisson sampling), so all
    nodes have the same figure. Sample level (``dpsgd``): with a target ε each node calibrates
    its own noise to reach it, so the figure is the target; with a fixed noise multiplier it
    depends on the node's row count, which the coordinator knows in simulation and not in
    deployment (``None`` then: the node's ``sovereign privacy report`` has it). ``None`` for
    both without differential privacy.
    """

    node_id: str
    rounds_answered: int = Field(ge=0)
    certificate_fingerprint: str | None = Field(default=None, pattern=_SHA256)
    jurisdiction: str | None = None
    epsilon: float | None = Field(default=None, ge=0.0)
    delta: float | None = Field(default=None, gt=0.0, lt=1.0)


class SecureAggregationRecord(_Record):
    """SecAgg+'s parameters as the job set them and as they worked out for its cohort."""

    nodes: int = Field(ge=1)
    neighbours: int = Field(ge=0)
    threshold: int = Field(ge=1)
    modulus_bits: int = Field(ge=1)
    quantisation_bits: int = Field(ge=1)
    clipping_range: float = Field(gt=0.0)
    dropout_rate: float = Field(ge=0.0)
    corruption_rate: float = Field(ge=0.0)


class PrivacyRecord(_Record):
    """The job's differential privacy (``mode = "none"``: none).

    ``unit`` is what one (ε, δ) protects: a node's whole data (client level) or one record
    (``dpsgd``). ``noise_multiplier`` is ``None`` where each node calibrates its own (``dpsgd``
    with a target ε). ``epsilon_basis`` says in words how the nodes' ε were obtained.
    """

    mode: Literal["none", "central", "distributed", "local", "dpsgd"]
    unit: Literal["node", "record"] | None = None
    accounting: Literal["rdp", "pld"] | None = None
    delta: float | None = None
    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    sampling_rate: float | None = None
    clip: float | None = None
    clipping: Literal["fixed", "adaptive"] | None = None
    epsilon_basis: str = ""


class InputScaling(_Record):
    """How raw features are scaled before the model: ``(x - mean) / std``.

    ``source``: ``given`` (the job's ``[model] input_mean/input_std``), ``pooled`` (the nodes'
    pooled statistics, gathered by the coordinator before round 1) or ``none`` (the model's
    own, untouched values).
    """

    source: Literal["given", "pooled", "none"]
    mean: tuple[float, ...]
    std: tuple[float, ...]


class DataSchema(_Record):
    """What the model takes and predicts; names are ``None`` where the job does not know them
    (a deployed job's nodes hold the data; the coordinator sees only its dimensions)."""

    dataset: str | None = None
    num_features: int | None = Field(default=None, ge=1)
    num_classes: int | None = Field(default=None, ge=2)
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    input_scaling: InputScaling | None = None


class RoundRecord(_Record):
    """One round: who answered and its metrics (finite values only)."""

    round_number: int = Field(ge=1)
    answered: tuple[str, ...]
    metrics: dict[str, float]


class Lineage(_Record):
    """Everything the federation knows of the job that trained a model.

    ``job_spec_digest`` is the job spec's SHA-256 over every setting that shapes the model
    (``JobSpec.digest``); ``job_id`` the id every message of the job was bound to.
    """

    mode: Literal["simulation", "deployment"]
    job_id: str
    job_name: str
    job_spec_digest: str = Field(pattern=_SHA256)
    architecture: str
    architecture_options: dict[str, JsonValue] = Field(default_factory=dict)
    strategy: str
    strategy_options: dict[str, JsonValue] = Field(default_factory=dict)
    rounds: int = Field(ge=1)
    rounds_completed: int = Field(ge=0)
    coordinator: CoordinatorRecord | None = None
    nodes: tuple[NodeRecord, ...]
    secure_aggregation: SecureAggregationRecord | None = None
    privacy: PrivacyRecord
    data: DataSchema
    metrics: tuple[RoundRecord, ...] = ()
    software: SoftwareVersions


class Passport(_Record):
    """A registered version's signed lineage record.

    Parameters
    ----------
    format
        :data:`PASSPORT_FORMAT`.
    model_name, version
        The registry's name and version of the model (signed, so a passport cannot be moved to
        another version).
    registered_at
        When it was registered, ISO 8601 in UTC.
    parameter_digest
        SHA-256 (hex) of the model file, the safetensors bytes of ``Parameters.to_bytes()``.
    lineage
        Where the model came from.
    """

    format: Literal["sovereign-passport/1"] = "sovereign-passport/1"
    model_name: str
    version: int = Field(ge=1)
    registered_at: str
    parameter_digest: str = Field(pattern=_SHA256)
    lineage: Lineage

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes: what is stored, hashed and signed."""
        document = self.model_dump(mode="json")
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Passport:
        """Read a passport from its stored bytes.

        Raises
        ------
        RegistryError
            If the bytes are not a passport of this format.
        """
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise RegistryError(f"The passport is not a valid passport: {problems}.") from exc


def software_versions() -> SoftwareVersions:
    """The versions installed in this process (read from package metadata; nothing imported)."""

    def installed(distribution: str) -> str | None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None

    return SoftwareVersions(
        sovereign_ai=installed("sovereign-ai"),
        torch=installed("torch"),
        numpy=installed("numpy"),
        python=platform.python_version(),
    )
