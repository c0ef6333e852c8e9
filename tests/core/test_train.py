"""core.train: one-cycle schedule, fine-tuning (loss, checkpoint, resume, skips), head training, predict."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.data import ImageDataset, ImageSource, SkipLog, create_loader, create_transform_for
from core.device import available_devices, seed_everything, select_device
from core.losses import loss_from_name
from core.metrics import partial_map
from core.models import CheckpointError, create_model, load_checkpoint
from core.train import (
    FinetuneConfig,
    HeadConfig,
    finetune,
    load_finetuned,
    load_head,
    onecycle_lr,
    predict_head,
    predict_images,
    predict_probs,
    resume_finetune,
    save_head,
    train_head,
)
from tests.core.test_data import make_color_squares

C = 3


class MaskedBCE(nn.Module):
    """Binary cross-entropy over annotated cells only (targets 1 / 0; -1 ignored), mean per cell."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mask = targets != -1
        return F.binary_cross_entropy_with_logits(logits[mask], targets[mask].float())


def _partial(truth: np.ndarray, unknown: float, seed: int) -> np.ndarray:
    targets = truth.copy()
    targets[np.random.default_rng(seed).random(truth.shape) < unknown] = -1
    return targets


def _config(**overrides: object) -> FinetuneConfig:
    base = {
        "backbone": "resnet10t",
        "num_classes": C,
        "image_size": 32,
        "epochs": 2,
        "batch_size": 12,
        "lr": 3e-3,
        "ema_decay": 0.9,
        "auto_augment": None,
        "re_prob": 0.25,
        "device": "cpu",
    }
    base.update(overrides)
    return FinetuneConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageSource, np.ndarray]:
    return make_color_squares(tmp_path_factory.mktemp("train_images"), 48, C, size=32, seed=3)


# --- schedule ---


@pytest.mark.parametrize(("total", "pct"), [(50, 0.2), (7, 0.3), (1000, 0.25)])
def test_onecycle_matches_torch_onecycle_at_every_step(total: int, pct: float) -> None:
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, total_steps=total, pct_start=pct, cycle_momentum=False
    )
    for step in range(total):
        assert onecycle_lr(step, total, 0.1, pct_start=pct) == pytest.approx(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if step < total - 1:
            reference.step()


def test_onecycle_three_points() -> None:
    assert onecycle_lr(0, 100, 1.0) == pytest.approx(0.04)
    assert onecycle_lr(19, 100, 1.0) == pytest.approx(1.0)
    assert onecycle_lr(99, 100, 1.0) == pytest.approx(0.04 / 1e4)
    assert onecycle_lr(500, 100, 1.0) == onecycle_lr(99, 100, 1.0)
    with pytest.raises(ValueError, match="total_steps"):
        onecycle_lr(0, 0, 1.0)


# --- fine-tuning ---


def test_finetune_lowers_the_loss_and_learns(images: tuple[ImageSource, np.ndarray], tmp_path: Path) -> None:
    source, truth = images
    loss = MaskedBCE()
    progress: list[float] = []
    result = finetune(
        _config(epochs=3),
        source,
        _partial(truth, 0.3, 0),
        loss,
        checkpoint_path=tmp_path / "ck.pt",
        on_progress=lambda f, _m: progress.append(f),
    )
    assert result.complete and not result.stopped and result.epochs_done == 3
    assert result.step == result.total_steps == 12
    assert loss.epochs == [0, 1, 2]
    assert result.epoch_losses[-1] < result.epoch_losses[0] * 0.8, result.epoch_losses
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) == 12
    probs, skipped = predict_images(result.model, source, image_size=32, device="cpu")
    assert skipped == {}
    chance = partial_map(np.random.default_rng(0).random(truth.shape), truth).map
    assert partial_map(probs, truth).map > max(chance + 25.0, 65.0), chance
    ckpt = load_checkpoint(tmp_path / "ck.pt")
    assert ckpt["step"] == 12 and ckpt["epochs_done"] == 3 and ckpt["config"]["backbone"] == "resnet10t"
    assert ckpt["ema"] is not None and len(ckpt["epoch_losses"]) == 3


