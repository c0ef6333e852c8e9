"""``Choice``: forgiving parsing, one-line errors, and the six enums built on it."""

from __future__ import annotations

import pytest

from common.choice import Choice
from core.losses.catalog import LossName
from core.losses.selective import LossMode
from core.priors import PriorMethod
from core.ranking import Ranker
from db.io.coco import AbsentPolicy
from db.io.export import ExportFormat


class Colour(Choice, kind="colour", plural="colours"):
    RED = "red"
    DARK_BLUE = "dark-blue"

    @classmethod
    def _aliases(cls) -> dict[str, Colour]:
        return {"dark_blue": cls.DARK_BLUE, "navy": cls.DARK_BLUE}


class PaperSize(Choice):
    A4 = "a4"


def test_from_str_takes_members_and_forgiving_spellings() -> None:
    assert Colour.from_str(Colour.RED) is Colour.RED
    assert Colour.from_str("red") is Colour.RED
    assert Colour.from_str("  RED\n") is Colour.RED
    assert Colour.from_str("Dark-Blue") is Colour.DARK_BLUE


def test_aliases_hook_adds_spellings() -> None:
    assert Colour.from_str("dark_blue") is Colour.DARK_BLUE
    assert Colour.from_str(" NAVY ") is Colour.DARK_BLUE


def test_constructor_stays_exact() -> None:
    assert Colour("red") is Colour.RED
    with pytest.raises(ValueError):
        Colour("RED")


@pytest.mark.parametrize("bad", ["green", "", "dark blue", None, 3])
def test_unknown_value_is_one_line_naming_kind_and_values(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        Colour.from_str(bad)  # type: ignore[arg-type]
    assert str(info.value) == f"unknown colour {bad!r}; valid colours: red, dark-blue"


def test_defaults_take_the_kind_from_the_class_name() -> None:
    with pytest.raises(ValueError) as info:
        PaperSize.from_str("letter")
    assert str(info.value) == "unknown paper size 'letter'; valid: a4"


def test_values_in_definition_order() -> None:
    assert Colour.values() == ("red", "dark-blue")
    assert isinstance(Colour.RED, str) and f"{Colour.DARK_BLUE}" == "dark-blue"


@pytest.mark.parametrize(
    ("enum", "message"),
    [
        (
            PriorMethod,
            "unknown prior method 'nope'; valid methods: mean, filled, adjusted, shifted, random, shrunk, auto",
        ),
        (LossName, "unknown loss 'nope'; valid losses: ignore, negative, asl, csl, hill, wan, ll-r"),
        (LossMode, "unknown loss mode 'nope'; valid modes: selective, ignore, negative"),
        (Ranker, "unknown ranker 'nope'; valid rankers: probability, lift, prior_shift, calibrated"),
        (ExportFormat, "export format 'nope' is not one of openimages, csv, parquet, json"),
        (AbsentPolicy, "--absent must be one of negative, unknown, got 'nope'"),
    ],
)
def test_the_project_enums_share_the_parser(enum: type[Choice], message: str) -> None:
    assert issubclass(enum, Choice)
    for member in enum:
        assert enum.from_str(member) is member
        assert enum.from_str(f" {member.value.upper()} ") is member
    with pytest.raises(ValueError) as info:
        enum.from_str("nope")
    assert str(info.value) == message
