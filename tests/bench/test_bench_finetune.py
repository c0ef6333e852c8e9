"""`labelmend bench finetune`: the fine-tune step timed on this CPU with a tiny backbone."""

from __future__ import annotations

from typer.testing import CliRunner

from app.cli import app
from bench.finetune_speed import measure


def test_measure_times_real_training_steps() -> None:
    r = measure(backbone="resnet10t", image_size=32, batch_size=4, num_classes=5, steps=2, warmup=1,
                device="cpu")  # fmt: skip
    assert r.variant == "eager" and r.images_per_s > 0
    assert r.step_ms > 0 and r.warmup_s > 0 and r.peak_memory_gib == 0.0


def test_command_prints_the_table() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "finetune",
            "--backbone",
            "resnet10t",
            "--image-size",
            "32",
            "--batch-size",
            "4",
            "--classes",
            "5",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--no-compile",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "images/s" in result.output and "eager" in result.output and "resnet10t" in result.output
