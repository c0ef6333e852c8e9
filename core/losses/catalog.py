"""Names and one-line descriptions of the loss presets, without importing torch.

Menus and help text (the app's Train page, CLI option checks) read the presets here; building a
loss still goes through :func:`core.losses.registry.loss_from_name`, whose registry uses the same
:class:`LossName` (``tests/core/test_loss_catalog.py`` checks the two agree).
"""

from __future__ import annotations

from common.choice import Choice

__all__ = ["LOSS_DESCRIPTIONS", "LossName", "describe_loss", "loss_names"]


class LossName(Choice, kind="loss", plural="losses"):
    """Names of the loss presets, in the order menus list them."""

    IGNORE = "ignore"
    NEGATIVE = "negative"
    ASL = "asl"
    CSL = "csl"
    HILL = "hill"
    WAN = "wan"
    LL_R = "ll-r"


#: One line per preset, for menus and ``--help``.
LOSS_DESCRIPTIONS: dict[LossName, str] = {
    LossName.IGNORE: "BCE on annotated cells only; unknowns are ignored",
    LossName.NEGATIVE: "BCE with every unknown taken as a negative",
    LossName.ASL: "unknowns as negatives with asymmetric focusing (ASL)",
    LossName.CSL: "class-aware selective loss: prior and likelihood decide each unknown (CSL)",
    LossName.HILL: "Hill loss on negatives, focal margin on positives",
    LossName.WAN: "weak assume-negative: unknowns as negatives weighted 1/(C-1)",
    LossName.LL_R: "large-loss rejection: the largest unknown losses are dropped, more each epoch",
}


def loss_names() -> list[str]:
    """Every preset name, in :class:`LossName` order (equal to ``list_losses()``, torch-free)."""
    return list(LossName.values())


def describe_loss(name: str | LossName) -> str:
    """``"csl — class-aware selective loss: …"``: a preset's name with its one-line description.

    Raises:
        ValueError: ``name`` is not a preset.
    """
    key = LossName.from_str(name)
    return f"{key.value} — {LOSS_DESCRIPTIONS[key]}"
