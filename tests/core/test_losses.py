"""Tests for core.losses: the CSL golden case, properties, presets and baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.losses import (
    ClassAwareSelectiveLoss,
    HillLoss,
    LargeLossRejection,
    LossMode,
    LossName,
    WeakAssumeNegativeLoss,
    is_loss,
    likelihood_topk_for,
    list_losses,
    loss_from_name,
    resolve_topk,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PRIOR = [0.6, 0.02, 0.3, 0.1, 0.55, 0.04]

# (config, loss, sum of grad, sum of |grad|) from CSL.md, float64 reference values.
GOLDEN = [
    ({"mode": "negative"}, 17.9374768379, 1.0202209929, 8.4248793515),
    ({"mode": "ignore"}, 12.9872751866, -1.1304222552, 6.2742361035),
    ({"mode": "selective", "likelihood_topk": 1}, 13.1747202748, -0.9875405942, 6.4171177645),
    (
        {"prior": PRIOR, "prior_threshold": 0.5, "likelihood_topk": 1, "gamma_neg": 3, "gamma_unann": 4},
        11.4610666652,
        -1.9011672018,
        5.5034911568,
    ),
    (
        {
            "prior": PRIOR,
            "prior_threshold": 0.5,
            "likelihood_topk": 1,
            "gamma_neg": 1,
            "gamma_unann": 4,
            "clip": 0.05,
            "alpha_unann": 0.5,
        },
        11.6710578309,
        -1.9744028871,
        5.4302554716,
    ),
    (
        {
            "prior": PRIOR,
            "prior_threshold": 0.25,
            "likelihood_topk": 2,
            "gamma_pos": 1,
            "gamma_neg": 2,
            "gamma_unann": 3,
        },
        10.2632308904,
        -0.4310503279,
        4.5972360440,
    ),
]


def golden_inputs(dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(24, dtype=torch.float64)
    logits = (-3 + 6 * ((5 * k) % 24) / 23).reshape(4, 6)
    i = torch.arange(4)[:, None]
    j = torch.arange(6)[None, :]
    targets = ((i + 2 * j) % 3) - 1
    return logits.to(dtype=dtype, device=device).requires_grad_(True), targets.to(device)


def loss_and_grad(
    loss_fn: torch.nn.Module, logits: torch.Tensor, targets: torch.Tensor
) -> tuple[float, torch.Tensor]:
    x = logits.detach().clone().requires_grad_(True)
    loss = loss_fn(x, targets)
    loss.backward()
    assert x.grad is not None
    return float(loss.detach()), x.grad


def reference_csl(
    logits: np.ndarray,
    targets: np.ndarray,
    *,
    mode: str = "selective",
    gamma: tuple[float, float, float] = (0.0, 1.0, 2.0),
    alpha: tuple[float, float, float] = (1.0, 1.0, 1.0),
    clip: float = 0.0,
    prior: list[float] | None = None,
    threshold: float = 0.05,
    topk: int = 5,
) -> float:
    """CSL.md written out cell by cell with Python floats (an independent check)."""
    b, c = logits.shape
    p = [[1 / (1 + math.exp(-float(logits[i, j]))) for j in range(c)] for i in range(b)]
    q = [[min(1 - p[i][j] + clip, 1.0) if clip > 0 else 1 - p[i][j] for j in range(c)] for i in range(b)]
    w = {(i, j): 1.0 for i in range(b) for j in range(c) if targets[i, j] == -1}
    if mode == "ignore":
        w = dict.fromkeys(w, 0.0)
    elif mode == "selective":
        if prior is not None and threshold:
            for i, j in w:
                if prior[j] > threshold:
                    w[i, j] = 0.0
        # Ascending q; exact ties by class, then row (the documented tie-break).
        for i, j in sorted(w, key=lambda cell: (q[cell[0]][cell[1]], cell[1], cell[0]))[: topk * b]:
            w[i, j] = 0.0
    total = 0.0
    for i in range(b):
        for j in range(c):
            t = targets[i, j]
            if t == 1:
                total -= alpha[0] * (1 - p[i][j]) ** gamma[0] * math.log(max(p[i][j], 1e-8))
            elif t == 0:
                total -= alpha[1] * (1 - q[i][j]) ** gamma[1] * math.log(max(q[i][j], 1e-8))
            else:
                total -= w[i, j] * alpha[2] * (1 - q[i][j]) ** gamma[2] * math.log(max(q[i][j], 1e-8))
    return total


# ---------------------------------------------------------------------------------------------
# Golden case


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize(("config", "loss", "grad_sum", "grad_abs"), GOLDEN)
def test_golden_case(config, loss, grad_sum, grad_abs, dtype, rtol, device) -> None:
    logits, targets = golden_inputs(dtype, device)
    value, grad = loss_and_grad(ClassAwareSelectiveLoss(**config), logits, targets)
    assert value == pytest.approx(loss, rel=rtol)
    assert float(grad.sum()) == pytest.approx(grad_sum, rel=rtol)
    assert float(grad.abs().sum()) == pytest.approx(grad_abs, rel=rtol)


def test_golden_case_matches_the_cell_by_cell_definition() -> None:
    logits, targets = golden_inputs(torch.float64)
    x, t = logits.detach().numpy(), targets.numpy()
    assert reference_csl(x, t, mode="negative") == pytest.approx(GOLDEN[0][1], rel=1e-9)
    assert reference_csl(x, t, prior=PRIOR, threshold=0.25, topk=2, gamma=(1, 2, 3)) == pytest.approx(
        GOLDEN[5][1], rel=1e-9
    )


def test_loss_dtype_follows_logits_and_half_precision_is_upcast() -> None:
    logits, targets = golden_inputs(torch.float64)
    loss_fn = ClassAwareSelectiveLoss(likelihood_topk=1)
    assert loss_fn(logits, targets).dtype == torch.float64
    assert loss_fn(logits.float(), targets).dtype == torch.float32
    half = loss_fn(logits.detach().to(torch.bfloat16), targets)
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(
        float(loss_fn(logits.detach().to(torch.bfloat16).float(), targets)), rel=1e-6
    )


@pytest.mark.parametrize("device", DEVICES)
def test_loss_under_autocast_is_computed_in_float32(device: str) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 6).to(device)
    feats = torch.randn(5, 8, device=device)
    targets = torch.randint(-1, 2, (5, 6), device=device)
    loss_fn = ClassAwareSelectiveLoss(prior=PRIOR, prior_threshold=0.5, likelihood_topk=1)
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        logits = layer(feats)
        loss = loss_fn(logits, targets)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    assert float(loss.detach()) == pytest.approx(float(loss_fn(logits.detach().float(), targets)), rel=1e-6)
    loss.backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


# ---------------------------------------------------------------------------------------------
# Edge cases


def test_batch_of_one_and_batches_without_unknowns() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    targets = torch.tensor([[1, 0, 0]])
    values = {m: float(ClassAwareSelectiveLoss(mode=m)(logits, targets)) for m in LossMode}
    expected = -math.log(1 / (1 + math.exp(-2.0))) - sum(
        (1 / (1 + math.exp(-x))) * math.log(1 - 1 / (1 + math.exp(-x))) for x in (-1.0, 0.5)
    )
    assert values["selective"] == pytest.approx(expected, rel=1e-6)
    assert values["ignore"] == pytest.approx(expected, rel=1e-6)
    assert values["negative"] == pytest.approx(expected, rel=1e-6)


def test_all_unknown_batch_in_ignore_mode_is_zero_with_zero_grad() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    loss = ClassAwareSelectiveLoss(mode="ignore")(x, torch.full((3, 4), -1))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert x.grad is not None and torch.count_nonzero(x.grad) == 0


def test_prior_rule_is_strict_and_threshold_zero_disables_it() -> None:
    x = torch.zeros(2, 3)
    t = torch.full((2, 3), -1)
    unknown = t == -1
    q = 1 - torch.sigmoid(x)
    strict = ClassAwareSelectiveLoss(prior=[0.05, 0.051, 0.0], prior_threshold=0.05, likelihood_topk=0)
    assert strict.unknown_weight(q, unknown).tolist() == [[True, False, True], [True, False, True]]
    off = ClassAwareSelectiveLoss(prior=[0.9, 0.9, 0.9], prior_threshold=0.0, likelihood_topk=0)
    assert off.unknown_weight(q, unknown).all()


def test_likelihood_rule_ignores_the_k_most_likely_unknowns_of_the_whole_batch() -> None:
    x = torch.tensor([[5.0, 4.0, -1.0], [-2.0, -3.0, 3.0]])
    t = torch.tensor([[-1, -1, -1], [-1, 1, -1]])
    q = 1 - torch.sigmoid(x)
    loss_fn = ClassAwareSelectiveLoss(likelihood_topk=1)  # K = 1 * B = 2
    # Unknown logits 5, 4, -1, -2, 3: the two highest (5 and 4, both in row 0) are ignored.
    assert loss_fn.unknown_weight(q, t == -1).tolist() == [[False, False, True], [True, False, True]]


def test_fractional_topk_counts_a_share_of_the_classes() -> None:
    assert resolve_topk(5, batch_size=8, num_classes=80) == 40
    assert resolve_topk(0.0625, batch_size=8, num_classes=24) == 12  # 1.5 per image
    assert resolve_topk(0.0625, batch_size=8, num_classes=80) == 40
    assert resolve_topk(0, batch_size=8, num_classes=80) == 0
    assert likelihood_topk_for(80) == 5.0
    assert likelihood_topk_for(600) == 5.0
    assert likelihood_topk_for(24) == pytest.approx(0.0625)
    x = torch.randn(8, 24)
    t = torch.full((8, 24), -1)
    weight = ClassAwareSelectiveLoss(likelihood_topk=likelihood_topk_for(24)).unknown_weight(
        1 - torch.sigmoid(x), t == -1
    )
    assert int((~weight).sum()) == 12


def test_exact_ties_do_not_depend_on_row_order() -> None:
    x = torch.zeros(4, 3)
    t = torch.tensor([[-1, -1, -1], [-1, 1, -1], [0, -1, -1], [-1, -1, 0]])
    loss_fn = ClassAwareSelectiveLoss(prior=[0.9, 0.01, 0.01], prior_threshold=0.5, likelihood_topk=1)
    base = float(loss_fn(x, t))
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]):
        assert float(loss_fn(x[perm], t[perm])) == pytest.approx(base, rel=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "selectiv"}, "unknown loss mode 'selectiv'; valid modes: selective, ignore, negative"),
        ({"gamma_neg": -1}, "gamma_neg must be a finite number >= 0"),
        ({"clip": 1.0}, "clip must be in [0, 1)"),
        ({"prior_threshold": 1.5}, "prior_threshold must be in [0, 1]"),
        ({"prior": [0.1, float("nan")]}, "prior holds NaN or inf"),
        ({"prior": [[0.1, 0.2]]}, "prior must be 1-D"),
        ({"likelihood_topk": float("inf")}, "likelihood_topk must be a finite number >= 0"),
    ],
)
def test_bad_hyperparameters_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        ClassAwareSelectiveLoss(**kwargs)


def test_bad_inputs_are_rejected_with_shapes() -> None:
    loss_fn = ClassAwareSelectiveLoss(prior=PRIOR)
    with pytest.raises(ValueError, match=r"logits has shape \(4, 6\) but targets has shape \(4, 5\)"):
        loss_fn(torch.zeros(4, 6), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"the loss's prior has 6 classes but logits has 5"):
        loss_fn(torch.zeros(4, 5), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"targets must hold only 1 \(positive\), 0 \(negative\) and -1"):
        loss_fn(torch.zeros(2, 6), torch.full((2, 6), 2))
    with pytest.raises(ValueError, match=r"logits must be 2-D"):
        loss_fn(torch.zeros(6), torch.zeros(6))
    with pytest.raises(ValueError, match="must be torch tensors"):
        loss_fn(np.zeros((2, 6)), torch.zeros(2, 6))


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis)


@st.composite
def batches(
    draw: st.DrawFn, max_b: int = 6, max_c: int = 7, bound: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    b = draw(st.integers(1, max_b))
    c = draw(st.integers(1, max_c))
    values = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=32)
    logits = np.array(draw(st.lists(values, min_size=b * c, max_size=b * c)), dtype=np.float64).reshape(b, c)
    targets = np.array(draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=b * c, max_size=b * c))).reshape(
        b, c
    )
    return logits, targets


priors = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=7, max_size=7)


@settings(max_examples=60, deadline=None)
@given(batches(), st.sampled_from([0.0, 1.0, 3.0]), st.sampled_from([0.0, 0.05]))
def test_ignore_mode_gives_exactly_zero_grad_on_unknowns(batch, gamma: float, clip: float) -> None:
    logits, targets = batch
    loss_fn = ClassAwareSelectiveLoss(
        mode="ignore", gamma_pos=gamma, gamma_neg=gamma, gamma_unann=gamma, clip=clip
    )
    _, grad = loss_and_grad(loss_fn, torch.from_numpy(logits), torch.from_numpy(targets))
    assert torch.all(grad[torch.from_numpy(targets) == -1] == 0)


@settings(max_examples=60, deadline=None)
@given(batches(), priors, st.sampled_from([0.0, 0.05]))
def test_selective_with_rules_off_equals_negative(batch, prior: list[float], clip: float) -> None:
    logits, targets = batch
    c = logits.shape[1]
    x, t = torch.from_numpy(logits), torch.from_numpy(targets)
    common = {"gamma_pos": 1.0, "gamma_neg": 2.0, "gamma_unann": 3.0, "clip": clip}
    sel = ClassAwareSelectiveLoss(
        mode="selective", prior=prior[:c], prior_threshold=0.0, likelihood_topk=0, **common
    )
    neg = ClassAwareSelectiveLoss(mode="negative", **common)
    v_sel, g_sel = loss_and_grad(sel, x, t)
    v_neg, g_neg = loss_and_grad(neg, x, t)
    assert v_sel == v_neg
    assert torch.equal(g_sel, g_neg)


@settings(max_examples=60, deadline=None)
@given(batches(bound=6.0), st.sampled_from([(0.0, 1.0, 2.0), (1.0, 3.0, 4.0), (2.0, 0.5, 1.5)]))
def test_focusing_weight_carries_no_gradient(batch, gamma: tuple[float, float, float]) -> None:
    logits, targets = batch
    loss_fn = ClassAwareSelectiveLoss(
        mode="negative", gamma_pos=gamma[0], gamma_neg=gamma[1], gamma_unann=gamma[2], alpha_unann=0.7
    )
    _, grad = loss_and_grad(loss_fn, torch.from_numpy(logits), torch.from_numpy(targets))
    p = 1 / (1 + np.exp(-logits))
    # d/dx of -w log p is -w (1 - p); of -w log(1 - p) is w p; w held constant.
    expected = np.where(
        targets == 1,
        -((1 - p) ** gamma[0]) * (1 - p),
        np.where(targets == 0, p ** gamma[1] * p, 0.7 * p ** gamma[2] * p),
    )
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(batches(), priors, st.sampled_from([0.0, 0.3, 0.5]), st.sampled_from([0, 1, 2, 0.25]), st.randoms())
def test_permuting_the_batch_leaves_the_loss_unchanged(batch, prior, threshold, topk, rnd) -> None:
    logits, targets = batch
    c = logits.shape[1]
    loss_fn = ClassAwareSelectiveLoss(prior=prior[:c], prior_threshold=threshold, likelihood_topk=topk)
    perm = list(range(logits.shape[0]))
    rnd.shuffle(perm)
    base = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(targets)))
    permuted = float(loss_fn(torch.from_numpy(logits[perm]), torch.from_numpy(targets[perm])))
    assert permuted == pytest.approx(base, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(batches(bound=100.0), st.sampled_from(list_losses()), st.sampled_from([torch.float32, torch.float64]))
def test_no_nan_or_inf_for_logits_within_100(batch, name: str, dtype: torch.dtype) -> None:
    logits, targets = batch
    c = logits.shape[1]
    loss_fn = loss_from_name(name, c, prior=np.linspace(0.0, 1.0, c))
    loss_fn.set_epoch(50)
    value, grad = loss_and_grad(loss_fn, torch.from_numpy(logits).to(dtype), torch.from_numpy(targets))
    assert math.isfinite(value)
    assert torch.isfinite(grad).all()


@settings(max_examples=40, deadline=None)
@given(batches(max_b=4, max_c=5, bound=5.0), priors, st.sampled_from([0.0, 0.2, 0.5]), st.integers(0, 3))
def test_matches_the_cell_by_cell_definition(batch, prior, threshold, topk) -> None:
    logits, targets = batch
    c = logits.shape[1]
    kwargs = {"gamma_pos": 1.0, "gamma_neg": 2.0, "gamma_unann": 3.0, "alpha_unann": 0.5, "clip": 0.05}
    loss_fn = ClassAwareSelectiveLoss(
        prior=prior[:c], prior_threshold=threshold, likelihood_topk=topk, **kwargs
    )
    value = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(targets)))
    expected = reference_csl(
        logits,
        targets,
        gamma=(1.0, 2.0, 3.0),
        alpha=(1.0, 1.0, 0.5),
        clip=0.05,
        prior=prior[:c],
        threshold=threshold,
        topk=topk,
    )
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Registry


def test_list_losses_and_enum_agree() -> None:
    assert list_losses() == ["ignore", "negative", "asl", "csl", "hill", "wan", "ll-r"]
    assert [n.value for n in LossName] == list_losses()
    assert is_loss("csl") and not is_loss("CSL")


@pytest.mark.parametrize("name", list_losses())
def test_every_preset_builds_trains_and_has_set_epoch(name: str) -> None:
    torch.manual_seed(0)
    loss_fn = loss_from_name(name, num_classes=12, prior=np.linspace(0.01, 0.7, 12))
    loss_fn.set_epoch(0)
    loss_fn.set_epoch(3)
    x = torch.randn(16, 12, requires_grad=True)
    t = torch.randint(-1, 2, (16, 12))
    loss = loss_fn(x, t)
    loss.backward()
    assert loss.ndim == 0 and float(loss.detach()) > 0
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        loss_fn.set_epoch(-1)


def test_presets_hold_the_documented_settings() -> None:
    asl = loss_from_name("asl", 80)
    assert (asl.mode, asl.gamma_pos, asl.gamma_neg, asl.gamma_unann, asl.clip) == (
        "negative",
        1.0,
        4.0,
        4.0,
        0.05,
    )
    csl = loss_from_name("csl", 80, prior=np.full(80, 0.6))
    assert (csl.mode, csl.gamma_neg, csl.gamma_unann, csl.prior_threshold, csl.likelihood_topk) == (
        "selective",
        1.0,
        4.0,
        0.5,
        5.0,
    )
    assert bool(csl.ignored_classes.all())
    assert loss_from_name("csl", 24).likelihood_topk == pytest.approx(0.0625)
    ignore = loss_from_name("ignore", 5)
    assert (ignore.mode, ignore.gamma_pos, ignore.gamma_neg, ignore.gamma_unann) == ("ignore", 0.0, 0.0, 0.0)
    assert loss_from_name("wan", 11).unknown_weight == pytest.approx(0.1)
    assert loss_from_name("csl", 80, gamma_neg=3).gamma_neg == 3.0


def test_registry_errors_name_the_valid_choices() -> None:
    with pytest.raises(
        ValueError, match="unknown loss 'focal'; valid losses: ignore, negative, asl, csl, hill, wan, ll-r"
    ):
        loss_from_name("focal", 5)
    with pytest.raises(
        ValueError, match="unknown option\\(s\\) gama for loss 'csl'; valid options: mode, gamma_pos"
    ):
        loss_from_name("csl", 5, gama=2)
    with pytest.raises(ValueError, match="prior has 3 values but there are 5 classes"):
        loss_from_name("csl", 5, prior=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        loss_from_name("csl", 0)


# ---------------------------------------------------------------------------------------------
# Baselines


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_hill_loss_matches_its_formula() -> None:
    x = torch.tensor([[1.5, -0.5, 2.0], [0.3, -2.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[1, 0, -1], [-1, 1, 0]])
    expected = 0.0  # the paper: Hill on every negative, annotated (0) or assumed (-1)
    for xi, ti in zip(x.flatten().tolist(), t.flatten().tolist(), strict=True):
        if ti == 1:
            pm = _sig(xi - 1.0)
            expected += -((1 - pm) ** 2) * math.log(pm)
        else:
            expected += (1.5 - _sig(xi)) * _sig(xi) ** 2
    assert float(HillLoss()(x, t)) == pytest.approx(expected, rel=1e-12)
    assert float(loss_from_name("hill", 3)(x, t)) == pytest.approx(expected, rel=1e-12)
    bce = float(HillLoss(hill_verified_negatives=False)(x, t))
    hill_neg = sum((1.5 - _sig(v)) * _sig(v) ** 2 for v in x[t == 0].tolist())
    bce_neg = sum(-math.log(1 - _sig(v)) for v in x[t == 0].tolist())
    assert bce == pytest.approx(expected - hill_neg + bce_neg, rel=1e-12)


def test_hill_preset_follows_the_paper_and_can_switch() -> None:
    assert loss_from_name("hill", 5).hill_verified_negatives is True
    assert HillLoss().hill_verified_negatives is True
    assert loss_from_name("hill", 5, hill_verified_negatives=False).hill_verified_negatives is False
    with pytest.raises(ValueError, match="hill_verified_negatives must be True or False"):
        HillLoss(hill_verified_negatives=1)  # type: ignore[arg-type]


def test_wan_weights_unknowns_by_one_over_c_minus_one() -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 6, dtype=torch.float64)
    t = torch.randint(-1, 2, (5, 6))
    annotated_only = float(ClassAwareSelectiveLoss(mode="ignore", gamma_neg=0, gamma_unann=0)(x, t))
    negatives = float(ClassAwareSelectiveLoss(mode="negative", gamma_neg=0, gamma_unann=0)(x, t))
    wan = float(WeakAssumeNegativeLoss()(x, t))
    assert wan == pytest.approx(annotated_only + (negatives - annotated_only) / 5, rel=1e-12)


def test_large_loss_rejection_drops_the_largest_unknown_losses() -> None:
    torch.manual_seed(2)
    x = torch.randn(10, 50, dtype=torch.float64)
    t = torch.randint(-1, 2, (10, 50))
    llr = LargeLossRejection()
    negative = float(ClassAwareSelectiveLoss(mode="negative", gamma_neg=0, gamma_unann=0)(x, t))
    assert float(llr(x, t)) == pytest.approx(negative, rel=1e-12)  # epoch 0 rejects nothing
    llr.set_epoch(5)  # rate 1 %: ceil(500 * 0.01) = 5 cells
    assert llr.num_rejected(10, 50) == 5
    xg = x.clone().requires_grad_(True)
    value = llr(xg, t)
    value.backward()
    unknown_logits = x[t == -1]
    top5 = torch.topk(unknown_logits, 5).values
    rejected_loss = float(torch.nn.functional.softplus(top5).sum())
    assert float(value.detach()) == pytest.approx(negative - rejected_loss, rel=1e-12)
    assert xg.grad is not None
    assert int(((xg.grad == 0) & (t == -1)).sum()) == 5


# ---------------------------------------------------------------------------------------------
# The fused implementation is the same function as plain autograd over the definitions


def _reference(loss_fn: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Each loss written the plain way (sigmoid, clamp, log, where; autograd for the gradient).

    Selection: unknowns sorted by q ascending, exact ties by class then row (a stable sort of the
    class-major enumeration); LL-R by logit descending, same tie-break.
    """
    pos, neg, unk = t == 1, t == 0, t == -1
    zero = torch.zeros((), dtype=x.dtype)

    def lowest(key: torch.Tensor, k: int) -> torch.Tensor:
        b, c = key.shape
        idx = torch.nonzero(unk.t().reshape(-1)).squeeze(1)
        order = torch.sort(key.detach().t().reshape(-1)[idx], stable=True).indices[:k]
        chosen = torch.zeros(b * c, dtype=torch.bool)
        chosen[idx[order]] = True
        return chosen.view(c, b).t()

    if isinstance(loss_fn, ClassAwareSelectiveLoss):
        p = torch.sigmoid(x)
        q = 1.0 - p
        if loss_fn.clip > 0:
            q = (q + loss_fn.clip).clamp(max=1.0)
        log_p, log_q = torch.log(p.clamp(min=1e-8)), torch.log(q.clamp(min=1e-8))
        with torch.no_grad():
            keep = unk.clone() if loss_fn.mode != "ignore" else torch.zeros_like(unk)
            if loss_fn.mode == "selective":
                if loss_fn.ignored_classes is not None and loss_fn.prior_threshold > 0:
                    keep &= ~loss_fn.ignored_classes
                k = resolve_topk(loss_fn.likelihood_topk, *x.shape)
                if k > 0:
                    keep &= ~lowest(q, k)
            w_pos = torch.where(pos, loss_fn.alpha_pos * (1.0 - p) ** loss_fn.gamma_pos, zero)
            w_neg = torch.where(neg, loss_fn.alpha_neg * (1.0 - q) ** loss_fn.gamma_neg, zero)
            w_unk = torch.where(keep, loss_fn.alpha_unann * (1.0 - q) ** loss_fn.gamma_unann, zero)
        return -(w_pos * log_p + (w_neg + w_unk) * log_q).sum()
    if isinstance(loss_fn, HillLoss):
        xm = x - loss_fn.margin
        pos_term = -((1.0 - torch.sigmoid(xm)) ** loss_fn.gamma) * torch.nn.functional.logsigmoid(xm)
        p = torch.sigmoid(x)
        hill = (loss_fn.lamb - p) * p * p
        neg_term = hill if loss_fn.hill_verified_negatives else torch.nn.functional.softplus(x)
        return (
            torch.where(pos, pos_term, zero) + torch.where(neg, neg_term, zero) + torch.where(unk, hill, zero)
        ).sum()
    softplus = torch.nn.functional.softplus
    if isinstance(loss_fn, WeakAssumeNegativeLoss):
        w = loss_fn.unknown_weight if loss_fn.unknown_weight is not None else 1.0 / (x.shape[1] - 1)
        return (
            torch.where(pos, softplus(-x), zero)
            + torch.where(neg, softplus(x), zero)
            + torch.where(unk, w * softplus(x), zero)
        ).sum()
    assert isinstance(loss_fn, LargeLossRejection)
    k = loss_fn.num_rejected(*x.shape)
    kept = unk & ~lowest(-x, k) if k > 0 else unk
    return (
        torch.where(pos, softplus(-x), zero)
        + torch.where(neg, softplus(x), zero)
        + torch.where(kept, softplus(x), zero)
    ).sum()


