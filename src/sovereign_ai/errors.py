"""The one exception tree of the Sovereign AI Framework.

Every error the public API raises is a :class:`SovereignError`. Where a caller would naturally
catch a builtin, the error also subclasses it (a bad setting is a ``ValueError`` too), so code that
knows nothing of this package still behaves.

::

    SovereignError
    ├── ConfigError (ValueError)             a setting, job spec or argument is invalid
    │   └── UnknownNameError (KeyError)      a model, strategy or dataset name is not registered
    ├── DataError (ValueError)               a dataset or file the user supplied is unusable
    ├── SerializationError (ValueError)      bytes are not a valid tensor payload or message
    ├── InferenceRequestError (ValueError)   an inference request does not fit the model served
    ├── FederationError                      the round loop cannot go on
    │   ├── InsufficientNodesError           fewer nodes answered than the minimum cohort
    │   ├── StaleMessageError                a message is bound to another job, round, stage or node
    │   ├── InvalidAnswerError               a node's answer does not fit what its stage expects
    │   ├── AggregationError                 a round's aggregate could not be adopted
    │   ├── NodeUnreachableError             a node could not be reached or went away
    │   └── SecureAggregationError           a secure-aggregation key, share or message is unusable
    │       ├── BelowThresholdError          fewer shares or survivors than the threshold t
    │       └── ShareAuthenticationError     an encrypted share was tampered with or misaddressed
    ├── PrivacyBudgetError                   a data owner's privacy budget refuses a job or a round
    ├── AuditError                           an audit log or a proof of it does not verify
    ├── SignatureError                       a signature or the certificate carrying it is invalid
    ├── EncryptionError                      an encryption context or ciphertext is unusable
    ├── CheckpointError                      durable coordinator state is missing or corrupt
    ├── RegistryError                        a model registry, or a version in it, is unreadable
    ├── TransportError                       the network failed underneath a message
    │   └── AuthenticationError              a peer's certificate or identity was refused
    ├── ProvisioningError                    certificates or startup kits cannot be made or read
    ├── PolicyRefusalError                   a node's policy refuses a job or task (sends a code)
    └── StrategyConformanceError (AssertionError)   a strategy fails sovereign_ai.testing's checks
                                             (defined in sovereign_ai.testing)

Raise with the offending value and what was expected; chain third-party errors with
``raise ... from exc`` so that none of them escapes the public API.
"""

from __future__ import annotations

__all__ = [
    "AggregationError",
    "AuditError",
    "AuthenticationError",
    "BelowThresholdError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EncryptionError",
    "FederationError",
    "InferenceRequestError",
    "InsufficientNodesError",
    "InvalidAnswerError",
    "NodeUnreachableError",
    "PolicyRefusalError",
    "PrivacyBudgetError",
    "ProvisioningError",
    "RegistryError",
    "SecureAggregationError",
    "SerializationError",
    "ShareAuthenticationError",
    "SignatureError",
    "SovereignError",
    "StaleMessageError",
    "TransportError",
    "UnknownNameError",
]


class SovereignError(Exception):
    """Root of every error raised by the framework."""


class ConfigError(SovereignError, ValueError):
    """A setting, job spec or argument is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (model, strategy, dataset, partitioner) is not registered.

    Parameters
    ----------
    kind
        What was looked up, e.g. ``"strategy"``.
    name
        The name that was asked for.
    known
        The names that are registered.
    """

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"Unknown {kind} {name!r}; expected one of: {', '.join(self.known)}.")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class DataError(SovereignError, ValueError):
    """A dataset or data file the user supplied cannot be used."""


class SerializationError(SovereignError, ValueError):
    """Bytes are not a valid tensor payload or message."""


class InferenceRequestError(SovereignError, ValueError):
    """An inference request does not fit the model served: a missing or unknown input, or a
    wrong datatype or shape (the server answers 400)."""


class FederationError(SovereignError):
    """The round loop cannot go on."""


class InsufficientNodesError(FederationError):
    """Fewer nodes answered a stage than the job's minimum cohort.

    Parameters
    ----------
    stage
        The stage that fell short, e.g. ``"train"``.
    round_number
        The round in which it happened.
    answered
        The nodes that did answer.
    missing
        The nodes that were asked but did not answer in time.
    minimum
        The minimum cohort the job requires.
    reason
        Why the minimum is what it is, when that is not obvious (e.g. Krum's ``2f + 3``).
    """

    def __init__(
        self,
        *,
        stage: str,
        round_number: int,
        answered: list[str],
        missing: list[str],
        minimum: int,
        reason: str | None = None,
    ) -> None:
        self.stage = stage
        self.round_number = round_number
        self.answered = answered
        self.missing = missing
        self.minimum = minimum
        self.reason = reason
        super().__init__(
            f"Round {round_number} stage {stage!r}: {len(answered)} node(s) answered but the job "
            f"needs at least {minimum}; missing: {', '.join(missing) or 'none'}."
            + (f" {reason}" if reason else "")
        )


