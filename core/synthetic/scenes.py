"""Generated multi-label scenes with known truth: classes, prevalence, the dataset and its images.

Each class is a shape × colour combination ("red circle", "blue star", ...). Class ``c`` uses shape
``c % num_shapes`` and colour ``c // num_shapes`` from the fixed catalogues in :mod:`._render`, so a
class keeps its identifier ``/m/lm_<colour><shape>`` (e.g. ``/m/lm_00`` = red circle) whatever
``num_classes`` is. Class prevalence is Zipf-like, from ``head_prevalence`` down to
``tail_prevalence``, assigned to classes in an order fixed by ``layout_seed``.

The truth matrix is drawn at once; an image is rendered on demand from its own seed
(``SeedSequence(seed, spawn_key=(1, i))``), so rendering is deterministic, order-independent and
parallel-safe.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from core.constants import POSITIVE
from core.synthetic._render import (
    CLASS_COLOURS,
    CLASS_SHAPES,
    RenderParams,
    render_scene,
)

SPLITS: tuple[str, str, str] = ("train", "val", "test")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are generated. Primitives only, so it can be saved with results.

    Attributes:
        num_classes: C, number of classes (2 ≤ C ≤ ``num_shapes`` × 8).
        num_shapes: shapes used by classes (≤ 8); the rest of the 8 shapes become distractors.
        image_size: side of the square images, px.
        head_prevalence: true prevalence of the most common class.
        tail_prevalence: true prevalence of the rarest class; in between it follows
            ``head / (rank + 1) ** s`` with ``s`` chosen to reach ``tail`` at the last rank.
        grid: objects are placed one per cell of a ``grid × grid`` layout (with jitter, so
            neighbours partly overlap); at most ``grid**2`` classes are present in one image.
        object_size: min and max object diameter as a fraction of ``image_size``.
        max_distractors: up to this many non-class objects per image (uniform 0..max).
        noise_std: min and max std of the Gaussian pixel noise, in [0, 1] intensity units.
        texture_strength: max amplitude of the stripe texture on objects (multiplicative).
        layout_seed: fixes which class gets which prevalence rank (not the per-dataset seed).
    """

    num_classes: int = 24
    num_shapes: int = 6
    image_size: int = 64
    head_prevalence: float = 0.5
    tail_prevalence: float = 0.02
    grid: int = 3
    object_size: tuple[float, float] = (0.22, 0.40)
    max_distractors: int = 3
    noise_std: tuple[float, float] = (0.02, 0.07)
    texture_strength: float = 0.25
    layout_seed: int = 0

    def __post_init__(self) -> None:
        _validate_config(self)


def _validate_config(cfg: SceneConfig) -> None:
    max_classes = cfg.num_shapes * len(CLASS_COLOURS)
    if not 1 <= cfg.num_shapes <= len(CLASS_SHAPES):
        raise ValueError(f"SceneConfig.num_shapes={cfg.num_shapes}: must be 1..{len(CLASS_SHAPES)}")
    if not 2 <= cfg.num_classes <= max_classes:
        raise ValueError(
            f"SceneConfig.num_classes={cfg.num_classes}: must be 2..{max_classes} with "
            f"num_shapes={cfg.num_shapes}; raise num_shapes or lower num_classes"
        )
    if cfg.image_size < 16:
        raise ValueError(f"SceneConfig.image_size={cfg.image_size}: must be at least 16 px")
    if not 0.0 < cfg.tail_prevalence <= cfg.head_prevalence < 1.0:
        raise ValueError(
            f"SceneConfig prevalence head={cfg.head_prevalence}, tail={cfg.tail_prevalence}: "
            "need 0 < tail <= head < 1"
        )
    if cfg.grid < 2:
        raise ValueError(f"SceneConfig.grid={cfg.grid}: must be at least 2")
    lo, hi = cfg.object_size
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"SceneConfig.object_size={cfg.object_size}: need 0 < min <= max <= 1")
    lo, hi = cfg.noise_std
    if not 0.0 <= lo <= hi:
        raise ValueError(f"SceneConfig.noise_std={cfg.noise_std}: need 0 <= min <= max")
    if cfg.max_distractors < 0 or cfg.texture_strength < 0.0:
        raise ValueError("SceneConfig.max_distractors and texture_strength must be >= 0")