def _random_batch(
    b: int, c: int, seed: int, scale: float = 4.0, dtype: torch.dtype = torch.float64, annotated: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, c, generator=gen, dtype=torch.float64) * scale - 1.0).to(dtype)
    t = torch.randint(0, 2, (b, c), generator=gen)
    t[torch.rand(b, c, generator=gen) > annotated] = -1
    return x, t


EXTRA_CONFIGS = [
    ("csl", {"gamma_pos": 2.0, "alpha_pos": 0.7, "alpha_unann": 0.3}),
    ("csl", {"clip": 0.05, "gamma_neg": 0.0}),
    ("csl", {"gamma_neg": 2.5, "gamma_unann": 1.5}),  # non-integer exponents (torch.pow)
    ("negative", {"gamma_neg": 1.0, "gamma_unann": 3.0, "alpha_neg": 0.5}),
    ("asl", {"gamma_unann": 0.0}),
    ("wan", {"unknown_weight": 0.3}),
]


@pytest.mark.parametrize(
    ("name", "overrides"), [(n, {}) for n in list_losses()] + EXTRA_CONFIGS, ids=lambda v: str(v)
)
@pytest.mark.parametrize(("b", "c", "scale"), [(37, 23, 4.0), (9, 5, 30.0), (700, 400, 3.0)])
def test_fused_loss_equals_the_autograd_reference(
    name: str, overrides: dict, b: int, c: int, scale: float
) -> None:
    """Small and large batches (the large one takes the sampled top-k path and several row blocks),
    moderate and extreme logits (|x| up to ~100: the log floor and exact softplus branches)."""
    x, t = _random_batch(b, c, seed=b + c, scale=scale)
    loss_fn = loss_from_name(name, c, prior=np.linspace(0.0, 0.9, c), **overrides)
    loss_fn.set_epoch(7)
    value, grad = loss_and_grad(loss_fn, x, t)
    xr = x.clone().requires_grad_(True)
    expected = _reference(loss_fn, xr, t)
    expected.backward()
    assert value == pytest.approx(float(expected.detach()), rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(grad.numpy(), xr.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list_losses())
def test_float32_large_batch_matches_float64(name: str) -> None:
    x, t = _random_batch(600, 500, seed=3, scale=3.0, annotated=0.05)
    loss_fn = loss_from_name(name, 500, prior=np.linspace(0.0, 0.9, 500))
    loss_fn.set_epoch(4)
    v64, g64 = loss_and_grad(loss_fn, x, t)
    v32, g32 = loss_and_grad(loss_fn, x.float(), t.float())
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32.double().numpy(), g64.numpy(), rtol=1e-4, atol=1e-6)


