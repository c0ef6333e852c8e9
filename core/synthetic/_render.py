"""Draw one scene: a textured background, class objects, distractors, occlusion and pixel noise.

Private to :mod:`core.synthetic`. Every function takes a ``numpy.random.Generator`` and trusts its
inputs; the public layer validates the configuration once.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

_SUPERSAMPLE = 2  # masks are drawn at 2× and box-filtered down, for anti-aliased edges


@dataclass(frozen=True)
class ColourSpec:
    """A colour family in HSV: hue in degrees, saturation and value ranges in [0, 1]."""

    name: str
    hue: float
    saturation: tuple[float, float]
    value: tuple[float, float]


_CLASS_SAT = (0.70, 1.00)
_CLASS_VAL = (0.65, 1.00)

# Colours a class can take, in the order classes use them. Hues are spaced so that a class colour
# stays recognisable under the ±_HUE_JITTER jitter, but neighbours (orange/red, purple/blue) are close
# enough to make distractors in unused colours genuinely confusable.
CLASS_COLOURS: tuple[ColourSpec, ...] = (
    ColourSpec("red", 0.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("green", 120.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("blue", 225.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("yellow", 58.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("magenta", 300.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("cyan", 185.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("orange", 28.0, _CLASS_SAT, _CLASS_VAL),
    ColourSpec("purple", 265.0, _CLASS_SAT, _CLASS_VAL),
)

# Colours no class ever uses: distractors draw from these plus the class colours a config leaves out.
DISTRACTOR_COLOURS: tuple[ColourSpec, ...] = (
    ColourSpec("grey", 0.0, (0.0, 0.10), (0.35, 0.75)),
    ColourSpec("white", 0.0, (0.0, 0.08), (0.85, 1.00)),
    ColourSpec("black", 0.0, (0.0, 0.15), (0.05, 0.20)),
    ColourSpec("brown", 25.0, (0.45, 0.80), (0.30, 0.45)),
)

_HUE_JITTER = 8.0  # degrees

# Shapes a class can take, in the order classes use them; shapes a config leaves out become
# distractors (a "ring" next to the class "circle" is a hard negative by design).
CLASS_SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "diamond",
    "hexagon",
    "ring",
)

# Shapes that are never a class.
DISTRACTOR_SHAPES: tuple[str, ...] = ("bar", "crescent", "blob")

_POLYGONS: dict[str, tuple[int, float]] = {  # sides, first vertex angle (degrees)
    "square": (4, 45.0),
    "diamond": (4, 0.0),
    "hexagon": (6, 0.0),
    "triangle": (3, 90.0),
}

_MAX_TILT = math.radians(15.0)  # class shapes rotate a little only, so "square" ≠ "diamond"


@dataclass(frozen=True)
class RenderParams:
    """The rendering knobs a :class:`~core.synthetic.SceneConfig` resolves to (sizes in px)."""

    image_size: int
    grid: int
    object_size: tuple[float, float]
    noise_std: tuple[float, float]
    texture_strength: float
    max_distractors: int


@dataclass(frozen=True)
class _Item:
    shape: str
    colour: ColourSpec


def _polygon(shape: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Unit-radius outline(s) of ``shape``; the first is filled, later ones are cut out."""
    if shape in ("circle", "ring"):
        t = np.linspace(0.0, 2.0 * math.pi, 32, endpoint=False)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        return [outer, 0.5 * outer] if shape == "ring" else [outer]
    if shape in ("square", "diamond", "hexagon", "triangle"):
        sides, offset = _POLYGONS[shape]
        t = np.radians(offset) + np.arange(sides) * 2.0 * math.pi / sides
        scale = 1.15 if shape == "triangle" else 1.0  # triangles look small at equal circumradius
        return [scale * np.stack([np.cos(t), -np.sin(t)], axis=1)]
    if shape == "star":
        t = math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.1, 0.45)
        return [np.stack([r * np.cos(t), -r * np.sin(t)], axis=1)]
    if shape == "cross":
        a, b = 1.0, 0.33
        arm = np.array([(-b, -a), (b, -a), (b, -b)])  # one arm's outline, turned four times by 90°
        quarter_turn = np.array([[0.0, 1.0], [-1.0, 0.0]])
        turns = [arm]
        for _ in range(3):
            turns.append(turns[-1] @ quarter_turn)
        return [np.concatenate(turns)]
    if shape == "bar":
        return [np.array([(-1.0, -0.18), (1.0, -0.18), (1.0, 0.18), (-1.0, 0.18)])]
    if shape == "crescent":
        t = np.linspace(0.0, 2.0 * math.pi, 32, endpoint=False)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        return [outer, 0.85 * outer + np.array([0.45, 0.0])]
    # blob: an irregular polygon
    t = np.sort(rng.uniform(0.0, 2.0 * math.pi, 8))
    r = rng.uniform(0.55, 1.0, 8)
    return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]


