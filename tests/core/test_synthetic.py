"""Tests for core.synthetic: generated scenes, annotation simulators and the written files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.constants import NEGATIVE, POSITIVE, UNKNOWN
from core.synthetic import (
    SPLITS,
    SceneConfig,
    class_catalogue,
    class_prevalence,
    fpc,
    generate_dataset,
    openimages_like,
    rps,
    write_dataset,
)


@pytest.fixture(scope="module")
def small_ds():
    return generate_dataset(60, seed=3)


@pytest.fixture(scope="module")
def big_truth() -> np.ndarray:
    return generate_dataset(20_000, seed=11).truth


# --- scenes ---------------------------------------------------------------------------------------


def test_same_seed_same_dataset_and_pixels():
    a, b = generate_dataset(40, seed=5), generate_dataset(40, seed=5)
    assert np.array_equal(a.truth, b.truth)
    assert a.image_ids == b.image_ids
    assert np.array_equal(a.splits, b.splits)
    for i in (0, 17, 39):
        assert np.array_equal(a.render_array(i), b.render_array(i))


def test_render_is_order_independent(small_ds):
    later = small_ds.render_array(30)
    small_ds.render_array(5)
    assert np.array_equal(small_ds.render_array(30), later)


def test_other_seed_other_dataset():
    a, b = generate_dataset(40, seed=5), generate_dataset(40, seed=6)
    assert not np.array_equal(a.truth, b.truth)
    assert not set(a.image_ids) & set(b.image_ids)
    assert not np.array_equal(a.render_array(0), b.render_array(0))


def test_class_catalogue_ids_names_and_stability():
    ids, names = class_catalogue(SceneConfig())
    assert len(ids) == len(set(ids)) == 24
    assert all(re.fullmatch(r"/m/lm_\d\d", i) for i in ids)
    assert (ids[0], names[0]) == ("/m/lm_00", "red circle")
    assert names[7] == "green square" and names[23] == "yellow diamond"
    assert len(set(names)) == 24
    more_ids, more_names = class_catalogue(SceneConfig(num_classes=40))
    assert more_ids[:24] == ids and more_names[:24] == names


def test_truth_shape_dtype_ids_and_splits(small_ds):
    assert small_ds.truth.shape == (60, 24) and small_ds.truth.dtype == np.int8
    assert set(np.unique(small_ds.truth)) <= {0, 1}
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in small_ds.image_ids)
    assert len(set(small_ds.image_ids)) == 60
    counts = {s: len(small_ds.indices(s)) for s in SPLITS}
    assert counts == {"train": 42, "val": 6, "test": 12}
    assert sorted(np.concatenate([small_ds.indices(s) for s in SPLITS]).tolist()) == list(range(60))


def test_generating_prevalence_is_zipf_from_head_to_tail():
    p = class_prevalence(SceneConfig())
    ranked = np.sort(p)[::-1]
    assert ranked[0] == pytest.approx(0.5) and ranked[-1] == pytest.approx(0.02)
    assert np.all(np.diff(ranked) < 0)
    # Zipf: log prevalence is linear in log rank
    slope, _ = np.polyfit(np.log(np.arange(1, 25)), np.log(ranked), 1)
    assert slope == pytest.approx(-np.log(25) / np.log(24), rel=1e-9)


def test_empirical_prevalence_matches_head_and_tail(big_truth):
    p_true = class_prevalence(SceneConfig())
    p_emp = big_truth.mean(axis=0)
    assert p_emp.max() == pytest.approx(0.5, abs=0.015)
    assert p_emp.min() == pytest.approx(0.02, abs=0.005)
    assert np.abs(p_emp - p_true).max() < 0.015
    assert np.argmax(p_emp) == np.argmax(p_true)
    rank_corr = np.corrcoef(np.argsort(np.argsort(p_emp)), np.argsort(np.argsort(p_true)))[0, 1]
    assert rank_corr > 0.95


def test_several_objects_per_image_and_cap(big_truth):
    per_image = big_truth.sum(axis=1)
    assert 1.6 < per_image.mean() < 2.2
    assert per_image.max() <= 9
    cfg = SceneConfig(num_classes=12, head_prevalence=0.9, tail_prevalence=0.5, grid=2)
    capped = generate_dataset(300, seed=0, config=cfg).truth
    assert capped.sum(axis=1).max() == 4


@pytest.mark.parametrize("size", [48, 64, 96])
def test_images_have_configured_size_and_variety(size):
    ds = generate_dataset(6, seed=2, config=SceneConfig(image_size=size))
    for i in range(len(ds)):
        img = ds.render(i)
        assert img.mode == "RGB" and img.size == (size, size)
        arr = ds.render_array(i)
        assert arr.dtype == np.uint8 and arr.shape == (size, size, 3)
        assert arr.std() > 5.0  # not a blank frame: background texture, objects, noise


def test_class_objects_show_their_colour():
    """The pixel colour of an image with one red class object has more strongly red pixels than without."""
    ds = generate_dataset(400, seed=9)
    red = [c for c, name in enumerate(ds.class_names) if name.startswith("red ")]
    green = [c for c, name in enumerate(ds.class_names) if name.startswith("green ")]

    def redness(i: int) -> float:
        a = ds.render_array(i).astype(np.float64)
        return float(((a[..., 0] > 160) & (a[..., 1] < 90) & (a[..., 2] < 90)).mean())

    with_red = [i for i in range(400) if ds.truth[i, red].any() and not ds.truth[i, green].any()][:40]
    no_red = [i for i in range(400) if not ds.truth[i, red].any()][:40]
    assert np.mean([redness(i) for i in with_red]) > 3 * np.mean([redness(i) for i in no_red]) + 1e-3


def test_confusable_weights_favour_lookalikes():
    ds = generate_dataset(200, seed=4)
    w = ds.confusable_weights(bonus=4.0)
    assert w.shape == ds.truth.shape and (w > 0).all()
    i = int(np.flatnonzero(ds.truth[:, 0] == 1)[0])  # an image with a red circle
    assert w[i, 6] == pytest.approx(5.0 * ds.prevalence[6])  # green circle: same shape
    assert w[i, 1] == pytest.approx(5.0 * ds.prevalence[1])  # red square: same colour


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 49},
        {"num_classes": 1},
        {"num_shapes": 9},
        {"image_size": 8},
        {"head_prevalence": 0.01, "tail_prevalence": 0.02},
        {"object_size": (0.5, 0.2)},
        {"grid": 1},
    ],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError, match="SceneConfig"):
        SceneConfig(**kwargs)


def test_bad_generate_arguments():
    with pytest.raises(ValueError, match="n_images"):
        generate_dataset(0, seed=0)
    with pytest.raises(ValueError, match="split_fractions"):
        generate_dataset(10, seed=0, split_fractions=(0.5, 0.5, 0.5))
    ds = generate_dataset(3, seed=0)
    with pytest.raises(IndexError):
        ds.render_array(3)
    with pytest.raises(ValueError, match="split"):
        ds.indices("holdout")


# --- annotation simulators ------------------------------------------------------------------------


def _assert_consistent(partial: np.ndarray, truth: np.ndarray) -> None:
    assert partial.dtype == np.int8 and partial.shape == truth.shape
    assert set(np.unique(partial)) <= {POSITIVE, NEGATIVE, UNKNOWN}
    known = partial != UNKNOWN
    assert np.array_equal(partial[known], truth[known])


@pytest.mark.parametrize("n", [0, 1, 30, 400, 50_000])
def test_fpc_keeps_exactly_min_n_per_class(big_truth, n):
    a = fpc(big_truth, n, seed=0)
    _assert_consistent(a, big_truth)
    n_pos, n_neg = (big_truth == 1).sum(0), (big_truth == 0).sum(0)
    assert np.array_equal((a == POSITIVE).sum(0), np.minimum(n, n_pos))
    assert np.array_equal((a == NEGATIVE).sum(0), np.minimum(n, n_neg))


def test_fpc_is_seeded_and_random_within_class(big_truth):
    assert np.array_equal(fpc(big_truth, 30, seed=1), fpc(big_truth, 30, seed=1))
    assert not np.array_equal(fpc(big_truth, 30, seed=1), fpc(big_truth, 30, seed=2))
    kept_rows = np.flatnonzero((fpc(big_truth, 400, seed=1) == NEGATIVE)[:, 0])
    assert kept_rows.max() > 10_000  # drawn from the whole dataset, not the first rows


@pytest.mark.parametrize("p", [0.0, 0.5, 0.8, 1.0])
def test_rps_drops_fraction_p(big_truth, p):
    a = rps(big_truth, p, seed=0)
    _assert_consistent(a, big_truth)
    dropped = (a == UNKNOWN).mean()
    sd = np.sqrt(p * (1 - p) / big_truth.size)
    assert abs(dropped - p) <= 5 * sd + 1e-12
    # positives and negatives are dropped alike
    pos = big_truth == 1
    assert abs((a[pos] == UNKNOWN).mean() - p) < 0.02


def test_rps_is_seeded(big_truth):
    assert np.array_equal(rps(big_truth, 0.5, seed=3), rps(big_truth, 0.5, seed=3))
    assert not np.array_equal(rps(big_truth, 0.5, seed=3), rps(big_truth, 0.5, seed=4))


@pytest.mark.parametrize(("n_pos", "n_neg"), [(1, 4), (2, 4), (3, 10), (0, 2)])
def test_openimages_like_counts_per_image(big_truth, n_pos, n_neg):
    a = openimages_like(big_truth, 0, n_pos=n_pos, n_neg=n_neg)
    _assert_consistent(a, big_truth)
    assert np.array_equal((a == POSITIVE).sum(1), np.minimum(n_pos, (big_truth == 1).sum(1)))
    assert np.array_equal((a == NEGATIVE).sum(1), np.minimum(n_neg, (big_truth == 0).sum(1)))


def test_openimages_like_negatives_favour_common_classes(big_truth):
    a = openimages_like(big_truth, 0, n_pos=1, n_neg=4)
    neg_rate = (a == NEGATIVE).sum(0) / (big_truth == 0).sum(0)  # chance a true negative is verified
    prevalence = big_truth.mean(0)
    head, tail = int(np.argmax(prevalence)), int(np.argmin(prevalence))
    assert neg_rate[head] > 3 * neg_rate[tail]
    assert np.corrcoef(neg_rate, prevalence)[0, 1] > 0.9
    uniform = openimages_like(big_truth, 0, n_pos=1, n_neg=4, neg_weights=np.ones(24))
    uniform_rate = (uniform == NEGATIVE).sum(0) / (big_truth == 0).sum(0)
    assert uniform_rate.max() / uniform_rate.min() < 1.3


def test_openimages_like_with_confusable_weights():
    ds = generate_dataset(3000, seed=8)
    a = openimages_like(ds.truth, 1, n_pos=2, n_neg=4, neg_weights=ds.confusable_weights())
    _assert_consistent(a, ds.truth)
    lookalike = ds.confusable_weights(bonus=1.0) > ds.prevalence  # shares shape or colour
    verified_neg = a == NEGATIVE
    share_of_lookalikes = (verified_neg & lookalike).sum() / verified_neg.sum()
    base_share = (lookalike & (ds.truth == 0)).sum() / (ds.truth == 0).sum()
    assert share_of_lookalikes > base_share + 0.1


def test_openimages_like_seeded_and_weighted_positives(big_truth):
    assert np.array_equal(openimages_like(big_truth, 5), openimages_like(big_truth, 5))
    w = np.ones(24)
    w[np.argmax(big_truth.mean(0))] = 1e6
    a = openimages_like(big_truth, 5, n_pos=1, n_neg=0, pos_weights=w)
    head = int(np.argmax(big_truth.mean(0)))
    assert np.array_equal(a[:, head] == POSITIVE, big_truth[:, head] == 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: fpc(t, -1, 0), "n_per_class"),
        (lambda t: rps(t, 1.5, 0), "p="),
        (lambda t: openimages_like(t, 0, n_neg=-2), "counts"),
        (lambda t: openimages_like(t, 0, neg_weights=np.ones(5)), "neg_weights"),
        (lambda t: openimages_like(t, 0, pos_weights=-np.ones(3)), "pos_weights"),
        (lambda t: fpc(t - 1, 1, 0), "values"),
        (lambda t: rps(t.astype(float), 0.5, 0), "dtype"),
        (lambda t: rps(t[0], 0.5, 0), "2-D"),
    ],
)
def test_simulators_reject_bad_input(call, message):
    t = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.int8)
    with pytest.raises(ValueError, match=message):
        call(t)


# --- written files --------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "workers"), [("jpg", 1), ("png", 2)])
def test_write_dataset_files_match_arrays(tmp_path: Path, small_ds, fmt, workers):
    partial = openimages_like(small_ds.truth, 2)
    paths = write_dataset(small_ds, tmp_path / "out", annotations=partial, image_format=fmt, workers=workers)

    classes = pd.read_csv(paths.classes_csv)
    assert list(classes.columns) == ["LabelName", "DisplayName"]
    assert classes["LabelName"].tolist() == small_ds.class_ids
    assert classes["DisplayName"].tolist() == small_ds.class_names

    col = {c: k for k, c in enumerate(small_ds.class_ids)}
    row = {r: k for k, r in enumerate(small_ds.image_ids)}

    def to_matrix(frame: pd.DataFrame) -> np.ndarray:
        m = np.full(small_ds.truth.shape, UNKNOWN, dtype=np.int8)
        m[frame["ImageID"].map(row).to_numpy(), frame["LabelName"].map(col).to_numpy()] = frame["Confidence"]
        return m

    labels = pd.read_csv(paths.labels_csv, dtype={"ImageID": str})
    assert list(labels.columns) == ["ImageID", "Source", "LabelName", "Confidence"]
    assert set(labels["Source"]) == {"verification"} and set(labels["Confidence"]) <= {0, 1}
    assert len(labels) == int((partial != UNKNOWN).sum())
    assert np.array_equal(to_matrix(labels), partial)

    truth = pd.read_csv(paths.truth_csv, dtype={"ImageID": str})
    assert set(truth["Source"]) == {"truth"}
    assert len(truth) == small_ds.truth.size
    assert np.array_equal(to_matrix(truth), small_ds.truth)

    splits = pd.read_csv(paths.splits_csv, dtype={"ImageID": str})
    assert splits["ImageID"].tolist() == small_ds.image_ids
    assert splits["Split"].tolist() == small_ds.splits.tolist()

    meta = json.loads(paths.metadata_json.read_text())
    assert meta["seed"] == 3 and meta["n_images"] == 60 and meta["config"]["num_classes"] == 24

    files = sorted(paths.images_dir.iterdir())
    assert sorted(f.stem for f in files) == sorted(small_ds.image_ids)
    for f in files[:10]:
        with Image.open(f) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
            assert img.format == ("JPEG" if fmt == "jpg" else "PNG")
    if fmt == "png":  # lossless: the file is exactly the rendered image
        i = 7
        with Image.open(paths.images_dir / f"{small_ds.image_ids[i]}.png") as img:
            assert np.array_equal(np.asarray(img), small_ds.render_array(i))


def test_write_dataset_rejects_bad_annotations(tmp_path: Path, small_ds):
    with pytest.raises(ValueError, match="shape"):
        write_dataset(small_ds, tmp_path, annotations=small_ds.truth[:5])
    bad = small_ds.truth.copy()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match="values"):
        write_dataset(small_ds, tmp_path, annotations=bad)
    with pytest.raises(ValueError, match="image_format"):
        write_dataset(small_ds, tmp_path, annotations=small_ds.truth, image_format="gif")
    assert not (tmp_path / "images").exists()  # nothing written on bad input