def class_catalogue(config: SceneConfig) -> tuple[list[str], list[str]]:
    """Class identifiers and display names for ``config``.

    Returns:
        ``(class_ids, class_names)``, each of length C: ids ``/m/lm_<colour><shape>`` (stable across
        ``num_classes``; e.g. ``/m/lm_00``), names ``"<colour> <shape>"`` (e.g. ``"red circle"``).
    """
    ids, names = [], []
    for c in range(config.num_classes):
        colour, shape = divmod(c, config.num_shapes)
        ids.append(f"/m/lm_{colour}{shape}")
        names.append(f"{CLASS_COLOURS[colour].name} {CLASS_SHAPES[shape]}")
    return ids, names


def class_prevalence(config: SceneConfig) -> np.ndarray:
    """The true (generating) prevalence of each class, float64 (C,), before the per-image cap.

    Zipf-like by rank ``r``: ``head / (r + 1) ** s`` with ``s = ln(head / tail) / ln(C)``, so rank 0
    gets ``head_prevalence`` and rank C-1 gets ``tail_prevalence``. Ranks are assigned to classes by
    a permutation seeded with ``layout_seed``.
    """
    n = config.num_classes
    s = math.log(config.head_prevalence / config.tail_prevalence) / math.log(n)
    by_rank = config.head_prevalence / np.arange(1, n + 1, dtype=np.float64) ** s
    order = np.random.default_rng(config.layout_seed).permutation(n)
    prevalence = np.empty(n, dtype=np.float64)
    prevalence[order] = by_rank
    return prevalence