def test_ties_at_the_cut_on_a_large_batch_follow_class_then_row() -> None:
    """Logits on a coarse grid: many exact ties at the K-th value, resolved by class, then row."""
    b, c = 512, 160  # 81,920 cells: the sampled selection path
    x, t = _random_batch(b, c, seed=5, scale=2.0, annotated=0.1)
    x = (x * 4).round() / 4
    loss_fn = ClassAwareSelectiveLoss(prior=np.linspace(0.0, 1.0, c), prior_threshold=0.6, likelihood_topk=3)
    value, grad = loss_and_grad(loss_fn, x, t)
    xr = x.clone().requires_grad_(True)
    expected = _reference(loss_fn, xr, t)
    expected.backward()
    assert value == pytest.approx(float(expected.detach()), rel=1e-12)
    assert torch.equal(grad == 0, xr.grad == 0)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(0))
    assert float(loss_fn(x[perm], t[perm])) == pytest.approx(value, rel=1e-12)
    weight = loss_fn.unknown_weight(1 - torch.sigmoid(x), t == -1)
    assert int(((t == -1) & ~weight).sum()) == int(((t == -1) & (grad == 0)).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8, torch.int64, torch.bool])
def test_target_dtypes_give_the_same_loss(dtype: torch.dtype) -> None:
    x, t = _random_batch(20, 7, seed=11)
    if dtype == torch.bool:
        t = t.clamp(min=0)
    loss_fn = loss_from_name("csl", 7, prior=np.linspace(0.0, 0.9, 7))
    assert float(loss_fn(x, t.to(dtype))) == float(loss_fn(x, t))


