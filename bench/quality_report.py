"""Summary, markdown report, plotly charts and ``results.json`` of the quality benchmark.

Input: one plain dict per seed (JSON-ready; written by ``bench.quality``)::

    {"seed": int, "seconds": float, "supervised_map": float,
     "protocols": {protocol: {"map": {loss: mAP}, "prior_mae": {estimator: mae},
                              "precision": {ranker: {K label: p}}, "ap": {ranker: ap},
                              "k_values": {K label: K}, "n_unknown": int, "n_hidden": int,
                              "seconds": float}},
     "oracle": {loss: {"accepted": [int per cycle], "reviewed": [int per cycle],
                       "test_map": [mAP before the first review, then after each cycle]}}}

Output keys of ``results.json`` (the issue's contract): ``map[protocol][loss] = {mean, std}``
(plus ``supervised``), ``prior_mae[protocol][estimator]``, ``precision_at_k[protocol][ranker][K]``
(``{mean, std}``), ``oracle[loss] = [true labels recovered per review, per cycle]`` (means over
seeds), and beside them ``map_diff_vs_csl``, ``suggestion_ap``, ``ours_over_cleanlab``,
``orderings``, ``oracle_std``, ``oracle_accepted``, ``oracle_map``, ``settings`` and ``per_seed``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.ranking import DEFAULT_RANKER

#: Published orderings (CSL.md "Published results"): (better, worse) pairs per protocol.
EXPECTED_ORDERINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "fpc": (("negative", "ignore"), ("csl", "negative"), ("csl", "ignore")),
    "rps-0.5": (("ignore", "negative"), ("csl", "ignore"), ("csl", "negative")),
    "rps-0.8": (("ignore", "negative"), ("csl", "ignore"), ("csl", "negative")),
    "openimages": (("negative", "ignore"), ("csl", "negative"), ("csl", "ignore")),
}

Stat = dict[str, float]


def stat(values: Sequence[float]) -> Stat:
    """``{"mean", "std", "n"}`` of finite ``values`` (sample std, 0 for one value; NaN when empty)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _ordering(per_seed: list[dict[str, Any]], protocol: str) -> dict[str, Any]:
    """Each expected (better, worse) pair: paired mean difference, its standard error, verdict."""
    checks = []
    for better, worse in EXPECTED_ORDERINGS.get(protocol, ()):
        diffs = [s["protocols"][protocol]["map"][better] - s["protocols"][protocol]["map"][worse]
                 for s in per_seed if better in s["protocols"][protocol]["map"]
                 and worse in s["protocols"][protocol]["map"]]  # fmt: skip
        if not diffs:
            continue
        d = stat(diffs)
        se = d["std"] / math.sqrt(d["n"]) if d["n"] > 1 else float("nan")
        holds = d["mean"] > 0
        clear = bool(math.isfinite(se) and abs(d["mean"]) > 2 * se)
        verdict = ("holds" if holds else "fails") + (" (clear)" if clear else " (within noise)")
        checks.append({"better": better, "worse": worse, "diff": d, "stderr": se, "holds": holds,
                       "verdict": verdict})  # fmt: skip
    return {"checks": checks, "all_hold": all(c["holds"] for c in checks)}


