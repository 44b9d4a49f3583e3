"""``sovereign node start``: run one site's node; it dials out to the coordinator."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from sovereign_ai.cli._errors import friendly_errors
from sovereign_ai.cli._kit_passphrase import terminal_prompt
from sovereign_ai.cli._node_data import (
    ClassesOption,
    ColumnsOption,
    DelimiterOption,
    IgnoreColumnsOption,
    file_layout,
)
from sovereign_ai.cli._node_lines import describe_answer, describe_job_end
from sovereign_ai.cli._runtime import use_one_torch_thread
from sovereign_ai.cli.node_check import check
from sovereign_ai.errors import ConfigError

if TYPE_CHECKING:
    from sovereign_ai.federation import Node
    from sovereign_ai.federation.governed_node import PolicyGuard
    from sovereign_ai.federation.private_node import NodePrivacySettings
    from sovereign_ai.governance import AuditLog, NodePolicy
    from sovereign_ai.pki import NodeKit

__all__ = ["node_app"]

node_app = typer.Typer(
    help="Run a node: it keeps your data on this machine and answers the coordinator's tasks.",
    no_args_is_help=True,
)
node_app.command("check")(check)

POLICY_FILE = "policy.toml"
"""The node policy's file in the kit folder: the data owner's rules, apart from node.toml so
that it can be kept under change control on its own (docs/node-policy.md)."""


@node_app.command("start")
def start(
    kit: Annotated[Path, typer.Option("--kit", help="This site's startup kit folder.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Your dataset (CSV, Parquet or NPZ). Default: KIT/node.toml."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The column to predict. Default: KIT/node.toml."),
    ] = None,
    classes: ClassesOption = None,
    columns: ColumnsOption = None,
    ignore_columns: IgnoreColumnsOption = None,
    delimiter: DelimiterOption = None,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", help="host:port to dial. Default: the kit's address."),
    ] = None,
    local_test_fraction: Annotated[
        float,
        typer.Option(help="Share of your rows kept back to evaluate the global model locally."),
    ] = 0.2,
    allow_insecure: Annotated[
        bool,
        typer.Option(
            "--allow-insecure",
            help="Dial without TLS. For local tests ONLY: the coordinator is not verified.",
        ),
    ] = False,
) -> None:
    """Connect to the coordinator (outbound only) and answer its tasks until stopped.

    Your rows stay on this machine: the node sends model updates, evaluation metrics and feature
    statistics (row count, sums), never records. KIT/policy.toml, if present, says which of
    those may leave and for which jobs (docs/node-policy.md). If the coordinator restarts, the
    node reconnects on its own. Stop it with Ctrl-C or SIGTERM.
    """
    console = Console()
    with friendly_errors():
        from sovereign_ai.data import load_file
        from sovereign_ai.federation.audited_node import egress_recorder
        from sovereign_ai.federation.deployment import node_from_dataset
        from sovereign_ai.federation.secure_node import enable_secure_aggregation
        from sovereign_ai.federation.transports.grpc import GrpcNodeClient
        from sovereign_ai.pki import expiry_warnings, load_node_kit
        from sovereign_ai.pki.signing import IdentitySigner, NodeSignatureVerifier

        use_one_torch_thread()
        node_kit = load_node_kit(kit, prompt=terminal_prompt())
        for warning in expiry_warnings(node_kit):
            console.print(f"[yellow]warning:[/] {warning}")
        settings = _node_settings(kit)
        data_path = data or _setting_path(kit, settings, "data")
        label_name = label or str(settings.get("label", "")) or None
        class_names = _class_names(classes, settings)
        layout = file_layout(
            columns=columns, ignore_columns=ignore_columns, delimiter=delimiter, settings=settings
        )
        dataset = load_file(data_path, label=label_name, classes=class_names, **layout.as_options())
        node = node_from_dataset(
            node_kit.name, dataset, local_test_fraction=local_test_fraction, seed=0
        )
        audit_log, guard = _govern(console, kit, node_kit, node)
        # Secure aggregation signs this node's advertised keys with its certificate key and
        # checks its neighbours' against the federation CA of the kit.
        enable_secure_aggregation(
            node,
            signer=IdentitySigner.from_kit(node_kit),
            verifier=NodeSignatureVerifier(ca=node_kit.ca),
        )
        client = GrpcNodeClient(
            kit=node_kit,
            node=node,
            address=coordinator,
            allow_insecure=allow_insecure,
            on_answer=lambda report: console.print(describe_answer(report), highlight=False),
            on_coordinator=None if guard is None else guard.coordinator_verified,
            record_egress=egress_recorder(audit_log),  # nothing is sent before it is recorded
        )
        signal.signal(signal.SIGTERM, lambda signum, frame: client.stop())
        signal.signal(signal.SIGINT, lambda signum, frame: client.stop())
        console.print(
            f"Node {node_kit.name!r} holds {dataset.num_examples} rows of {data_path} "
            f"({len(node.data.train_labels)} to train, {len(node.data.test_labels)} to evaluate); "
            f"dialling {coordinator or node_kit.coordinator_address}."
        )
        try:
            ended = client.serve_forever()
        finally:
            audit_log.checkpoint()  # the last long-polls are signed too
            audit_log.close()
    if ended is None:
        console.print(f"Node {node_kit.name!r} stopped.")
        return
    # Exit 0 even when the job failed: the job ended, not this node; the summary says why.
    console.print(describe_job_end(node_kit.name, ended, tasks_answered=client.tasks_handled))


def _govern(
    console: Console, kit: Path, node_kit: NodeKit, node: Node
) -> tuple[AuditLog, PolicyGuard | None]:
    """The site's own controls on ``node``: its policy, privacy budget and audit log."""
    from sovereign_ai.federation.audited_node import enable_audit, policy_recorder
    from sovereign_ai.federation.governed_node import enable_policy
    from sovereign_ai.federation.private_node import enable_differential_privacy, open_node_ledger
    from sovereign_ai.governance.audit_log import AUDIT_FILE, AuditLog, record_start
    from sovereign_ai.pki.signing import IdentitySigner

    # Every task taken and every call sent is recorded, signed, in the kit's audit log.
    audit_log = AuditLog(
        kit / AUDIT_FILE, party=node_kit.name, signer=IdentitySigner.from_kit(node_kit)
    )
    loaded = _node_policy(kit)
    started = record_start(audit_log, kind="node_started", certificate_pem=node_kit.certificate_pem,
                           policy_text=None if loaded is None else loaded[1])  # fmt: skip
    for changed in ("key", "policy"):
        if started.body[f"{changed}_changed"]:
            console.print(f"The {changed} changed since this node last started: recorded.")
    guard = None
    if loaded is not None:  # its egress slot runs first, before privacy and masking
        policy = loaded[0]
        guard = enable_policy(node, policy, record=policy_recorder(audit_log))
        console.print(f"Policy ({kit / POLICY_FILE}): {policy.summary()}", highlight=False)
    else:
        console.print(f"No {POLICY_FILE} in the kit: this node answers every job's tasks.")
    privacy = _privacy_settings(kit)
    if privacy is not None:  # the owner's budget: jobs with DP are accounted in its ledger
        ledger = open_node_ledger(kit, privacy)
        enable_differential_privacy(node, ledger=ledger, dataset=privacy.dataset)
        spent = ledger.spent(privacy.dataset)
        console.print(
            f"Privacy budget of dataset {privacy.dataset!r}: ε {spent:.3f} spent of "
            f"{privacy.max_epsilon:g} (δ = {privacy.delta:g}); see 'sovereign privacy report'."
        )
    enable_audit(node, audit_log)
    console.print(
        f"Audit log: {kit / AUDIT_FILE} ({audit_log.size} entries so far); check it with "
        "'sovereign audit verify'."
    )
    return audit_log, guard