def _alpha_mask(
    item: _Item, centre: tuple[float, float], radius: float, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """Anti-aliased coverage in [0, 1], float32 (h, w), and the (rows, cols) window it covers.

    None when the object falls wholly outside the image.
    """
    outlines = _polygon(item.shape, rng)
    free_rotation = item.shape in DISTRACTOR_SHAPES
    angle = rng.uniform(0.0, 2.0 * math.pi) if free_rotation else rng.uniform(-_MAX_TILT, _MAX_TILT)
    aspect = rng.uniform(0.85, 1.15)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    reach = 1.5 * radius  # every outline fits in 1.5 radii after aspect jitter
    x0, y0 = max(0, math.floor(centre[0] - reach)), max(0, math.floor(centre[1] - reach))
    x1, y1 = min(size, math.ceil(centre[0] + reach)), min(size, math.ceil(centre[1] + reach))
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = Image.new("L", ((x1 - x0) * _SUPERSAMPLE, (y1 - y0) * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    offset = np.array([centre[0] - x0, centre[1] - y0])
    for k, outline in enumerate(outlines):
        pts = (outline * np.array([aspect, 1.0 / aspect])) @ rot.T
        pts = (pts * radius + offset) * _SUPERSAMPLE
        draw.polygon([tuple(p) for p in pts.tolist()], fill=255 if k == 0 else 0)
    small = canvas.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) * (1.0 / 255.0), (slice(y0, y1), slice(x0, x1))


def _rgb(spec: ColourSpec, rng: np.random.Generator) -> np.ndarray:
    hue = (spec.hue + rng.uniform(-_HUE_JITTER, _HUE_JITTER)) % 360.0
    sat = rng.uniform(*spec.saturation)
    val = rng.uniform(*spec.value)
    return np.array(colorsys.hsv_to_rgb(hue / 360.0, sat, val), dtype=np.float32)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size)
    return xs, ys


def _stripes(
    rng: np.random.Generator,
    size: int,
    cycles: tuple[float, float],
    window: tuple[slice, slice] = (slice(None), slice(None)),
) -> np.ndarray:
    """A sinusoidal grating in [-1, 1], float32, over ``window`` of the (H, W) image; random angle, phase."""
    xs, ys = _grid(size)
    xs, ys = xs[window], ys[window]
    theta = rng.uniform(0.0, math.pi)
    freq = rng.uniform(*cycles)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    return np.sin(2.0 * math.pi * freq * (xs * math.cos(theta) + ys * math.sin(theta)) + phase)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-saturation background with a gradient, blotches and sometimes stripes, float32 (H, W, 3)."""
    base = np.array(
        colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.35), rng.uniform(0.25, 0.85)),
        dtype=np.float32,
    )
    xs, ys = _grid(size)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    ramp = (xs - 0.5) * math.cos(theta) + (ys - 0.5) * math.sin(theta)
    img = base + (rng.uniform(0.0, 0.35) * ramp)[..., None]
    blotch = rng.normal(0.0, 0.08, (4, 4, 3)).astype(np.float32)
    blotch_img = Image.fromarray(np.clip(128.0 + 255.0 * blotch, 0, 255).astype(np.uint8), "RGB")
    smooth = np.asarray(blotch_img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    img += (smooth - 128.0) / 255.0
    if rng.random() < 0.4:
        img += (rng.uniform(0.03, 0.10) * _stripes(rng, size, (4.0, 12.0)))[..., None]
    return img


def _distractor(rng: np.random.Generator, class_pairs: frozenset[tuple[str, str]]) -> _Item:
    """A shape × colour that is not a class: any shape and any colour, rejecting class combinations."""
    shapes = CLASS_SHAPES + DISTRACTOR_SHAPES
    colours = CLASS_COLOURS + DISTRACTOR_COLOURS
    while True:
        shape = shapes[rng.integers(len(shapes))]
        colour = colours[rng.integers(len(colours))]
        if (shape, colour.name) not in class_pairs:
            return _Item(shape, colour)


def render_scene(
    rng: np.random.Generator,
    objects: list[tuple[str, ColourSpec]],
    class_pairs: frozenset[tuple[str, str]],
    params: RenderParams,
) -> np.ndarray:
    """Render one image.

    Args:
        rng: the image's own generator (consumed).
        objects: one (shape, colour) per class present in the image; at most ``grid**2``.
        class_pairs: every (shape, colour name) that is a class, so distractors avoid them.
        params: rendering knobs.

    Returns:
        uint8 array (H, W, 3), H = W = ``params.image_size``.
    """
    size = params.image_size
    cells = rng.permutation(params.grid * params.grid)
    n_free = len(cells) - len(objects)
    n_distract = min(n_free, int(rng.integers(0, params.max_distractors + 1)))
    items = [_Item(shape, colour) for shape, colour in objects]
    items += [_distractor(rng, class_pairs) for _ in range(n_distract)]
    order = rng.permutation(len(items))  # paint order: anything may partly occlude anything

    img = _background(rng, size)
    cell = size / params.grid
    for slot, k in enumerate(order):
        item = items[k]
        row, col = divmod(int(cells[slot]), params.grid)
        centre = (
            (col + 0.5 + rng.uniform(-0.2, 0.2)) * cell,
            (row + 0.5 + rng.uniform(-0.2, 0.2)) * cell,
        )
        radius = 0.5 * size * rng.uniform(*params.object_size)
        drawn = _alpha_mask(item, centre, radius, rng, size)
        if drawn is None:
            continue
        alpha, window = drawn
        alpha = alpha[..., None]
        colour = _rgb(item.colour, rng)
        shade = 1.0 + rng.uniform(0.0, params.texture_strength) * _stripes(rng, size, (3.0, 10.0), window)
        img[window] = img[window] * (1.0 - alpha) + (colour * shade[..., None]) * alpha

    gain = rng.uniform(0.85, 1.15)
    img = (img - 0.5) * gain + 0.5 + rng.uniform(-0.06, 0.06)
    img += np.float32(rng.uniform(*params.noise_std)) * rng.standard_normal(img.shape, dtype=np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
