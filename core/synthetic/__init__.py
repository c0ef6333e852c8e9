"""Generated multi-label image data with known truth, and annotation simulators.

Scenes (:mod:`.scenes`): classes are shape × colour combinations with Zipf-like prevalence, drawn
among distractors on textured, noisy backgrounds. Simulators (:mod:`.annotate`): FPC(N), RPS(p)
and an OpenImages-like verification protocol, exactly as ``shared/method/CSL.md`` defines them.
Writers (:mod:`.writers`): the OpenImages CSV formats plus the full truth.

Example:
    >>> ds = generate_dataset(100, seed=0)
    >>> partial = rps(ds.truth, 0.5, seed=1)
    >>> partial.shape, partial.dtype
    ((100, 24), dtype('int8'))
"""

from core.synthetic.annotate import fpc, openimages_like, rps
from core.synthetic.scenes import (
    SPLITS,
    SceneConfig,
    SyntheticDataset,
    class_catalogue,
    class_prevalence,
    generate_dataset,
)
from core.synthetic.writers import WrittenDataset, write_dataset

__all__ = [
    "SPLITS",
    "SceneConfig",
    "SyntheticDataset",
    "WrittenDataset",
    "class_catalogue",
    "class_prevalence",
    "fpc",
    "generate_dataset",
    "openimages_like",
    "rps",
    "write_dataset",
]
