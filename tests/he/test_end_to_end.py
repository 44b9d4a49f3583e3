"""Encrypted evaluation agrees with the plaintext model, in both layouts, and the server only
ever holds a public context."""

from __future__ import annotations

import numpy as np
import pytest

from sovereign_ai.errors import EncryptionError
from sovereign_ai.he import (
    ContextCache,
    EncryptedBatch,
    EncryptedModel,
    HeClient,
    evaluate,
    load_public_context,
    pack,
    parameters_for,
    unpack,
)
from sovereign_ai.he.client import Layout

RNG = np.random.default_rng(0)
LINEAR = EncryptedModel.from_layers(
    [(RNG.normal(size=(6, 2)) * 0.5, RNG.normal(size=2) * 0.1)],
    input_mean=RNG.normal(size=6), input_std=RNG.uniform(0.5, 2.0, size=6),
)  # fmt: skip
MLP = EncryptedModel.from_layers(
    [(RNG.normal(size=(6, 5)) * 0.3, RNG.normal(size=5) * 0.1),
     (RNG.normal(size=(5, 3)) * 0.3, RNG.normal(size=3) * 0.1)]
)  # fmt: skip


@pytest.fixture(scope="module")
def mlp_client() -> HeClient:
    return HeClient(parameters_for(MLP.depth, precision_bits=12, integer_bits=10), rotations=True)


def round_trip(
    client: HeClient, model: EncryptedModel, rows: np.ndarray, layout: str
) -> np.ndarray:
    batch = client.encrypt(rows, num_features=model.num_features, layout=layout)  # type: ignore[arg-type]
    # Over the wire: the server parses what the client packed, with nothing else.
    header, blobs = unpack(pack({"rows": batch.rows}, batch.ciphertexts), max_blobs=10_000,
                           max_blob_bytes=10 << 20)  # fmt: skip
    context = load_public_context(client.public_context, model=model,
                                  rotations=layout == "vector")  # fmt: skip
    answer = evaluate(model, context, layout=layout, rows=header["rows"], ciphertexts=blobs)
    return client.decrypt(EncryptedBatch(batch.layout, batch.rows, answer),
                          num_outputs=model.num_outputs)  # fmt: skip


@pytest.mark.parametrize("layout", ["columns", "vector"])
def test_the_square_mlp_agrees_with_its_plaintext(mlp_client: HeClient, layout: Layout) -> None:
    rows = RNG.normal(size=(3, 6))
    got = round_trip(mlp_client, MLP, rows, layout)
    expected = MLP.plaintext(rows)
    assert np.max(np.abs(got - expected)) < 1e-2
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_a_linear_model_over_more_rows_than_a_ciphertext_holds() -> None:
    client = HeClient(parameters_for(LINEAR.depth))
    rows = RNG.normal(size=(client.parameters.slots + 7, 6))
    got = round_trip(client, LINEAR, rows, "columns")
    assert np.max(np.abs(got - LINEAR.plaintext(rows))) < 1e-3


def test_the_folded_scaling_is_the_scaled_model() -> None:
    weight, bias = RNG.normal(size=(4, 2)), RNG.normal(size=2)
    mean, std = RNG.normal(size=4), RNG.uniform(0.5, 2, size=4)
    rows = RNG.normal(size=(5, 4))
    folded = EncryptedModel.from_layers([(weight, bias)], input_mean=mean, input_std=std)
    np.testing.assert_allclose(folded.plaintext(rows), ((rows - mean) / std) @ weight + bias)


def test_the_server_never_gets_the_secret_key(mlp_client: HeClient) -> None:
    import tenseal as ts

    public = ts.context_from(mlp_client.public_context)
    assert not public.has_secret_key() and not public.is_private()
    secret = mlp_client._context.serialize(save_secret_key=True)
    with pytest.raises(EncryptionError, match="secret key"):
        load_public_context(secret, model=MLP)


def test_a_context_without_rotation_keys_is_refused_for_the_vector_layout() -> None:
    client = HeClient(parameters_for(MLP.depth, precision_bits=12, integer_bits=10))
    with pytest.raises(EncryptionError, match="Galois"):
        load_public_context(client.public_context, model=MLP, rotations=True)


def test_a_context_too_shallow_for_the_model_is_refused() -> None:
    shallow = HeClient(parameters_for(1))
    with pytest.raises(EncryptionError, match="multiplication"):
        load_public_context(shallow.public_context, model=MLP)


def test_malformed_and_mismatched_ciphertexts_are_refused(mlp_client: HeClient) -> None:
    context = load_public_context(mlp_client.public_context, model=MLP)
    batch = mlp_client.encrypt(RNG.normal(size=(2, 6)), num_features=6, layout="columns")
    with pytest.raises(EncryptionError, match="need 6 ciphertexts"):
        evaluate(MLP, context, layout="columns", rows=2, ciphertexts=batch.ciphertexts[:5])
    garbage = [b"\x00" * 100, *batch.ciphertexts[1:]]
    with pytest.raises(EncryptionError, match="malformed"):
        evaluate(MLP, context, layout="columns", rows=2, ciphertexts=garbage)
    with pytest.raises(EncryptionError, match="Unknown layout"):
        evaluate(MLP, context, layout="diagonal", rows=2, ciphertexts=batch.ciphertexts)


def test_contexts_are_cached_by_digest_and_evicted() -> None:
    cache = ContextCache(max_contexts=1)
    first = cache.put(b"a", object())
    cache.put(b"b", object())
    with pytest.raises(EncryptionError, match="send it again"):
        cache.get(first)