def _node_settings(kit: Path) -> dict[str, Any]:
    path = kit / "node.toml"
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The node settings {str(path)!r} cannot be read: {exc}.") from exc
    section = document.get("node", {})
    if not isinstance(section, dict):
        raise ConfigError(f"The node settings {str(path)!r} need a [node] table.")
    return section


def _privacy_settings(kit: Path) -> NodePrivacySettings | None:
    """The ``[privacy]`` table of the kit's node.toml: the owner's budget (``None`` if absent)."""
    path = kit / "node.toml"
    if not path.exists():
        return None
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The node settings {str(path)!r} cannot be read: {exc}.") from exc
    if "privacy" not in document:
        return None
    from sovereign_ai.federation.private_node import NodePrivacySettings

    return NodePrivacySettings.parse(document["privacy"], source=str(path))


def _node_policy(kit: Path) -> tuple[NodePolicy, bytes] | None:
    """The kit's ``policy.toml``, validated, and its bytes (``None`` if the kit has none)."""
    path = kit / POLICY_FILE
    if not path.exists():
        return None
    try:
        text = path.read_bytes()
        document = tomllib.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"The node policy {str(path)!r} cannot be read: {exc}.") from exc
    from sovereign_ai.governance import NodePolicy

    return NodePolicy.parse(document, source=repr(str(path))), text


def _class_names(option: str | None, settings: dict[str, Any]) -> list[str] | None:
    if option is not None:
        return [name.strip() for name in option.split(",") if name.strip()]
    configured = settings.get("classes")
    if configured is None:
        return None
    if not isinstance(configured, list) or not all(isinstance(c, str) for c in configured):
        raise ConfigError(f"'classes' in node.toml must be a list of strings; got {configured!r}.")
    return configured


def _setting_path(kit: Path, settings: dict[str, Any], key: str) -> Path:
    value = settings.get(key)
    if not isinstance(value, str) or not value or value.startswith("path/to/"):
        raise ConfigError(
            f"Which data should this node use? Pass --data FILE, or set '{key}' in "
            f"{str(kit / 'node.toml')!r}."
        )
    path = Path(value)
    return path if path.is_absolute() else kit / path