def summarize(
    per_seed: list[dict[str, Any]], settings: dict[str, Any], wall_seconds: float
) -> dict[str, Any]:
    """Aggregate per-seed numbers into the ``results.json`` structure (see the module docstring).

    Args:
        per_seed: one dict per seed, all with the same protocols, losses, rankers and oracle losses.
        settings: the benchmark settings (primitives), stored as given.
        wall_seconds: total wall time of the run, seconds.

    Returns:
        The results dict.
    """
    first = per_seed[0]
    protocols = list(first["protocols"])
    out: dict[str, Any] = {
        "settings": settings,
        "seeds": [s["seed"] for s in per_seed],
        "wall_seconds": wall_seconds,
        "map": {},
        "map_diff_vs_csl": {},
        "prior_mae": {},
        "precision_at_k": {},
        "suggestion_ap": {},
        "k_values": {},
        "unknown_cells": {},
        "hidden_positives": {},
        "ours_over_cleanlab": {},
        "orderings": {},
    }
    for p in protocols:
        rows = [s["protocols"][p] for s in per_seed]
        losses = list(rows[0]["map"])
        out["map"][p] = {loss: stat([r["map"][loss] for r in rows]) for loss in losses}
        out["map"][p]["supervised"] = stat([s["supervised_map"] for s in per_seed])
        if "csl" in losses:
            out["map_diff_vs_csl"][p] = {
                loss: stat([r["map"][loss] - r["map"]["csl"] for r in rows])
                for loss in losses
                if loss != "csl"
            }
            out["map_diff_vs_csl"][p]["supervised"] = stat(
                [s["supervised_map"] - r["map"]["csl"] for s, r in zip(per_seed, rows, strict=True)]
            )
        out["prior_mae"][p] = {e: stat([r["prior_mae"][e] for r in rows]) for e in rows[0]["prior_mae"]}
        rankers = list(rows[0]["precision"])
        ks = list(rows[0]["k_values"])
        out["precision_at_k"][p] = {
            rk: {k: stat([r["precision"][rk][k] for r in rows]) for k in ks} for rk in rankers
        }
        out["suggestion_ap"][p] = {rk: stat([r["ap"][rk] for r in rows]) for rk in rankers}
        out["k_values"][p] = {k: stat([r["k_values"][k] for r in rows])["mean"] for k in ks}
        out["unknown_cells"][p] = stat([r["n_unknown"] for r in rows])["mean"]
        out["hidden_positives"][p] = stat([r["n_hidden"] for r in rows])["mean"]
        if "ours" in rankers and "cleanlab" in rankers:
            prec = out["precision_at_k"][p]
            ratios = {k: _ratio(prec["ours"][k]["mean"], prec["cleanlab"][k]["mean"]) for k in ks}
            ratios["ap"] = _ratio(
                out["suggestion_ap"][p]["ours"]["mean"], out["suggestion_ap"][p]["cleanlab"]["mean"]
            )
            out["ours_over_cleanlab"][p] = ratios
        out["orderings"][p] = _ordering(per_seed, p)
    oracle_losses = list(first.get("oracle", {}))
    out["oracle"] = {}
    out["oracle_std"] = {}
    out["oracle_accepted"] = {}
    out["oracle_map"] = {}
    for loss in oracle_losses:
        runs = [s["oracle"][loss] for s in per_seed]
        n_cycles = len(runs[0]["reviewed"])
        per_cycle = [
            stat([r["accepted"][c] / r["reviewed"][c] if r["reviewed"][c] else float("nan") for r in runs])
            for c in range(n_cycles)
        ]
        out["oracle"][loss] = [c["mean"] for c in per_cycle]
        out["oracle_std"][loss] = [c["std"] for c in per_cycle]
        out["oracle_accepted"][loss] = [
            stat([r["accepted"][c] for r in runs])["mean"] for c in range(n_cycles)
        ]
        out["oracle_map"][loss] = [stat([r["test_map"][c] for r in runs]) for c in range(n_cycles + 1)]
    out["per_seed"] = per_seed
    return out


# ---------------------------------------------------------------------------------------------- markdown


def _pm(s: Stat, digits: int) -> str:
    if not math.isfinite(s["mean"]):
        return "—"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _signed(s: Stat, digits: int) -> str:
    if not math.isfinite(s["mean"]):
        return "—"
    return f"{s['mean']:+.{digits}f} ± {s['std']:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _scored(head: dict[str, Any]) -> str:
    k = int(head.get("score_folds", 1))
    return "scored in-sample (cycle --folds 1)" if k <= 1 else f"{k}-fold cross-fitted (cycle --folds {k})"


def _solver(head: dict[str, Any]) -> str:
    """How the heads were optimised, as ``core.train.HeadConfig`` resolves its default solver."""
    adam = f"{head['epochs']} epochs, batch {head['batch_size']}, lr {head['lr']}"
    if int(head.get("hidden", 0)) > 0:
        return f"mini-batch Adam, {adam}"
    return f"full-batch L-BFGS on the L2-regularised loss while N·D·C ≤ 1e9, else mini-batch Adam ({adam})"


