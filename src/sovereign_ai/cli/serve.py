"""``sovereign serve``: an Open Inference Protocol v2 server over signed edge bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sovereign_ai.cli._errors import friendly_errors

__all__ = ["serve"]


def serve(
    bundle: Annotated[
        list[Path],
        typer.Option("--bundle", help="An edge bundle folder to serve; repeat for several."),
    ],
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="The federation CA certificate (PEM): the bundles' signer "
            "must hold a certificate it issued.",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind; anything but loopback is reachable "
            "by others, and the server has no authentication.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8080,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most rows in one ONNX Runtime call.")
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            min=0.0,
            max=1000.0,
            help="Latency bound: the longest a request waits for others to batch with.",
        ),
    ] = 2.0,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Run every request on its own.")
    ] = False,
) -> None:
    """Serve models over the Open Inference Protocol v2 (REST), offline.

    Every bundle is verified before its model is loaded (signature, every file's digest, and with
    --ca the signer's certificate); one that fails stops the server from starting, naming what
    failed. Binds to 127.0.0.1 unless --host says otherwise.
    """
    console = Console(stderr=True)
    with friendly_errors():
        from sovereign_ai.errors import ConfigError
        from sovereign_ai.serving import (
            BatchingConfig,
            ServedModel,
            bundle_folder,
            create_app,
            is_loopback,
            run_server,
            verify_bundle,
        )
        from sovereign_ai.serving.encrypted import EncryptedInference, encrypted_models_of

        try:
            ca_pem = None if ca is None else ca.read_bytes()
        except OSError as exc:
            raise ConfigError(f"The CA certificate {ca} cannot be read: {exc}.") from exc
        checked = [verify_bundle(bundle_folder(source), ca_pem=ca_pem) for source in bundle]
        for source, verified in zip(bundle, checked, strict=True):
            manifest = verified.manifest
            console.print(
                f"Verified {escape(str(source))}: {manifest.name} version {manifest.version} "
                f"({manifest.variant}); signature and digests"
                + (", signer certified by the CA" if ca_pem else ""),
                highlight=False,
            )
        models = [ServedModel(verified) for verified in checked]  # only once all verified
        encrypted = encrypted_models_of(checked)
        app = create_app(
            models,
            batching=BatchingConfig(
                is_enabled=not no_batching, max_batch=max_batch, max_wait_ms=max_wait_ms
            ),
            capabilities=[EncryptedInference(encrypted)] if encrypted else [],
        )
    if not is_loopback(host):
        console.print(
            f"[bold yellow]warning:[/] binding {escape(host)}: this server has no authentication "
            "or TLS, so anyone who can reach the port can query the models. Put it behind an "
            "authenticating reverse proxy, or keep it on 127.0.0.1.",
            highlight=False,
        )
    base = f"http://{host}:{port}"
    for model in models:
        console.print(f"  {model.name}: POST {base}/v2/models/{model.name}/infer", highlight=False)
    for name in encrypted:
        console.print(f"  {name}: encrypted (CKKS): POST {base}/v2/models/{name}/infer-encrypted",
                      highlight=False)  # fmt: skip
    console.print(f"  health: {base}/v2/health/ready   metrics: {base}/metrics", highlight=False)
    run_server(app, host=host, port=port)