@pytest.mark.parametrize("bad", [0.5, 2.0, -2.0, float("nan"), float("inf"), 1e-30, -1e-30])
@pytest.mark.parametrize("name", list_losses())
def test_every_loss_rejects_float_targets_outside_the_encoding(name: str, bad: float) -> None:
    t = torch.tensor([[1.0, 0.0, -1.0], [0.0, bad, 1.0]])
    with pytest.raises(ValueError, match=r"targets must hold only 1 \(positive\), 0 \(negative\) and -1"):
        loss_from_name(name, 3)(torch.zeros(2, 3), t)


@pytest.mark.parametrize("bad", [2, -2, 127])
def test_integer_targets_outside_the_encoding_are_rejected(bad: int) -> None:
    for dtype in (torch.int8, torch.int64):
        t = torch.tensor([[1, 0, -1], [0, bad, 1]], dtype=dtype)
        with pytest.raises(ValueError, match="targets must hold only"):
            ClassAwareSelectiveLoss()(torch.zeros(2, 3), t)


def test_scratch_buffers_are_reused_safely_across_shapes_and_copies() -> None:
    """One module over changing batch shapes (a full and a smaller last batch, several row blocks)
    gives the same numbers as a fresh module; copies and pickles start with empty buffers."""
    import copy
    import pickle

    loss_fn = loss_from_name("csl", 300, prior=np.linspace(0.0, 0.9, 300))
    shapes = [(1000, 300), (37, 300), (1000, 300), (5, 300), (1000, 300)]
    for i, (b, c) in enumerate(shapes):
        x, t = _random_batch(b, c, seed=i, dtype=torch.float32, annotated=0.1)
        fresh = loss_from_name("csl", 300, prior=np.linspace(0.0, 0.9, 300))
        v, g = loss_and_grad(loss_fn, x, t.float())
        v_fresh, g_fresh = loss_and_grad(fresh, x, t.float())
        assert v == v_fresh
        assert torch.equal(g, g_fresh)
    for clone in (copy.deepcopy(loss_fn), pickle.loads(pickle.dumps(loss_fn))):
        x, t = _random_batch(50, 300, seed=9)
        assert float(clone(x, t)) == float(loss_fn(x, t))