def _image_id(seed: int, index: int) -> str:
    """A stable 16-hex-digit id in the style of OpenImages ImageIDs."""
    return hashlib.blake2b(f"labelmend-synthetic:{seed}:{index}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, eq=False)
class SyntheticDataset:
    """A generated dataset with its full truth; images are rendered on demand.

    Attributes:
        config: the scene configuration.
        seed: the dataset seed.
        class_ids: C identifiers (``/m/lm_00`` ...), column order of ``truth``.
        class_names: C display names (``"red circle"`` ...).
        image_ids: N image ids (16 hex digits), row order of ``truth``.
        truth: int8 (N, C), 1 = present, 0 = absent (no unknowns).
        splits: str array (N,), each ``"train"``, ``"val"`` or ``"test"``.
        prevalence: float64 (C,), the generating prevalence (see :func:`class_prevalence`).
    """

    config: SceneConfig
    seed: int
    class_ids: list[str]
    class_names: list[str]
    image_ids: list[str]
    truth: np.ndarray
    splits: np.ndarray
    prevalence: np.ndarray
    _pairs: frozenset[tuple[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapes = [CLASS_SHAPES[c % self.config.num_shapes] for c in range(self.config.num_classes)]
        colours = [CLASS_COLOURS[c // self.config.num_shapes].name for c in range(self.config.num_classes)]
        object.__setattr__(self, "_pairs", frozenset(zip(shapes, colours, strict=True)))

    def __len__(self) -> int:
        return len(self.image_ids)

    def indices(self, split: str) -> np.ndarray:
        """Row indices, int64 (n,), of the images in ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.splits == split)

    def render_array(self, index: int) -> np.ndarray:
        """Pixels of image ``index``: uint8 (H, W, 3), H = W = ``config.image_size``. Deterministic."""
        if not 0 <= index < len(self):
            raise IndexError(f"image index {index} out of range 0..{len(self) - 1}")
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1, index)))
        present = np.flatnonzero(self.truth[index] == POSITIVE)
        objects = [(CLASS_SHAPES[c % cfg.num_shapes], CLASS_COLOURS[c // cfg.num_shapes]) for c in present]
        params = RenderParams(
            image_size=cfg.image_size,
            grid=cfg.grid,
            object_size=cfg.object_size,
            noise_std=cfg.noise_std,
            texture_strength=cfg.texture_strength,
            max_distractors=cfg.max_distractors,
        )
        return render_scene(rng, objects, self._pairs, params)

    def render(self, index: int) -> Image.Image:
        """Image ``index`` as an RGB PIL image of ``config.image_size`` px square. Deterministic."""
        return Image.fromarray(self.render_array(index), "RGB")

    def confusable_weights(self, bonus: float = 4.0) -> np.ndarray:
        """How plausible each class is as a candidate label for each image, float64 (N, C), > 0.

        ``prevalence[c] × (1 + bonus)`` when class c shares its shape or its colour with a class present
        in image i, else ``prevalence[c]``: common and look-alike classes are likelier candidates, as
        with a machine-generated candidate list. Use as ``neg_weights`` for
        :func:`core.synthetic.openimages_like`.
        """
        cfg = self.config
        c_idx = np.arange(cfg.num_classes)
        shape_1hot = (c_idx[:, None] % cfg.num_shapes == np.arange(cfg.num_shapes)).astype(np.float64)
        n_colours = (cfg.num_classes - 1) // cfg.num_shapes + 1
        colour_1hot = (c_idx[:, None] // cfg.num_shapes == np.arange(n_colours)).astype(np.float64)
        pos = (self.truth == POSITIVE).astype(np.float64)
        shares = ((pos @ shape_1hot) @ shape_1hot.T > 0) | ((pos @ colour_1hot) @ colour_1hot.T > 0)
        return self.prevalence[None, :] * np.where(shares, 1.0 + bonus, 1.0)


def _assign_splits(n: int, fractions: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split_fractions={fractions}: need three non-negative numbers summing to 1")
    n_train = round(fractions[0] * n)
    n_val = min(n - n_train, round(fractions[1] * n))
    labels = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val))
    return labels[rng.permutation(n)]


def generate_dataset(
    n_images: int,
    *,
    seed: int,
    config: SceneConfig | None = None,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> SyntheticDataset:
    """Draw the truth, ids and splits of a generated dataset (images are rendered lazily).

    Each class is present in an image independently with its prevalence; an image holding more than
    ``grid**2`` classes keeps a random ``grid**2`` of them (rare with the defaults).

    Args:
        n_images: N ≥ 1.
        seed: dataset seed; same seed and config give identical truth, ids, splits and pixels.
        config: scene configuration; ``SceneConfig()`` when None.
        split_fractions: train / val / test fractions, summing to 1 (counts are rounded).

    Returns:
        The :class:`SyntheticDataset`.

    Raises:
        ValueError: on a bad ``n_images`` or ``split_fractions``.

    Example:
        >>> ds = generate_dataset(10, seed=0)
        >>> ds.truth.shape, ds.class_names[0], ds.render(0).size
        ((10, 24), 'red circle', (64, 64))
    """
    if n_images < 1:
        raise ValueError(f"n_images={n_images}: must be at least 1")
    cfg = config if config is not None else SceneConfig()
    prevalence = class_prevalence(cfg)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    truth = (rng.random((n_images, cfg.num_classes)) < prevalence).astype(np.int8)
    cap = cfg.grid * cfg.grid
    for i in np.flatnonzero(truth.sum(axis=1) > cap):
        present = np.flatnonzero(truth[i])
        truth[i, rng.choice(present, size=len(present) - cap, replace=False)] = 0
    splits = _assign_splits(n_images, split_fractions, rng)
    class_ids, class_names = class_catalogue(cfg)
    image_ids = [_image_id(seed, i) for i in range(n_images)]
    if len(set(image_ids)) != n_images:  # 64-bit hashes: practically never
        raise RuntimeError(f"image id collision for seed={seed}; use another seed")
    return SyntheticDataset(
        config=cfg,
        seed=seed,
        class_ids=class_ids,
        class_names=class_names,
        image_ids=image_ids,
        truth=truth,
        splits=splits,
        prevalence=prevalence,
    )
