from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sovereign_ai.cli.main import app
from sovereign_ai.data import Standardizer, load_builtin
from sovereign_ai.edge import load_bundle
from sovereign_ai.federation.run_folder import RunFolder
from sovereign_ai.learning import TrainConfig, create_model, get_parameters, train
from sovereign_ai.pki import load_node_kit, parse_federation_spec, provision

runner = CliRunner(env={"COLUMNS": "220"})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    spec = parse_federation_spec({
        "federation": {"name": "edge-test", "validity_days": 30},
        "coordinator": {"name": "coordinator", "address": "127.0.0.1:8443",
                        "hosts": ["localhost", "127.0.0.1"]},
        "nodes": [{"name": "north"}],
    })  # fmt: skip
    kits = provision(spec, root / "fed", allow_unencrypted_keys=True).out_dir
    rows = load_builtin("iris")
    model = create_model("logreg", num_features=4, num_classes=3, seed=0)
    scaling = Standardizer.fit(rows.features)
    with torch.no_grad():
        model.input_mean.copy_(torch.from_numpy(scaling.mean.astype(np.float32)))
        model.input_std.copy_(torch.from_numpy(scaling.scale.astype(np.float32)))
    train(model, rows.features, rows.labels,
          config=TrainConfig(local_epochs=30, learning_rate=0.05), seed=0)  # fmt: skip
    model_file = RunFolder(root / "run").write_model(get_parameters(model))
    job = root / "job.toml"
    job.write_text('[job]\nname = "iris-edge"\n\n[model]\nname = "logreg"\n')
    labelled = root / "site.csv"
    with labelled.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*rows.feature_names, "species"])
        for x, y in zip(rows.features, rows.labels, strict=True):
            writer.writerow([*map(float, x), rows.class_names[y]])
    unlabelled = root / "calibration.csv"
    with unlabelled.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(rows.feature_names)
        writer.writerows(rows.features[::3].tolist())
    return {"root": root, "kit": kits / "nodes" / "north", "model": model_file, "job": job,
            "labelled": labelled, "unlabelled": unlabelled}  # fmt: skip


def test_export_splits_the_calibration_file_and_signs_the_bundle(setup: dict[str, Path]) -> None:
    out = setup["root"] / "bundle-split"
    result = runner.invoke(app, [
        "export", "--model-file", str(setup["model"]), "--job", str(setup["job"]),
        "--calibration", str(setup["labelled"]), "--label", "species",
        "--kit", str(setup["kit"]), "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "No --holdout: 45 of the 150 rows" in result.output
    for variant in ("fp32", "int8-static", "int8-dynamic-matmul", "pruned", "pruned-int8"):
        assert variant in result.output
    assert "chosen" in result.output
    bundle = load_bundle(out)
    assert bundle.manifest.name == "iris-edge"
    assert bundle.manifest.class_names == ("setosa", "versicolor", "virginica")
    assert bundle.manifest.metrics["holdout_rows"] == 45
    assert bundle.signer_certificate == load_node_kit(setup["kit"]).certificate_pem


def test_export_with_unlabelled_calibration_and_a_holdout(setup: dict[str, Path]) -> None:
    out = setup["root"] / "bundle-holdout"
    result = runner.invoke(app, [
        "export", "--model-file", str(setup["model"]), "--job", str(setup["job"]),
        "--calibration", str(setup["unlabelled"]), "--holdout", str(setup["labelled"]),
        "--label", "species", "--variants", "fp32,int8-static,pruned",
        "--kit", str(setup["kit"]), "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pruned variants not built" in result.output  # no labelled rows to fine-tune on
    assert load_bundle(out).manifest.metrics["holdout_rows"] == 150


def test_export_refuses_without_labels_or_a_bundle_folder_that_exists(
    setup: dict[str, Path],
) -> None:
    base = ["export", "--model-file", str(setup["model"]), "--job", str(setup["job"]),
            "--kit", str(setup["kit"])]  # fmt: skip
    result = runner.invoke(app, [*base, "--calibration", str(setup["unlabelled"]),
                                 "--out", str(setup["root"] / "x")])  # fmt: skip
    assert result.exit_code == 2 and "Validation needs labelled rows" in result.output
    result = runner.invoke(app, [*base, "--calibration", str(setup["labelled"]),
                                 "--label", "species", "--variants", "fp64",
                                 "--out", str(setup["root"] / "y")])  # fmt: skip
    assert result.exit_code == 2 and "--variants must name" in result.output
    result = runner.invoke(app, ["export", "iris@prod", "--calibration", "c.csv", "--kit", "k",
                                 "--out", "o"])  # fmt: skip
    assert result.exit_code == 2 and "--model-file" in result.output