class StaleMessageError(FederationError):
    """A message is bound to a different job, round, stage or node than expected."""


class InvalidAnswerError(FederationError):
    """A node's answer fits the wire but not what its stage expects; refused as its failure.

    Parameters
    ----------
    node_id
        The node that answered.
    stage
        The stage it answered, e.g. ``"train"``.
    round_number
        The round.
    problem
        What does not fit, e.g. ``"tensor 'w' has shape [3, 2]; expected [2, 3]"``.
    """

    def __init__(self, *, node_id: str, stage: str, round_number: int, problem: str) -> None:
        self.node_id = node_id
        self.stage = stage
        self.round_number = round_number
        self.problem = problem
        super().__init__(
            f"Round {round_number} stage {stage!r}: the answer of node {node_id!r} was refused: "
            f"{problem}."
        )


class AggregationError(FederationError):
    """A round's aggregate could not be adopted (not finite, or not the model's shape)."""


class NodeUnreachableError(FederationError):
    """A node could not be reached, or went away during a stage."""


class PrivacyBudgetError(SovereignError):
    """A data owner's privacy budget refuses a job, or a further contribution to one.

    Parameters
    ----------
    dataset
        The dataset whose budget it is.
    spent
        ε already spent on it, across every job.
    projected
        ε it would have spent after what was asked.
    budget
        The owner's ``max_epsilon``.
    delta
        The δ of all three.
    """

    def __init__(
        self, *, dataset: str, spent: float, projected: float, budget: float, delta: float
    ) -> None:
        self.dataset = dataset
        self.spent = spent
        self.projected = projected
        self.budget = budget
        self.delta = delta
        super().__init__(
            f"Dataset {dataset!r} has spent ε = {spent:.3f} (δ = {delta:g}) across its jobs; "
            f"this would bring it to ε = {projected:.3f}, over its owner's budget of "
            f"ε = {budget:g}. Refused. Ask for fewer rounds or more noise, or have the data "
            "owner raise 'max_epsilon'."
        )


class AuditError(SovereignError):
    """An audit log cannot be read, does not verify, or a proof does not check out."""


class SignatureError(SovereignError):
    """A signature does not verify with its certificate, or the certificate is unusable."""


class EncryptionError(SovereignError):
    """An encryption context or ciphertext is malformed, unsafe (e.g. it carries a secret key)
    or does not fit the model."""


class CheckpointError(SovereignError):
    """Durable coordinator state is missing, corrupt or belongs to another job."""


class RegistryError(SovereignError):
    """A model registry's database or a registered version's files are missing, corrupt or do
    not fit together (``sovereign registry verify`` names which)."""


class TransportError(SovereignError):
    """The network failed underneath a message."""


class AuthenticationError(TransportError):
    """A peer's certificate or claimed identity was refused."""


class ProvisioningError(SovereignError):
    """Certificates or startup kits cannot be created or read."""


class SecureAggregationError(FederationError):
    """A secure-aggregation key, secret share or message cannot be used; the round cannot go on."""


class BelowThresholdError(SecureAggregationError):
    """Fewer shares or surviving nodes than the secret-sharing threshold ``t``.

    Nothing may be aggregated then: reconstructing with fewer than ``t`` shares reveals nothing
    and any "result" would be wrong (fail closed).

    Parameters
    ----------
    what
        What fell short, e.g. ``"shares of node 'n3'"`` or ``"survivors of stage 'unmask'"``.
    available
        How many there are.
    threshold
        How many are needed.
    """

    def __init__(self, *, what: str, available: int, threshold: int) -> None:
        self.what = what
        self.available = available
        self.threshold = threshold
        super().__init__(
            f"Only {available} {what} are available but the threshold is {threshold}; nothing "
            f"was reconstructed. Lower the threshold or keep more nodes in the cohort."
        )


class ShareAuthenticationError(SecureAggregationError):
    """An encrypted secret share failed authentication: tampered, replayed, misaddressed or
    encrypted under another key."""


class PolicyRefusalError(SovereignError):
    """A node's policy refuses a job or a task; what leaves the node says only the reason code.

    ``str()`` of the error is ``"refused by its policy (<code>)"``: that text, and nothing of the
    policy's contents, is what the coordinator receives. :attr:`detail` explains the refusal for
    the node's own log and audit record, and never leaves the node.

    Parameters
    ----------
    code
        A short stable code, e.g. ``"policy.secure_aggregation_required"``
        (:class:`sovereign_ai.governance.RefusalCode`).
    detail
        What was refused and why, for the data owner.
    """

    def __init__(self, code: str, *, detail: str) -> None:
        self.code = str(code)
        self.detail = detail
        super().__init__(f"refused by its policy ({self.code})")

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only detail: rebuild from both
        return (_policy_refusal, (self.code, self.detail))


def _policy_refusal(code: str, detail: str) -> PolicyRefusalError:
    return PolicyRefusalError(code, detail=detail)
