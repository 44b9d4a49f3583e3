"""Passports: canonical bytes that round-trip; a stored passport is validated like any input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sovereign_ai.errors import RegistryError
from sovereign_ai.registry import Passport, RoundRecord, model_card

from .conftest import make_lineage

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def passport(**changes: object) -> Passport:
    return Passport(
        model_name="m",
        version=1,
        registered_at="2025-01-01T00:00:00+00:00",
        parameter_digest="cd" * 32,
        lineage=make_lineage(),
    ).model_copy(update=changes)


@given(
    metrics=st.lists(
        st.dictionaries(st.text(min_size=1, max_size=8), finite, max_size=4), max_size=5
    )
)
def test_passports_round_trip_through_their_canonical_bytes(
    metrics: list[dict[str, float]],
) -> None:
    rounds = tuple(
        RoundRecord(round_number=i + 1, answered=("north",), metrics=m)
        for i, m in enumerate(metrics)
    )
    original = passport(lineage=make_lineage().model_copy(update={"metrics": rounds}))
    data = original.to_bytes()
    again = Passport.from_bytes(data)
    assert again == original
    assert again.to_bytes() == data  # canonical: the same bytes every time


def test_the_canonical_form_sorts_keys_and_has_no_spaces() -> None:
    data = passport().to_bytes()
    document = json.loads(data)
    assert (
        data
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert document["format"] == "sovereign-passport/1"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(format="sovereign-passport/9"), "format"),
        (lambda d: d.update(parameter_digest="xyz"), "parameter_digest"),
        (lambda d: d["lineage"].pop("nodes"), "lineage.nodes"),
        (lambda d: d.update(version=0), "version"),
    ],
)
def test_a_malformed_passport_is_refused_naming_the_field(edit: object, problem: str) -> None:
    document = json.loads(passport().to_bytes())
    edit(document)  # type: ignore[operator]
    with pytest.raises(RegistryError, match=problem):
        Passport.from_bytes(json.dumps(document).encode())


def test_not_json_is_refused() -> None:
    with pytest.raises(RegistryError, match="not a valid passport"):
        Passport.from_bytes(b"\x00\xff")


def test_non_finite_metrics_are_refused_at_construction() -> None:
    with pytest.raises(ValidationError):
        RoundRecord(round_number=1, answered=(), metrics={"loss": math.nan})


def test_the_model_card_has_the_sections_of_mitchell_et_al() -> None:
    card = model_card(passport())
    headings = [line[3:] for line in card.splitlines() if line.startswith("## ")]
    assert headings == [
        "Model details",
        "Intended use",
        "Factors",
        "Metrics",
        "Evaluation data",
        "Training data",
        "Quantitative analyses",
        "Ethical considerations",
        "Caveats and recommendations",
    ]
    assert "`cd" + "cd" * 31 + "`" in card  # the parameter digest
    assert "`north`" in card and "1.5" in card  # a node and its ε
    assert "`a`, `b`, `c`" in card  # feature names
    assert "unsigned" in card