def test_backward_scales_with_grad_output_and_supports_retain_graph() -> None:
    x, t = _random_batch(8, 6, seed=2)
    loss_fn = ClassAwareSelectiveLoss(likelihood_topk=1)
    _, grad = loss_and_grad(loss_fn, x, t)
    xr = x.clone().requires_grad_(True)
    value = loss_fn(xr, t)
    (3.0 * value).backward(retain_graph=True)
    value.backward()
    assert xr.grad is not None
    np.testing.assert_allclose(xr.grad.numpy(), 4.0 * grad.numpy(), rtol=1e-12)
    with torch.no_grad():
        assert float(loss_fn(xr, t)) == pytest.approx(float(value.detach()), rel=1e-15)
    logits = x.t()  # non-contiguous logits and targets
    value_t, grad_t = loss_and_grad(loss_fn, logits, t.t())
    xr = logits.clone().requires_grad_(True)
    expected = _reference(loss_fn, xr, t.t())
    expected.backward()
    assert value_t == pytest.approx(float(expected.detach()), rel=1e-12)
    np.testing.assert_allclose(grad_t.numpy(), xr.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 4.5, 7.0, 16.5, 17.0])
@pytest.mark.parametrize("with_out", [False, True])
def test_power_matches_torch_pow(gamma: float, with_out: bool) -> None:
    """The multiplied-out integer and half-integer exponents equal ``torch.pow`` (q in [0, 1])."""
    from core.losses._bce import power

    base = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    out = torch.empty_like(base) if with_out else None
    got = power(base.clone(), gamma, out)
    torch.testing.assert_close(got, torch.pow(base, gamma), rtol=1e-12, atol=1e-15)
