from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sovereign_ai.data import Standardizer, load_builtin, train_test_split
from sovereign_ai.edge import Variant, load_bundle, open_session, run_logits
from sovereign_ai.errors import ConfigError, DataError
from sovereign_ai.federation.edge_export import HoldoutRows, export_edge_bundle, source_from_run
from sovereign_ai.federation.run_folder import RunFolder
from sovereign_ai.learning import TrainConfig, create_model, get_parameters, train
from sovereign_ai.pki.signing import ephemeral_federation

SIGNER = ephemeral_federation("edge", ["north"]).signers["north"]
JOB = '[job]\nname = "wine-edge"\n\n[model]\nname = "mlp"\nhidden = [16]\n'


def trained_run(folder: Path) -> tuple[Path, Path]:
    """A run folder's model.safetensors and its job.toml: an mlp trained on wine."""
    rows = load_builtin("wine")
    model = create_model("mlp", num_features=13, num_classes=3, seed=0, hidden=[16])
    scaling = Standardizer.fit(rows.features)
    with torch.no_grad():
        model.input_mean.copy_(torch.from_numpy(scaling.mean.astype(np.float32)))
        model.input_std.copy_(torch.from_numpy(scaling.scale.astype(np.float32)))
    config = TrainConfig(local_epochs=20, learning_rate=0.01, optimizer="adam")
    train(model, rows.features, rows.labels, config=config, seed=0)
    run = RunFolder(folder)
    run.write_model(get_parameters(model))
    job = folder / "job.toml"
    job.write_text(JOB)
    return run.model, job


def test_source_from_run_reads_shape_and_provenance(tmp_path: Path) -> None:
    model_file, job = trained_run(tmp_path / "run")
    source = source_from_run(model_file, job)
    assert (source.model_name, source.num_features, source.num_classes) == ("mlp", 13, 3)
    assert source.model_options == {"hidden": [16]}
    assert source.name == "wine-edge" and len(source.version) == 12
    assert source.provenance["job_id"].startswith("wine-edge-")
    scaling = source.input_scaling()
    assert scaling is not None and len(scaling.mean) == 13 and min(scaling.std) > 0
    job.write_text('[model]\nname = "logreg"\n')
    with pytest.raises(ConfigError, match="do not fit model 'logreg'"):
        source_from_run(model_file, job)


def test_export_writes_a_verified_bundle_that_takes_raw_features(tmp_path: Path) -> None:
    model_file, job = trained_run(tmp_path / "run")
    source = source_from_run(model_file, job)
    rows = load_builtin("wine")
    kept, held = train_test_split(rows, test_fraction=0.3, seed=1)
    lines: list[str] = []
    result, bundle = export_edge_bundle(
        source,
        calibration=kept.features,
        holdout=HoldoutRows(held.features, held.labels),
        out=tmp_path / "bundle",
        signer=SIGNER,
        fine_tune_rows=HoldoutRows(kept.features, kept.labels),
        latency_runs=20,
        progress=lines.append,
    )
    assert {r.variant for r in result.reports} == set(Variant)
    assert sum(r.is_chosen for r in result.reports) == 1
    assert all(r.reason for r in result.reports)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert any("calibrating" in line for line in lines)
    loaded = load_bundle(bundle.folder)
    manifest = loaded.manifest
    assert manifest.variant == result.chosen.variant.value
    assert manifest.input_scaling == source.input_scaling()
    assert manifest.metrics["holdout_rows"] == len(held.labels)
    assert manifest.metrics["export_max_abs_diff"] <= 1e-4
    assert manifest.source["job_id"] == source.provenance["job_id"]
    graph = loaded.model_path.read_bytes()
    predictions = run_logits(open_session(graph), held.features).argmax(axis=1)  # raw features
    assert np.mean(predictions == held.labels) == pytest.approx(result.chosen.accuracy)


def test_rows_of_the_wrong_width_are_refused(tmp_path: Path) -> None:
    source = source_from_run(*trained_run(tmp_path / "run"))
    with pytest.raises(DataError, match="takes 13 features"):
        export_edge_bundle(
            source,
            calibration=np.zeros((8, 4), dtype=np.float32),
            holdout=HoldoutRows(np.zeros((8, 13), np.float32), np.zeros(8, np.int64)),
            out=tmp_path / "b",
            signer=SIGNER,
        )