def test_resume_after_interruption_matches_an_uninterrupted_run(
    images: tuple[ImageSource, np.ndarray], tmp_path: Path
) -> None:
    source, truth = images
    source, truth = source.subset(range(24)), truth[:24]
    targets = _partial(truth, 0.3, 1)
    config = _config(epochs=2, auto_augment="rand-m9-mstd0.5")
    straight = finetune(config, source, targets, MaskedBCE(), checkpoint_path=tmp_path / "a.pt")

    calls: list[int] = []

    def stop_after_first_epoch() -> bool:
        calls.append(1)
        return len(calls) > 2  # 2 steps per epoch: stop before step 3

    cut = finetune(
        config,
        source,
        targets,
        MaskedBCE(),
        checkpoint_path=tmp_path / "b.pt",
        should_stop=stop_after_first_epoch,
    )
    assert cut.stopped and cut.step == 2 and cut.epochs_done == 1
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 2

    other_options = _config(epochs=9, lr=1.0)  # ignored: the checkpoint's own config wins
    resumed = finetune(other_options, source, targets, MaskedBCE(), checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from_step == 2 and resumed.complete and resumed.config == config
    assert resumed.epoch_losses == pytest.approx(straight.epoch_losses, rel=1e-5)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)


def test_mid_epoch_stop_resumes_from_that_step(
    images: tuple[ImageSource, np.ndarray], tmp_path: Path
) -> None:
    source, truth = images
    source, truth = source.subset(range(24)), truth[:24]
    calls: list[int] = []
    config = _config(epochs=1)
    cut = finetune(
        config,
        source,
        _partial(truth, 0.3, 2),
        MaskedBCE(),
        checkpoint_path=tmp_path / "c.pt",
        should_stop=lambda: calls.append(1) or len(calls) > 1,
    )
    assert cut.stopped and cut.step == 1 and cut.epochs_done == 0 and cut.epoch_losses == []
    done = resume_finetune(tmp_path / "c.pt", source, _partial(truth, 0.3, 2), MaskedBCE())
    assert done.resumed_from_step == 1 and done.step == done.total_steps == 2 and len(done.epoch_losses) == 1
    again = resume_finetune(tmp_path / "c.pt", source, _partial(truth, 0.3, 2), MaskedBCE())
    assert again.resumed_from_step == 2 and again.step == 2  # already complete: nothing to do


def test_finetune_with_csl_and_a_broken_image(images: tuple[ImageSource, np.ndarray], tmp_path: Path) -> None:
    source, truth = images
    root = tmp_path / "imgs"
    root.mkdir()
    for name in source.paths[:16]:
        (root / name).write_bytes((source.root / name).read_bytes())
    (root / source.paths[3]).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    sub = ImageSource(root, source.ids[:16], source.paths[:16])
    loss = loss_from_name("csl", C, prior=np.full(C, 0.4))
    result = finetune(_config(epochs=2, batch_size=8, ema_decay=0.0), sub, _partial(truth[:16], 0.5, 3), loss)
    assert list(result.skipped) == [source.ids[3]] and "unreadable image" in result.skipped[source.ids[3]]
    assert result.complete and all(np.isfinite(result.epoch_losses))


def test_load_finetuned_rebuilds_the_model_from_the_checkpoint(
    images: tuple[ImageSource, np.ndarray], tmp_path: Path
) -> None:
    source, truth = images
    sub = source.subset(range(16))
    saved_steps: list[int | None] = []

    def peek(_fraction: float, _message: str) -> None:
        path = tmp_path / "m.pt"
        saved_steps.append(load_checkpoint(path)["step"] if path.exists() else None)

    config = _config(epochs=1, batch_size=4, checkpoint_every=2)
    result = finetune(
        config, sub, truth[:16], MaskedBCE(), checkpoint_path=tmp_path / "m.pt", on_progress=peek
    )
    assert saved_steps == [None, None, 2, 2]  # progress is reported before the step's checkpoint
    model, config = load_finetuned(tmp_path / "m.pt")
    assert config == result.config
    transform = create_transform_for(model, image_size=32, is_training=False)
    loader = create_loader(ImageDataset(sub, None, transform), batch_size=5)
    np.testing.assert_allclose(predict_probs(model, loader), predict_probs(result.model, loader), atol=1e-6)
    raw, _ = load_finetuned(tmp_path / "m.pt", use_ema=False)
    assert not torch.equal(raw.fc.weight, model.fc.weight)
    save_head(
        tmp_path / "h.pt",
        torch.nn.Sequential(torch.nn.Linear(2, 2)),
        HeadConfig(num_classes=2, in_features=2),
    )
    with pytest.raises(CheckpointError, match="not a labelmend fine-tuning checkpoint"):
        load_finetuned(tmp_path / "h.pt")


