"""core.embeddings_shard under torchrun (2 gloo CPU processes) and the cache's shards and merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.device import seed_everything
from core.embeddings import EmbeddingCache, EmbeddingKey, embed_images
from core.embeddings_shard import shard_part
from core.models import create_model
from tests.core.test_data import make_color_squares

REPO = Path(__file__).resolve().parents[2]
KEY = EmbeddingKey(backbone="toy", weights="0" * 64, image_size=32, transform="{}")
N_IMAGES, BROKEN, BATCH = 30, 7, 4

# Every rank: the same seeded resnet10t, the images of spec.json, one flush per batch. With
# LM_KILL_RANK=r, rank r SIGKILLs itself right after its first append to its shard.
SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path

    from core.data import ImageSource
    from core.device import seed_everything
    from core.embeddings import EmbeddingCache
    from core.embeddings_shard import embed_images_sharded, process_group
    from core.models import create_model

    out = Path(sys.argv[1])
    spec = json.loads((out / "spec.json").read_text())
    rank = int(os.environ["RANK"])
    if int(os.environ.get("LM_KILL_RANK", "-1")) == rank:
        real_append = EmbeddingCache.append

        def append_then_die(self, ids, vectors):
            added = real_append(self, ids, vectors)
            if "shards" in self.folder.parts:
                os.kill(os.getpid(), signal.SIGKILL)
            return added

        EmbeddingCache.append = append_then_die
    seed_everything(0)
    model = create_model("resnet10t", 3)
    source = ImageSource(Path(spec["root"]), spec["ids"], spec["paths"])
    with process_group("cpu") as info:
        res = embed_images_sharded(model, source, out / "cache", info, backbone="resnet10t", image_size=32,
                                   batch_size=4, flush_seconds=0.0)
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world": res.world_size, "assigned": res.assigned, "computed": res.computed,
        "computed_total": res.computed_total, "merged": res.merged, "cached": res.cached,
        "skipped": res.skipped, "complete": res.complete, "folder": str(res.cache.folder),
    }))
    """
)


