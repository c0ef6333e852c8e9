"""core.train.finetune under torchrun: two CPU processes on gloo, rank 0 writes the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.models import load_checkpoint
from tests.core.test_data import make_color_squares

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import numpy as np
    import torch
    import torch.distributed as dist

    import core.train.finetuning as ft
    from core.data import ImageSource
    from core.models import weights_fingerprint
    from core.train import FinetuneConfig, finetune

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    saves = []
    real_save = ft.save_checkpoint

    def recording_save(path, payload):
        saves.append(int(payload["step"]))
        return real_save(path, payload)

    ft.save_checkpoint = recording_save
    spec = json.loads((out / "spec.json").read_text())
    source = ImageSource(Path(spec["root"]), spec["ids"], spec["paths"])
    targets = np.array(spec["targets"], dtype=np.int8)
    config = FinetuneConfig(backbone="resnet10t", num_classes=3, image_size=32, epochs=2, batch_size=4,
                            lr=3e-3, ema_decay=0.9, auto_augment=None, device="cpu")
    result = finetune(config, source, targets, torch.nn.BCEWithLogitsLoss(), checkpoint_path=out / "ckpt.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world": int(os.environ["WORLD_SIZE"]), "group_left": not dist.is_initialized(), "saves": saves, "step": result.step,
        "total": result.total_steps, "losses": result.epoch_losses, "skipped": result.skipped,
        "weights": weights_fingerprint(result.model),
    }))
    """
)


@pytest.mark.slow
def test_two_process_gloo_run_completes_and_rank0_writes(tmp_path: Path) -> None:
    source, truth = make_color_squares(tmp_path / "images", 17, 3, size=32, seed=5)
    (source.root / source.paths[6]).write_bytes(b"")  # one unreadable image, seen by one rank
    spec = {
        "root": str(source.root),
        "ids": list(source.ids),
        "paths": list(source.paths),
        "targets": truth.astype(float).tolist(),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "run.py"),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # 17 images over 2 ranks → 9 per rank (padded) → 2 steps of 4 per epoch → 4 steps in all.
    for info in ranks:
        assert info["world"] == 2 and info["step"] == info["total"] == 4 and info["group_left"]
        assert info["skipped"] == {source.ids[6]: "empty file (0 bytes)"}  # merged from both ranks
    assert ranks[0]["saves"] == [2, 4] and ranks[1]["saves"] == []  # only rank 0 writes, each epoch
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas identical
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 2
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 4 and ckpt["steps_per_epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("ckpt", ".ckpt"))) == ["ckpt.pt"]