def test_targets_must_match_images_and_classes(images: tuple[ImageSource, np.ndarray]) -> None:
    source, truth = images
    with pytest.raises(ValueError, match=r"\(48, 3\)"):
        finetune(_config(), source, truth[:10], MaskedBCE())


def test_predict_probs_marks_skipped_rows_nan(images: tuple[ImageSource, np.ndarray], tmp_path: Path) -> None:
    source, _ = images
    sub = ImageSource(source.root, [*source.ids[:3], "ghost"], [*source.paths[:3], "ghost.png"])
    torch.manual_seed(0)
    model = create_model("resnet10t", C)
    loader = create_loader(
        ImageDataset(sub, None, create_transform_for(model, image_size=32, is_training=False)), batch_size=2
    )
    log = SkipLog()
    probs = predict_probs(model, loader, skipped=log)
    assert probs.shape == (4, C) and probs.dtype == np.float32
    assert np.isnan(probs[3]).all() and np.isfinite(probs[:3]).all() and log.ids == ["ghost"]


def test_configs_validate_and_round_trip(caplog: pytest.LogCaptureFixture) -> None:
    config = _config(epochs=4)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    with caplog.at_level("WARNING"):
        assert FinetuneConfig.from_dict({**config.to_dict(), "removed_option": 1}) == config
    assert "removed_option" in caplog.text
    with pytest.raises(ValueError, match="optimizer must be one of"):
        _config(optimizer="sgd")
    with pytest.raises(ValueError, match="ema_decay"):
        _config(ema_decay=1.0)
    with pytest.raises(ValueError, match="in_features must be at least 1"):
        HeadConfig(num_classes=3, in_features=0)


def test_select_device_and_seeding() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == available_devices()[0]
    if torch.cuda.is_available():
        assert select_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="CUDA is not available here"):
            select_device("cuda")
    with pytest.raises(ValueError, match="not a device name"):
        select_device("banana")
    seed_everything(11)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(11)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# --- head on embeddings ---


def _separable(n: int, d: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, c)) < 0.3).astype(np.int8)
    directions = rng.normal(size=(c, d))
    x = truth @ directions * 1.5 + rng.normal(size=(n, d)) + 3.0
    return x.astype(np.float32), truth


@pytest.mark.parametrize("loss_name", ["masked-bce", "csl"])
@pytest.mark.parametrize(("hidden", "solver"), [(0, "adam"), (32, "adam"), (0, "lbfgs")])
def test_head_beats_chance_on_a_separable_problem(loss_name: str, hidden: int, solver: str) -> None:
    x, truth = _separable(3000, 64, 10, seed=0)
    x, x_test, truth, truth_test = x[:2000], x[2000:], truth[:2000], truth[2000:]
    targets = _partial(truth, 0.5, 4)
    loss = MaskedBCE() if loss_name == "masked-bce" else loss_from_name("csl", 10)
    config = HeadConfig(
        num_classes=10, in_features=64, hidden=hidden, epochs=15, batch_size=256, lr=1e-2, solver=solver
    )
    before = partial_map(np.random.default_rng(0).random(truth_test.shape), truth_test).map
    result = train_head(x.astype(np.float16), targets, loss, config)
    after = partial_map(predict_head(result.head, x_test), truth_test).map
    assert after > 90.0 and after > before + 40.0, (before, after)
    # L-BFGS reports the loss at the end of each round; CSL's objective moves a little between rounds
    assert result.epoch_losses[-1] <= result.epoch_losses[0] * (1.0 if solver == "adam" else 1.01)
    assert result.steps == 15 * 8 if solver == "adam" else 4 <= result.steps <= 4 * config.lbfgs_iters * 2


