"""The public surface of sovereign_ai.secagg: ``__all__`` exact, sources cited, docstrings."""

from __future__ import annotations

import importlib
import inspect
import re

import sovereign_ai.secagg as secagg

PUBLIC = {
    "AdvertSigner",
    "AdvertVerifier",
    "CoordinatorSession",
    "KeyAdvert",
    "MaskSum",
    "Neighbourhood",
    "NodeSession",
    "Reveal",
    "SecretKind",
    "SessionId",
    "check_threshold",
    "choose_neighbourhood",
    "communication_graph",
    "decode_exact_sum",
    "decode_update_sum",
    "encode_exact",
    "encode_update",
    "encoded_length",
    "exact_length",
    "pair_seed",
    "self_mask_commitment",
    "KeyPair",
    "KeyPurpose",
    "PairContext",
    "Share",
    "ShareBinding",
    "check_fits",
    "check_modulus_bits",
    "decrypt_share",
    "dequantise_sum",
    "derive_pair_key",
    "encrypt_share",
    "generate_mask",
    "modular_add",
    "modular_subtract",
    "modular_sum",
    "quantisation_step",
    "quantise",
    "reconstruct_secret",
    "split_secret",
    "weight_quantised",
}

ALGORITHM_MODULES = [
    "adverts",
    "aggregation",
    "encoding",
    "graph",
    "node_session",
    "key_agreement",
    "modular",
    "prg",
    "quantisation",
    "shamir",
    "share_encryption",
]


def test_all_is_exactly_the_public_names() -> None:
    assert set(secagg.__all__) == PUBLIC
    assert len(secagg.__all__) == len(PUBLIC)
    assert all(hasattr(secagg, name) for name in secagg.__all__)


def test_every_algorithm_module_cites_its_source_and_exports_its_names() -> None:
    exported_by_modules: set[str] = set()
    for module_name in ALGORITHM_MODULES:
        module = importlib.import_module(f"sovereign_ai.secagg.{module_name}")
        assert module.__doc__ and re.search(r"\b(19|20)\d\d\b", module.__doc__), module_name
        exported_by_modules |= set(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), (module_name, name)
    assert exported_by_modules >= PUBLIC


def test_public_functions_take_keyword_only_options_and_have_docstrings() -> None:
    for name in secagg.__all__:
        obj = getattr(secagg, name)
        assert obj.__doc__, name
        if inspect.isfunction(obj):
            parameters = list(inspect.signature(obj).parameters.values())
            positional = [p for p in parameters if p.kind != inspect.Parameter.KEYWORD_ONLY]
            assert len(positional) <= 2, name  # data arguments first, options by keyword
