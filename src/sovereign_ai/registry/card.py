"""A model card (Markdown) written from a passport.

Sections of Mitchell et al., "Model Cards for Model Reporting", FAT* 2019: model details,
intended use, factors, metrics, evaluation data, training data, quantitative analyses, ethical
considerations, caveats and recommendations. What the passport records is filled in; what only
the model's owners can say (intended use, factors, ethical considerations) is marked for them
to write, never invented.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sovereign_ai.registry.passport import Lineage, Passport

__all__ = ["model_card"]

_OWNER = "_To be written by the model's owners._"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("—" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines


def _names(values: tuple[str, ...] | None, *, unknown: str) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else unknown


def _details(passport: Passport, lineage: Lineage) -> list[str]:
    coordinator = lineage.coordinator
    signed_by = (
        f"coordinator `{coordinator.name}` of federation `{coordinator.federation}` "
        f"(certificate SHA-256 `{coordinator.certificate_fingerprint}`"
        + (f", jurisdiction {coordinator.jurisdiction})" if coordinator.jurisdiction else ")")
        if coordinator is not None
        else "nobody: a simulation's passport is unsigned"
    )
    software = lineage.software
    return [
        "## Model details",
        "",
        f"- Name and version: `{passport.model_name}:{passport.version}`, registered "
        f"{passport.registered_at}",
        f"- Architecture: `{lineage.architecture}`"
        + (
            f" `{json.dumps(lineage.architecture_options)}`" if lineage.architecture_options else ""
        ),
        f"- Trained by federated learning ({lineage.mode}), job `{lineage.job_id}` (spec "
        f"SHA-256 `{lineage.job_spec_digest}`), strategy `{lineage.strategy}`, "
        f"{lineage.rounds_completed} of {lineage.rounds} rounds",
        f"- Parameters: SHA-256 `{passport.parameter_digest}`",
        f"- Passport signed by {signed_by}",
        f"- Software: sovereign-ai {software.sovereign_ai}, torch {software.torch}, numpy "
        f"{software.numpy}, Python {software.python}",
    ]


def _contributors(lineage: Lineage) -> list[str]:
    privacy = lineage.privacy
    lines = [
        f"Held by {len(lineage.nodes)} node(s); no record left its node, only model updates"
        + (" under secure aggregation" if lineage.secure_aggregation else "")
        + ".",
        "",
        *_table(
            ("node", "rounds answered", "certificate SHA-256", "jurisdiction", "ε", "δ"),
            (
                (
                    f"`{n.node_id}`",
                    n.rounds_answered,
                    f"`{n.certificate_fingerprint[:16]}…`" if n.certificate_fingerprint else None,
                    n.jurisdiction,
                    None if n.epsilon is None else f"{n.epsilon:.3g}",
                    None if n.delta is None else f"{n.delta:g}",
                )
                for n in lineage.nodes
            ),
        ),
        "",
    ]
    if privacy.mode == "none":
        lines.append("Differential privacy: none; the updates are not noised.")
    else:
        unit = "one node's whole data" if privacy.unit == "node" else "one record"
        lines.append(
            f"Differential privacy: mode `{privacy.mode}` protecting {unit}, "
            f"{privacy.accounting} accounting, clip {privacy.clip} ({privacy.clipping}). "
            f"{privacy.epsilon_basis}"
        )
    secure = lineage.secure_aggregation
    if secure is not None:
        lines += [
            "",
            f"Secure aggregation: SecAgg+, {secure.nodes} nodes per round, {secure.neighbours} "
            f"neighbours, threshold {secure.threshold}, modulus 2^{secure.modulus_bits}, "
            f"{secure.quantisation_bits}-bit quantisation over ±{secure.clipping_range:g}.",
        ]
    return lines


def _data(lineage: Lineage) -> list[str]:
    data = lineage.data
    scaling = data.input_scaling
    return [
        f"- Dataset: {f'`{data.dataset}`' if data.dataset else 'not known to the coordinator'}",
        f"- Features ({data.num_features or '?'}): "
        + _names(data.feature_names, unknown="names not known to the coordinator"),
        f"- Classes ({data.num_classes or '?'}): "
        + _names(data.class_names, unknown="names not known to the coordinator"),
        "- Input scaling: "
        + (
            f"{scaling.source} (`(x - mean) / std` over {len(scaling.mean)} features)"
            if scaling is not None
            else "none recorded"
        ),
    ]


def _quantitative(lineage: Lineage) -> list[str]:
    if not lineage.metrics:
        return ["No round reported metrics."]
    names = sorted({k for r in lineage.metrics for k in r.metrics})
    return _table(
        ("round", "answered", *names),
        (
            (
                r.round_number,
                len(r.answered),
                *(f"{r.metrics[k]:.4f}" if k in r.metrics else None for k in names),
            )
            for r in lineage.metrics
        ),
    )


def model_card(passport: Passport) -> str:
    """The Markdown model card of ``passport``'s model."""
    lineage = passport.lineage
    last = lineage.metrics[-1].metrics if lineage.metrics else {}
    metrics = ", ".join(f"`{k}` {v:.4f}" for k, v in sorted(last.items())) or "none reported"
    central = any(k.startswith("central_") for k in last)
    sections = [
        f"# Model card: {passport.model_name}:{passport.version}",
        "",
        *_details(passport, lineage),
        "",
        "## Intended use",
        "",
        _OWNER,
        "",
        "## Factors",
        "",
        _OWNER
        + " Relevant groups, instruments or environments of the nodes' data are not recorded "
        "by the federation.",
        "",
        "## Metrics",
        "",
        f"Last round: {metrics}. `central_*` metrics are measured by the coordinator on a test "
        "set it holds; `federated_*` are the nodes' local test rows, weighted.",
        "",
        "## Evaluation data",
        "",
        "A held-out test set the coordinator holds (see metrics `central_*`)."
        if central
        else "No central test set; only the nodes' own held-out rows, if any.",
        "",
        "## Training data",
        "",
        *_data(lineage),
        "",
        *_contributors(lineage),
        "",
        "## Quantitative analyses",
        "",
        *_quantitative(lineage),
        "",
        "## Ethical considerations",
        "",
        _OWNER,
        "",
        "## Caveats and recommendations",
        "",
        "- Check the model with `sovereign registry verify` (and `--ca` with the federation's CA "
        "certificate) before deploying it: this card is only as good as its passport.",
        "- The passport is the coordinator's statement of the job; each node's own audit log "
        "and privacy ledger are its record of what it sent and spent.",
        "- Per-node ε is an upper bound for the whole job at the stated δ; it says nothing of "
        "privacy where the mode is `none`.",
        "",
    ]
    return "\n".join(sections)