def test_auto_solver_is_lbfgs_for_small_linear_heads_and_adam_at_scale() -> None:
    small = HeadConfig(num_classes=24, in_features=1280)
    assert small.resolved_solver(3_000) == "lbfgs"
    assert small.resolved_solver(100_000) == "adam"  # 100k x 1280 x 24 > LBFGS_MAX_MACS
    assert HeadConfig(num_classes=24, in_features=1280, hidden=64).resolved_solver(10) == "adam"
    assert HeadConfig(num_classes=2, in_features=8, solver="ADAM").solver == "adam"
    with pytest.raises(ValueError, match="unknown head solver 'sgd'"):
        HeadConfig(num_classes=2, in_features=8, solver="sgd")


def test_lbfgs_head_matches_a_converged_logistic_regression() -> None:
    """Full annotation, BCE, L2: the L-BFGS head reaches scikit-learn's optimum of the same problem."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, truth = _separable(600, 12, 3, seed=2)
    config = HeadConfig(num_classes=3, in_features=12, l2=10.0, lbfgs_iters=200, solver="lbfgs")
    summed_bce = nn.BCEWithLogitsLoss(reduction="sum")  # the same data term as scikit-learn's
    head = train_head(x, truth, summed_bce, config).head
    probs = predict_head(head, x)
    xs = (x - x.mean(0)) / x.std(0)
    for c in range(3):
        ref = sklearn.LogisticRegression(C=1 / 10.0, tol=1e-8, max_iter=5000).fit(xs, truth[:, c])
        np.testing.assert_allclose(probs[:, c], ref.predict_proba(xs)[:, 1], atol=2e-3)


def test_head_round_trips_through_its_checkpoint(tmp_path: Path) -> None:
    x, truth = _separable(500, 16, 4, seed=1)
    config = HeadConfig(num_classes=4, in_features=16, epochs=3, batch_size=128)
    result = train_head(torch.from_numpy(x), truth, MaskedBCE(), config)
    save_head(
        tmp_path / "head.pt", result.head, config, meta={"backbone": "resnet10t", "classes": ["a", "b"]}
    )
    head, loaded_config, meta = load_head(tmp_path / "head.pt")
    assert loaded_config == config and meta == {"backbone": "resnet10t", "classes": ["a", "b"]}
    np.testing.assert_array_equal(predict_head(head, x), predict_head(result.head, x))
    probs = predict_head(head, x)
    assert probs.shape == (500, 4) and probs.dtype == np.float32 and 0.0 <= probs.min() <= probs.max() <= 1.0


def test_head_stops_when_asked_and_validates_shapes() -> None:
    x, truth = _separable(400, 8, 3, seed=2)
    config = HeadConfig(num_classes=3, in_features=8, epochs=50, batch_size=100, solver="adam")
    steps: list[int] = []
    result = train_head(x, truth, MaskedBCE(), config, should_stop=lambda: steps.append(1) or len(steps) > 6)
    assert result.stopped and result.steps == 6 and len(result.epoch_losses) == 1
    polls: list[int] = []
    lbfgs = HeadConfig(num_classes=3, in_features=8, epochs=50, solver="lbfgs")
    result = train_head(x, truth, MaskedBCE(), lbfgs, should_stop=lambda: polls.append(1) or len(polls) > 6)
    assert result.stopped and result.steps == 6
    with pytest.raises(ValueError, match=r"\(N, D\) = \(400, 9\)"):
        train_head(x, truth, MaskedBCE(), HeadConfig(num_classes=3, in_features=9))
    with pytest.raises(ValueError, match="use 1 positive"):
        train_head(x, truth * 2, MaskedBCE(), config)


def test_lbfgs_csl_head_leaves_the_all_tied_start() -> None:
    """CSL with a class above the prior threshold, 80 % unknown, L-BFGS from the all-0.5 start: learns.

    (The stall this guards against, L-BFGS making no progress on CSL and the head staying at 0.5,
    was found on lite0 features, ``labelmend bench quality`` seed 1000 under RPS 0.8; this small
    case does not reproduce it, so it checks only that the retried rounds still learn.)"""
    x, truth = _separable(2000, 64, 10, seed=3)
    targets = _partial(truth, 0.8, 5)
    prior = np.full(10, 0.3)
    prior[0] = 0.6  # one class above CSL's prior threshold: its unknowns are ignored
    config = HeadConfig(num_classes=10, in_features=64, epochs=4, solver="lbfgs")
    result = train_head(x, targets, loss_from_name("csl", 10, prior=prior), config)
    probs = predict_head(result.head, x)
    assert probs.std() > 0.2 and partial_map(probs, truth).map > 90.0