def markdown_tables(results: dict[str, Any]) -> str:
    """The report's tables (mAP, paired differences, orderings, priors, suggestions, review loop)."""
    protocols = list(results["map"])
    lines: list[str] = []
    n = len(results["seeds"])
    lines += [f"### Test mAP (fully labelled test split; mean ± std over {n} seed(s))", ""]
    losses = list(results["map"][protocols[0]])
    lines += _table(["loss", *protocols], [[loss, *(_pm(results["map"][p][loss], 2) for p in protocols)]
                                           for loss in losses])  # fmt: skip
    if results["map_diff_vs_csl"]:
        lines += ["", "### Paired difference vs csl (loss − csl, same data and masks; mean ± std)", ""]
        others = list(results["map_diff_vs_csl"][protocols[0]])
        lines += _table(["loss", *protocols], [[loss, *(_signed(results["map_diff_vs_csl"][p][loss], 2)
                                                        for p in protocols)] for loss in others])  # fmt: skip
    lines += ["", "### Published orderings (CSL.md) vs ours", ""]
    rows = []
    for p in protocols:
        for c in results["orderings"][p]["checks"]:
            rows.append([p, f"{c['better']} > {c['worse']}", _signed(c["diff"], 2), c["verdict"]])
    lines += _table(["protocol", "expected", "paired difference", "verdict"], rows)
    lines += ["", "### Class-prior error (mean absolute error vs the true training prevalence)", ""]
    estimators = list(results["prior_mae"][protocols[0]])
    lines += _table(["estimator", *protocols], [[e, *(_pm(results["prior_mae"][p][e], 3) for p in protocols)]
                                                for e in estimators])  # fmt: skip
    for p in protocols:
        ks = results["k_values"][p]
        lines += ["", f"### Missing-label suggestions, {p} ({results['unknown_cells'][p]:,.0f} unknown cells, "
                      f"{results['hidden_positives'][p]:,.0f} hidden positives)", ""]  # fmt: skip
        header = ["ranker", *(f"P@{k} (K={ks[k]:,.0f})" for k in ks), "AP"]
        rows = [[rk, *(_pm(results["precision_at_k"][p][rk][k], 3) for k in ks), _pm(results["suggestion_ap"][p][rk], 3)]
                for rk in results["precision_at_k"][p]]  # fmt: skip
        if p in results["ours_over_cleanlab"]:
            ratio = results["ours_over_cleanlab"][p]
            rows.append(["**ours / cleanlab**", *(f"{ratio[k]:.2f}×" for k in ks), f"{ratio['ap']:.2f}×"])
        lines += _table(header, rows)
    if results["oracle"]:
        cycles = len(next(iter(results["oracle"].values())))
        lines += ["", "### Simulated review loop (true labels recovered per review; test mAP)", ""]
        header = ["loss", *(f"cycle {c + 1} recovered/review" for c in range(cycles)),
                  "mAP before", *(f"mAP after {c + 1}" for c in range(cycles))]  # fmt: skip
        rows = []
        for loss in results["oracle"]:
            rec = [
                f"{m:.3f} ± {s:.3f}"
                for m, s in zip(results["oracle"][loss], results["oracle_std"][loss], strict=True)
            ]
            rows.append([loss, *rec, *(_pm(m, 2) for m in results["oracle_map"][loss])])
        lines += _table(header, rows)
    return "\n".join(lines) + "\n"


def markdown_report(results: dict[str, Any]) -> str:
    """The whole markdown report: what was run, then :func:`markdown_tables`."""
    s = results["settings"]
    head = [
        "# labelmend quality benchmark",
        "",
        f"Command: `{s.get('command', 'labelmend bench quality')}` — wall time {results['wall_seconds']:.0f} s"
        f", seeds {', '.join(str(x) for x in results['seeds'])}.",
        "",
        f"Generated data: {s['n_images']:,} images per seed ({s['n_train']:,} train, {s['n_test']:,} fully "
        f"labelled test), {s['num_classes']} classes, rendered at {s['image_size']} px. Frozen backbone "
        f"`{s['backbone']}` ({s['pretrained']} weights) at {s['embed_size']} px, pooled embeddings cached once "
        f"per seed; every method trains a linear head on them with the same masks ({_solver(s['head'])}). "
        f"Protocols: FPC(N="
        f"{s['fpc_per_class']}), RPS(0.5), RPS(0.8), OpenImages-like (2 verified positives and 4 verified "
        "negatives per image, negatives favouring common and look-alike classes).",
        "",
        f"Rankers: `ours` = what the app ships: its default ranker (`{s.get('ranker', DEFAULT_RANKER.value)}`) on "
        f"the csl model's probabilities, {_scored(s['head'])}; `csl-shift` = the `prior_shift` ranker on the same "
        "probabilities with the estimated prior; `csl-shift-true` = the same with the true prevalence (a diagnostic, "
        "not available to users); `ignore-shift` = `prior_shift` on the ignore model; `ignore-p` / `negative-p` = raw p "
        "of the ignore / negative models trained on all training images; `cleanlab` = "
        "`get_label_quality_scores_per_class` (self_confidence) on out-of-fold probabilities of a "
        "negative-mode model, unknown passed as negative; `random`. Only unknown cells are ranked.",
        "",
        f"Review loop: OpenImages-like labels, {s['oracle_cycles']} cycles × R = {s['oracle_review']} "
        "suggestions decided by an oracle through `db.review.claim_next` / `decide` on a SQLite store; the "
        "arms differ only in the target model's loss (prior, ranker and audit share of random cells in "
        "the queue as in the app).",
        "",
    ]
    return "\n".join(head) + "\n" + markdown_tables(results)