def test_shard_part_splits_into_contiguous_blocks() -> None:
    ids = [f"i{k}" for k in range(11)]
    parts = [shard_part(ids, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 4, 4] and [i for p in parts for i in p] == ids
    assert shard_part([], 0, 2) == [] and shard_part(ids, 0, 1) == ids
    with pytest.raises(ValueError, match="rank 2 of 2"):
        shard_part(ids, 2, 2)


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_merge_takes_idle_shards_in_rank_order_and_skips_busy_ones(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, 4)
    cache.append(["z"], _vectors(1, 9))
    a, b = _vectors(3, 0), _vectors(2, 1)
    with cache.writing_shard(1) as shard:
        shard.append(["b0", "b1"], b)
    with cache.writing_shard(0) as shard:
        shard.append(["a0", "a1", "a2"], a)
    assert len(cache) == 1  # shards are not the cache until merged
    with cache.writing_shard(2) as busy:
        busy.append(["c0", "z"], _vectors(2, 2))  # "z" is cached already: not added again
        assert cache.merge_shards() == 5  # rank 2 is still writing: left alone
        assert sorted(p.name for p in (cache.folder / "shards").iterdir()) == ["rank-2"]
    assert cache.merge_shards() == 1
    assert cache.ids == ["z", "a0", "a1", "a2", "b0", "b1", "c0"]
    np.testing.assert_array_equal(
        cache.read(["a0", "a1", "a2", "b0", "b1"]), np.concatenate([a, b]).astype(np.float16)
    )
    assert list((cache.folder / "shards").iterdir()) == [] and cache.merge_shards() == 0


def test_merge_killed_midway_is_finished_by_the_next_merge(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, 4)
    rows = _vectors(5, 3)
    with cache.writing_shard(0) as shard:
        shard.append([f"s{k}" for k in range(5)], rows)
    cache.append(["s0", "s1"], rows[:2])  # a merge killed after part of its rows went in …
    (cache.folder / "shards" / ".merged-rank-9-123").mkdir()  # … or while deleting a merged shard
    assert cache.merge_shards() == 3
    assert cache.ids == [f"s{k}" for k in range(5)]
    np.testing.assert_array_equal(cache.read(cache.ids), rows.astype(np.float16))
    assert list((cache.folder / "shards").iterdir()) == []


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """spec.json of 30 PNGs (one unreadable) and run.py, in ``tmp_path``."""
    source, _ = make_color_squares(tmp_path / "img", N_IMAGES, 3, size=32, seed=2)
    (source.root / source.paths[BROKEN]).write_bytes(b"")
    spec = {"root": str(source.root), "ids": list(source.ids), "paths": list(source.paths)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _torchrun(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(folder / "run.py"), str(folder)]  # fmt: skip
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}
    for stale in folder.glob("rank*.json"):
        stale.unlink()
    return subprocess.run(command, env=full_env, cwd=folder, capture_output=True, text=True, timeout=180)


def _ranks(folder: Path) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def _single_process_cache(folder: Path) -> EmbeddingCache:
    spec = json.loads((folder / "spec.json").read_text())
    from core.data import ImageSource

    seed_everything(0)
    model = create_model("resnet10t", 3)
    source = ImageSource(Path(spec["root"]), spec["ids"], spec["paths"])
    single = embed_images(model, source, folder / "single", backbone="resnet10t", image_size=32, batch_size=BATCH,
                          device="cpu")  # fmt: skip
    assert single.computed == N_IMAGES - 1
    return single.cache


def _assert_same_cache(sharded_folder: Path, single: EmbeddingCache) -> None:
    """Same ids and vectors: the same images through the same weights, each image's features not
    depending on its batch (eval mode), stored as float16. Ranks batch the images differently, so
    the float32 features may differ in their last bits before rounding; then float16 rounds them to
    neighbouring values at worst (one float16 step: 2**-10 relative)."""
    sharded = EmbeddingCache(sharded_folder.parents[1], single.key, single.dim)
    assert sharded.folder == sharded_folder
    assert sorted(sharded.ids) == sorted(single.ids) and len(sharded) == N_IMAGES - 1
    got, want = sharded.read(single.ids), single.read(single.ids)
    np.testing.assert_allclose(got, want, rtol=2**-10, atol=1e-6)
    assert not (sharded_folder / "shards").exists() or not list((sharded_folder / "shards").iterdir())


@pytest.mark.slow
def test_two_gloo_processes_fill_the_same_cache_as_one(images: Path) -> None:
    done = _torchrun(images)
    assert done.returncode == 0, done.stderr[-6000:]
    ranks = _ranks(images)
    broken = f"img{BROKEN}"
    for info in ranks:  # totals agree on both ranks; the unreadable image is reported by both
        assert info["world"] == 2 and info["complete"] and info["cached"] == N_IMAGES - 1
        assert info["computed_total"] == info["merged"] == N_IMAGES - 1
        assert info["skipped"] == {broken: "empty file (0 bytes)"}
    assert [r["assigned"] for r in ranks] == [15, 15] and ranks[0]["computed"] + ranks[1]["computed"] == 29
    folder = Path(ranks[0]["folder"])
    merged = EmbeddingCache(folder.parents[1], EmbeddingKey(**_key_of(folder)), _dim_of(folder))
    assert merged.ids == [f"img{k}" for k in range(N_IMAGES) if k != BROKEN]  # shards merged in rank order
    _assert_same_cache(folder, _single_process_cache(images))

    again = _torchrun(images)  # everything cached: nothing computed, the broken image retried
    assert again.returncode == 0, again.stderr[-6000:]
    assert [(r["assigned"], r["computed"], r["merged"]) for r in _ranks(images)] == [(0, 0, 0), (1, 0, 0)]


@pytest.mark.slow
def test_killed_rank_leaves_its_flushed_rows_and_only_the_rest_is_redone(images: Path) -> None:
    killed = _torchrun(images, LM_KILL_RANK="1")
    assert killed.returncode != 0 and not (images / "rank1.json").exists()
    folder = next((images / "cache" / "embeddings").iterdir())
    shard1 = EmbeddingCache(
        folder, EmbeddingKey(**_key_of(folder)), _dim_of(folder), folder=folder / "shards" / "rank-1"
    )
    assert shard1.ids == [f"img{k}" for k in range(15, 15 + BATCH)]  # rank 1's block starts at 15; one flush
    held = set(EmbeddingCache(folder.parents[1], EmbeddingKey(**_key_of(folder)), _dim_of(folder)).ids)
    for shard in (folder / "shards").glob("rank-*"):  # rank 0 may or may not have finished its block
        held |= set(
            EmbeddingCache(folder, EmbeddingKey(**_key_of(folder)), _dim_of(folder), folder=shard).ids
        )
    assert len(held) >= BATCH

    done = _torchrun(images)
    assert done.returncode == 0, done.stderr[-6000:]
    ranks = _ranks(images)
    redo = N_IMAGES - 1 - len(held)  # readable images no shard or cache held
    assert ranks[0]["computed_total"] == redo and ranks[0]["cached"] == N_IMAGES - 1
    assert sum(r["assigned"] for r in ranks) == redo + 1  # + the unreadable image, tried again
    _assert_same_cache(folder, _single_process_cache(images))


def _key_of(folder: Path) -> dict[str, object]:
    meta = json.loads((folder / "meta.json").read_text())
    return {k: meta[k] for k in ("backbone", "weights", "image_size", "transform")}


def _dim_of(folder: Path) -> int:
    return int(json.loads((folder / "meta.json").read_text())["dim"])
