"""From a trained model to a signed edge bundle, on the node that holds the operator's rows.

Composes :mod:`sovereign_ai.edge` (export, quantise, prune, validate, pick, bundle) with
:mod:`sovereign_ai.learning` (build the named model, fine-tune a pruned copy). Where the model
comes from is one small record, :class:`ExportSource`: today it is read from a run folder's
``model.safetensors`` and the job spec (:func:`source_from_run`); a registry reference will
resolve to the same record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sovereign_ai.core import Parameters
from sovereign_ai.core.signatures import Signer
from sovereign_ai.edge import (
    Bundle,
    CompressionResult,
    InputScaling,
    Variant,
    compress_model,
    graph_signature,
    write_bundle,
)
from sovereign_ai.errors import ConfigError, DataError, SerializationError
from sovereign_ai.federation.encrypted_models import ENCRYPTABLE_MODELS, ENCRYPTED_WEIGHTS_FILE
from sovereign_ai.federation.job import load_job_spec

__all__ = ["ExportSource", "HoldoutRows", "export_edge_bundle", "source_from_run"]

FINE_TUNE_EPOCHS = 3
FINE_TUNE_LEARNING_RATE = 1e-3  # Adam's usual step: small enough not to undo the training


@dataclass(frozen=True)
class ExportSource:
    """A trained model to export, and what is known of it.

    Parameters
    ----------
    parameters
        The weights (with ``input_mean`` / ``input_std``, the scaling the graph will hold).
    model_name, model_options
        The zoo model and its options, as the job named them.
    num_features, num_classes
        The model's shape.
    name, version
        What the bundle is called (registry name and version, or the job's).
    feature_names, class_names
        The data schema, where known.
    passport_sha256
        SHA-256 of the model's passport, once it comes from the registry.
    provenance
        Further ``source`` entries of the manifest (e.g. the job digest).
    """

    parameters: Parameters
    model_name: str
    model_options: dict[str, Any]
    num_features: int
    num_classes: int
    name: str
    version: str
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    passport_sha256: str | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    def input_scaling(self) -> InputScaling | None:
        """The standardisation the weights carry, or ``None`` if they carry none."""
        if "input_mean" not in self.parameters or "input_std" not in self.parameters:
            return None
        mean, std = self.parameters["input_mean"], self.parameters["input_std"]
        return InputScaling(mean=tuple(map(float, mean)), std=tuple(map(float, std)))


@dataclass(frozen=True)
class HoldoutRows:
    """The operator's labelled rows every variant is validated on."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]


def source_from_run(model_file: Path, job_file: Path) -> ExportSource:
    """The model a run folder's ``model.safetensors`` holds, as the job in ``job_file`` built it.

    ``num_features`` is read from the weights' ``input_mean``; ``num_classes`` from the job
    (``[model] num_classes``), else it is the one bias length with which the weights load into
    the job's model.

    Raises
    ------
    ConfigError
        If a file cannot be read or the weights do not fit the job's model.
    """
    spec = load_job_spec(job_file)
    try:
        payload = Path(model_file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"The model file {model_file} cannot be read: {exc}.") from exc
    try:
        parameters = Parameters.from_bytes(payload)
    except SerializationError as exc:
        raise ConfigError(f"{model_file} is not a model (safetensors): {exc}") from exc
    if "input_mean" not in parameters:
        raise ConfigError(f"{model_file} has no 'input_mean'; it is not a model of this zoo.")
    num_features = int(parameters["input_mean"].shape[0])
    num_classes = spec.model.num_classes or _infer_classes(
        parameters, spec.model.name, spec.model.options, num_features=num_features
    )
    return ExportSource(
        parameters=parameters,
        model_name=spec.model.name,
        model_options=spec.model.options,
        num_features=num_features,
        num_classes=num_classes,
        name=spec.job.name,
        version=spec.digest[:12],
        provenance={
            "job_id": spec.job_id,
            "model_file_sha256": hashlib.sha256(payload).hexdigest(),
        },
    )


def _infer_classes(
    parameters: Parameters, model_name: str, options: dict[str, Any], *, num_features: int
) -> int:
    """The number of classes with which ``parameters`` load into the named model."""
    from sovereign_ai.learning import create_model, set_parameters

    lengths = sorted(
        {int(a.shape[0]) for n, a in parameters.items() if a.ndim == 1 and n[:6] != "input_"}
    )
    for candidate in (n for n in lengths if n >= 2):
        model = create_model(
            model_name, num_features=num_features, num_classes=candidate, seed=0, **options
        )
        try:
            set_parameters(model, parameters)
        except SerializationError:
            continue
        return candidate
    raise ConfigError(
        f"The weights do not fit model {model_name!r} with {num_features} features and any "
        "number of classes; is this the job that trained them?"
    )


def _fine_tuner(rows: HoldoutRows, *, seed: int) -> Callable[[Any], None]:
    from sovereign_ai.learning import TrainConfig, train

    config = TrainConfig(
        local_epochs=FINE_TUNE_EPOCHS, learning_rate=FINE_TUNE_LEARNING_RATE, optimizer="adam"
    )

    def fine_tune(model: Any) -> None:
        train(model, rows.features, rows.labels, config=config, seed=seed)

    return fine_tune


def export_edge_bundle(
    source: ExportSource,
    *,
    calibration: npt.ArrayLike,
    holdout: HoldoutRows,
    out: Path,
    signer: Signer,
    fine_tune_rows: HoldoutRows | None = None,
    variants: Sequence[Variant] = tuple(Variant),
    max_accuracy_drop: float = 0.3,
    sparsity: float = 0.5,
    latency_runs: int = 200,
    progress: Callable[[str], None] | None = None,
) -> tuple[CompressionResult, Bundle]:
    """Build, validate and pick a variant of ``source``'s model; write it as a signed bundle.

    Parameters
    ----------
    source
        The model.
    calibration
        The operator's raw feature rows for static quantisation.
    holdout
        The operator's labelled rows to validate on (never used to calibrate or fine-tune).
    out
        The bundle folder to create.
    signer
        Signs the bundle (a kit's :class:`~sovereign_ai.pki.IdentitySigner`).
    fine_tune_rows
        Labelled rows to fine-tune pruned copies on; pruned variants are skipped without them.
    variants, max_accuracy_drop, sparsity, latency_runs, progress
        As for :func:`sovereign_ai.edge.compress_model`.

    Raises
    ------
    ConfigError
        If the weights do not fit the model, or the export or a variant fails.
    DataError
        If the rows do not have the model's width.
    """
    import torch

    from sovereign_ai.learning import create_model, set_parameters

    model = create_model(
        source.model_name,
        num_features=source.num_features,
        num_classes=source.num_classes,
        seed=0,
        **source.model_options,
    )
    try:
        set_parameters(model, source.parameters)
    except SerializationError as exc:
        raise ConfigError(f"The weights do not fit model {source.model_name!r}: {exc}") from exc
    for what, rows in (("calibration", np.asarray(calibration)), ("holdout", holdout.features)):
        if rows.ndim != 2 or rows.shape[1] != source.num_features:
            raise DataError(
                f"The {what} rows have shape {rows.shape}; the model takes "
                f"{source.num_features} features per row."
            )
    torch.manual_seed(0)
    result = compress_model(
        model,
        num_features=source.num_features,
        calibration=calibration,
        holdout_features=holdout.features,
        holdout_labels=holdout.labels,
        variants=variants,
        fine_tune=None if fine_tune_rows is None else _fine_tuner(fine_tune_rows, seed=0),
        sparsity=sparsity,
        max_accuracy_drop=max_accuracy_drop,
        latency_runs=latency_runs,
        progress=progress,
    )
    chosen = result.chosen
    graph = result.graphs[chosen.variant]
    inputs, outputs = graph_signature(graph)
    fp32 = result.reports[0]
    metrics = chosen.metrics() | {
        "fp32_accuracy": fp32.accuracy,
        "fp32_size_bytes": float(fp32.size_bytes),
        "fp32_latency_b1_ms": fp32.latency_b1_ms,
        "fp32_latency_b64_ms": fp32.latency_b64_ms,
        "holdout_rows": float(len(holdout.labels)),
        "export_max_abs_diff": result.equivalence.max_abs_diff,
    }
    if result.sparsity is not None and chosen.variant in (Variant.PRUNED, Variant.PRUNED_INT8):
        metrics["weight_sparsity"] = result.sparsity
    provenance = dict(source.provenance)
    extra_files = {}
    if source.model_name in ENCRYPTABLE_MODELS:  # its fp32 weights, for encrypted inference
        provenance["model"] = source.model_name
        extra_files[ENCRYPTED_WEIGHTS_FILE] = source.parameters.to_bytes()
    if source.passport_sha256 is not None:
        provenance["passport_sha256"] = source.passport_sha256
    bundle = write_bundle(
        out,
        model=graph,
        name=source.name,
        version=source.version,
        variant=chosen.variant.value,
        inputs=inputs,
        outputs=outputs,
        signer=signer,
        feature_names=source.feature_names,
        class_names=source.class_names,
        input_scaling=source.input_scaling(),
        metrics=metrics,
        source=provenance,
        extra_files=extra_files,
    )
    return result, bundle
