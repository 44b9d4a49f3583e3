"""The public surface of sovereign_ai.learning is exactly its __all__."""

from __future__ import annotations

import types

import sovereign_ai.learning as learning


def test_all_is_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(learning).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(learning.__all__) == public
    assert learning.__all__ == sorted(learning.__all__)
    assert len(set(learning.__all__)) == len(learning.__all__)