# ---------------------------------------------------------------------------------------------- charts


def _bars(title: str, groups: list[str], series: dict[str, list[Stat]], y_title: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in series.items():
        fig.add_trace(go.Bar(name=name, x=groups, y=[v["mean"] for v in values],
                             error_y={"type": "data", "array": [v["std"] for v in values]}))  # fmt: skip
    fig.update_layout(title=title, barmode="group", yaxis_title=y_title, template="plotly_white")
    return fig


def write_charts(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Plotly HTML charts (plotly.min.js written once beside them, so they open offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    protocols = list(results["map"])
    paths = []
    losses = list(results["map"][protocols[0]])
    figs = {
        "map.html": _bars("Test mAP by loss", protocols,
                          {loss: [results["map"][p][loss] for p in protocols] for loss in losses}, "mAP"),
        "prior_mae.html": _bars("Class-prior mean absolute error", protocols,
                                {e: [results["prior_mae"][p][e] for p in protocols]
                                 for e in results["prior_mae"][protocols[0]]}, "MAE"),
    }  # fmt: skip
    ks = list(results["k_values"][protocols[0]])
    rankers = list(results["precision_at_k"][protocols[0]])
    sugg = make_subplots(rows=1, cols=len(ks) + 1, subplot_titles=[*(f"P@{k}" for k in ks), "AP"])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, rk in enumerate(rankers):
        columns = [[results["precision_at_k"][p][rk][k] for p in protocols] for k in ks]
        columns.append([results["suggestion_ap"][p][rk] for p in protocols])
        for col, values in enumerate(columns, start=1):
            sugg.add_trace(go.Bar(name=rk, x=protocols, y=[v["mean"] for v in values], legendgroup=rk,
                                  showlegend=col == 1, marker_color=palette[i % len(palette)],
                                  error_y={"type": "data", "array": [v["std"] for v in values]}),
                           row=1, col=col)  # fmt: skip
    sugg.update_layout(title="Missing-label suggestions", barmode="group", template="plotly_white")
    figs["suggestions.html"] = sugg
    if results["oracle"]:
        oracle = make_subplots(
            rows=1, cols=2, subplot_titles=["True labels recovered per review", "Test mAP"]
        )
        for i, loss in enumerate(results["oracle"]):
            color = palette[i % len(palette)]
            cyc = list(range(1, len(results["oracle"][loss]) + 1))
            oracle.add_trace(go.Scatter(x=cyc, y=results["oracle"][loss], name=loss, legendgroup=loss,
                                        line={"color": color},
                                        error_y={"type": "data", "array": results["oracle_std"][loss]}),
                             row=1, col=1)  # fmt: skip
            maps = results["oracle_map"][loss]
            oracle.add_trace(go.Scatter(x=list(range(len(maps))), y=[m["mean"] for m in maps], name=loss,
                                        legendgroup=loss, showlegend=False, line={"color": color},
                                        error_y={"type": "data", "array": [m["std"] for m in maps]}),
                             row=1, col=2)  # fmt: skip
        oracle.update_xaxes(title_text="cycle", row=1, col=1)
        oracle.update_xaxes(title_text="reviews done (cycles)", row=1, col=2)
        oracle.update_layout(title="Simulated review loop", template="plotly_white")
        figs["oracle.html"] = oracle
    for name, fig in figs.items():
        path = out_dir / name
        fig.write_html(path, include_plotlyjs="directory", full_html=True)
        paths.append(path)
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to results.json")


def _finite(value: Any) -> Any:
    """NaN/inf → None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_report(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and the HTML charts into ``out_dir`` (created).

    Returns:
        Name → path of every file written (``results``, ``report`` and each chart's file name).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"results": out_dir / "results.json", "report": out_dir / "report.md"}
    written["results"].write_text(
        json.dumps(_finite(results), indent=1, default=_json_default, allow_nan=False) + "\n"
    )
    written["report"].write_text(markdown_report(results))
    for path in write_charts(results, out_dir):
        written[path.name] = path
    return written


__all__ = ["EXPECTED_ORDERINGS", "markdown_report", "markdown_tables", "stat", "summarize", "write_report"]
