"""`labelmend bench …`: benchmarks and studies. Speed is measured here, not asserted in tests.

``bench_app`` is the sub-app other benchmark commands join (``@bench_app.command("cycle")``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from bench.import_bench import run_import_bench

bench_app = typer.Typer(
    help="Benchmarks: import speed, cycle speed, review latency, fine-tune speed, quality and folds.",
    no_args_is_help=True,
)


@bench_app.command("import")
def bench_import(
    rows: Annotated[int, typer.Option(min=1, help="Label rows to generate.")] = 1_000_000,
    classes: Annotated[int, typer.Option(min=1, help="Classes.")] = 600,
    images: Annotated[int, typer.Option(min=1, help="Images (rows are spread evenly over them).")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed of the generated file.")] = 0,
    workdir: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Keep files and databases here (default: a temp folder)."),
    ] = None,
    tuned_raw: Annotated[
        bool, typer.Option(help="Also time raw sqlite3 with the same 256 MiB page cache our import uses.")
    ] = True,
    db: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL database made for this, e.g. postgresql+psycopg://user@host/bench: its public "
            "schema is DROPPED and migrated afresh before each side; raw is then a plain COPY."
        ),
    ] = None,
) -> None:
    """Import a generated OpenImages file with labelmend and with the plain driver; print both and the ratio."""
    folder = workdir or Path(tempfile.mkdtemp(prefix="labelmend-bench-"))
    try:
        r = run_import_bench(
            folder, rows=rows, classes=classes, images=images, seed=seed, tuned_raw=tuned_raw and db is None,
            db_url=db,
        )  # fmt: skip
    except ValueError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)
    pg = r.backend == "postgresql"
    sizes = f"rows {r.rows:,}, classes {r.classes:,}, images {r.images:,}"
    typer.echo(
        f"postgresql: {sizes}  (seconds: wall, client cpu)" if pg else f"{sizes}  (seconds: wall, cpu)"
    )
    typer.echo(
        f"labelmend import      {r.ours.wall_s:8.3f} {r.ours.cpu_s:8.3f}  "
        f"({r.report.labels_added:,} labels and as many audit events)"
    )
    raw_what = (
        "(csv module, dicts, COPY of classes, images, labels; no validation, no events)"
        if pg
        else "(csv module, dicts, executemany; no validation, no events)"
    )
    typer.echo(
        f"{'raw COPY' if pg else 'raw sqlite3':<21} {r.raw.wall_s:8.3f} {r.raw.cpu_s:8.3f}  {raw_what}"
    )
    if r.raw_tuned is not None:
        typer.echo(
            f"raw sqlite3, 256 MiB  {r.raw_tuned.wall_s:8.3f} {r.raw_tuned.cpu_s:8.3f}  (the page cache labelmend uses)"
        )
    typer.echo(f"ratio ours/raw        {r.ratio:8.2f} {r.ratio_cpu:8.2f}  (goal <= {1.3 if pg else 1.5})")
    if r.raw_tuned is not None and r.ratio_tuned is not None:
        typer.echo(
            f"ratio ours/raw tuned  {r.ratio_tuned:8.2f} {r.ours.cpu_s / max(r.raw_tuned.cpu_s, 1e-9):8.2f}"
        )


@bench_app.command("cycle")
def bench_cycle(
    images: Annotated[int, typer.Option(min=100, help="Images.")] = 100_000,
    classes: Annotated[int, typer.Option(min=2, help="Classes.")] = 600,
    annotated: Annotated[int, typer.Option(min=1, help="Annotated cells per image.")] = 10,
    top: Annotated[int, typer.Option(min=0, help="Suggestions to store.")] = 100_000,
    epochs: Annotated[int, typer.Option(min=1, help="Head epochs of each model.")] = 4,
    seed: int = 0,
    workdir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Keep the store and cache here (default: temp).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="An empty database to use instead of SQLite, e.g. postgresql+psycopg://user@host/db."
        ),
    ] = None,
) -> None:
    """A whole head-mode cycle on generated 512-d embeddings; prints the time of each stage."""
    from bench.cycle_bench import CycleBenchConfig, run_cycle_bench

    cfg = CycleBenchConfig(
        n_images=images, n_classes=classes, annotated_per_image=annotated, top_suggestions=top,
        epochs=epochs, seed=seed,
    )  # fmt: skip
    folder = workdir or Path(tempfile.mkdtemp(prefix="labelmend-bench-cycle-"))
    try:
        run_cycle_bench(cfg, workdir=folder, db_url=db, echo=typer.echo)
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


#: The benchmarks' weights options; unset = the cycle's defaults (tf_efficientnet_lite0, packaged, 224 px).
_BackboneOption = Annotated[
    str | None,
    typer.Option(help="timm name of the frozen backbone (default: the cycle's, tf_efficientnet_lite0)."),
]
_PretrainedOption = Annotated[
    str | None,
    typer.Option(help="Its weights: packaged (ImageNet, offline; the default), hub or none."),
]
_EmbedSizeOption = Annotated[
    int | None,
    typer.Option(min=16, help="px the 64 px rendered images are resized to for the backbone (default 224)."),
]


def _weights(backbone: str | None, pretrained: str | None, embed_size: int | None) -> dict[str, object]:
    given = {"backbone": backbone, "pretrained": pretrained, "embed_size": embed_size}
    return {k: v for k, v in given.items() if v is not None}


@bench_app.command("scale")
def bench_scale(
    images: Annotated[int, typer.Option(min=20, help="Images N.")] = 2_000_000,
    classes: Annotated[int, typer.Option(min=2, help="Classes C (OpenImages V6: 9,605 trainable).")] = 9_605,
    labels_per_image: Annotated[int, typer.Option(min=1, help="Verified labels per image L.")] = 8,
    db: Annotated[
        str | None,
        typer.Option(
            help="An EMPTY database made for the benchmark (its schema is dropped), "
            "e.g. postgresql+psycopg://user@host/db; default: SQLite in --out."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Files, store, cache and results.json.")] = Path(
        "labelmend-bench-scale"
    ),
    dim: Annotated[int, typer.Option(min=1, help="Embedding size D (resnet18: 512).")] = 512,
    epochs: Annotated[int, typer.Option(min=1, help="Head epochs of the prior and target models.")] = 1,
    top: Annotated[int, typer.Option(min=0, help="Suggestions the cycle stores.")] = 100_000,
    pending: Annotated[
        int, typer.Option(min=0, help="Pending suggestions when the review queue is timed (0: not timed).")
    ] = 10_000_000,
    raw_baseline: Annotated[bool, typer.Option(help="Also time the plainest load of the same rows.")] = True,
    seed: int = 0,
) -> None:
    """OpenImages scale end to end: generate, import, one head-mode cycle, review queue; writes results.json."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.scale import ScaleConfig, run_scale

    cfg = ScaleConfig(images=images, classes=classes, labels_per_image=labels_per_image, dim=dim, epochs=epochs,
                      top_suggestions=top, pending=pending, raw_baseline=raw_baseline, seed=seed)  # fmt: skip
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("scale", total=1.0)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, description=message[:70])

        run_scale(cfg, out, db_url=db, echo=bar.console.print, progress=progress)


@bench_app.command("quality")
def bench_quality(
    quick: Annotated[
        bool, typer.Option("--quick", help="600 images, 2 seeds, R = 100: a few minutes on a laptop CPU.")
    ] = False,
    seeds: Annotated[
        int | None,
        typer.Option(min=1, help="Seeds (paired datasets and masks); default 5, or 2 with --quick."),
    ] = None,
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Folder for report.md, results.json and the HTML charts.")
    ] = Path("bench-output/quality"),
    backbone: _BackboneOption = None,
    pretrained: _PretrainedOption = None,
    embed_size: _EmbedSizeOption = None,
    first_seed: Annotated[
        int | None,
        typer.Option(
            min=0, help="Dataset seed of the first seed (default 1000): fresh seeds check a tuned default."
        ),
    ] = None,
) -> None:
    """Measure CSL, the class priors and the missing-label suggestions on generated data with known truth."""
    from bench.quality import quality_command  # imports torch: only when this command runs

    try:
        quality_command(quick=quick, seeds=seeds, out=out, weights=_weights(backbone, pretrained, embed_size),
                        first_seed=first_seed)  # fmt: skip
    except ValueError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None


@bench_app.command("folds")
def bench_folds(
    quick: Annotated[
        bool, typer.Option("--quick", help="600 images, 1 seed, 2 protocols, K ∈ {1, 2}: a smoke run.")
    ] = False,
    seeds: Annotated[int | None, typer.Option(min=1, help="Paired seeds; default 3.")] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for report.md and folds.json.")] = Path(
        "bench-output/folds"
    ),
    backbone: _BackboneOption = None,
    pretrained: _PretrainedOption = None,
    embed_size: _EmbedSizeOption = None,
) -> None:
    """Does cross-fitted scoring (cycle --folds K) give better suggestions? Real cycles, known truth."""
    import dataclasses

    from rich.console import Console
    from rich.markdown import Markdown

    from bench.folds_study import FoldsSettings, markdown_report, run_folds_study

    settings = FoldsSettings.quick() if quick else FoldsSettings()
    overrides = {
        **({"seeds": seeds} if seeds is not None else {}),
        **_weights(backbone, pretrained, embed_size),
    }
    try:
        settings = dataclasses.replace(settings, **overrides)
    except ValueError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None
    console = Console()
    with console.status("running cycles …") as status:
        results = run_folds_study(settings, out_dir=out, step=lambda m: status.update(m))
    console.print(Markdown(markdown_report(results)))
    console.print(f"wall time {results['wall_seconds']:.0f} s; report and folds.json in {out}")


@bench_app.command("review")
def bench_review(
    suggestions: Annotated[int, typer.Option(min=1, help="Pending suggestions in the store.")] = 1_000_000,
    images: Annotated[int, typer.Option(min=1, help="Images in the store.")] = 100_000,
    classes: Annotated[int, typer.Option(min=1, help="Classes in the store.")] = 600,
    presses: Annotated[int, typer.Option("-n", "--presses", min=1, help="Key presses to time.")] = 20,
    db: Annotated[
        str | None, typer.Option(help="Database URL to seed (default: a SQLite file in the work folder).")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Keep the seeded store here and reuse it next time.")
    ] = None,
) -> None:
    """Key press → next suggestion shown, and each page's load time, in Chromium on a big store."""
    from bench.review_latency import main  # imports Playwright: only when this command runs

    argv = ["--suggestions", str(suggestions), "--images", str(images), "--classes", str(classes)]
    argv += [
        "-n",
        str(presses),
        *(["--db", db] if db else []),
        *(["--workdir", str(workdir)] if workdir else []),
    ]
    main(argv)


@bench_app.command("queue")
def bench_queue(
    pending: Annotated[int, typer.Option(min=1, help="Pending suggestions in the queue.")] = 10_000_000,
    classes: Annotated[int, typer.Option(min=1, help="Classes of the seeded dataset.")] = 600,
    images: Annotated[
        int | None, typer.Option(min=1, help="Images (default: max(100,000, pending / classes)).")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Timed next-suggestion calls.")] = 200,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in the work folder)."
        ),
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Keep the SQLite store here and reuse it next time.")
    ] = None,
) -> None:
    """Review queue at scale: p50/p95 of the Review page's next-suggestion call, and its query plan."""
    from bench.queue_latency import measure_next_latency, prepare_queue
    from db.engine import make_engine, make_sessionmaker
    from db.migrate import upgrade

    folder = workdir or Path(tempfile.mkdtemp(prefix="labelmend-bench-queue-"))
    engine = make_engine(db or f"sqlite:///{folder / 'queue.db'}")
    try:
        upgrade(engine)
        sm = make_sessionmaker(engine)
        dataset_id = prepare_queue(sm, pending=pending, classes=classes, images=images, echo=typer.echo)
        r = measure_next_latency(sm, dataset_id, samples=samples)
    finally:
        engine.dispose()
        if workdir is None and db is None:
            shutil.rmtree(folder, ignore_errors=True)
    typer.echo(f"{r.backend}: {r.pending:,} pending, {r.next.n} timed calls (ms: p50, p95, max)")
    typer.echo(
        f"next (claim_next + view + commit) {r.next.p50_ms:7.2f} {r.next.p95_ms:7.2f} {r.next.max_ms:7.2f}"
    )
    typer.echo(
        f"decide (accept/reject/skip)       {r.decide.p50_ms:7.2f} {r.decide.p95_ms:7.2f} {r.decide.max_ms:7.2f}"
    )
    verdict = "an index lookup" if r.uses_index else "NOT an index lookup (scan or sort)"
    typer.echo(f"queue SELECT plan ({verdict}; indexes: {', '.join(r.indexes) or 'none'}):")
    for line in r.plan.splitlines():
        typer.echo(f"  {line}")


@bench_app.command("finetune")
def bench_finetune(
    backbone: Annotated[str, typer.Option(help="timm model name.")] = "resnet50",
    image_size: Annotated[int, typer.Option(min=16, help="Square input size in px.")] = 224,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per step.")] = 128,
    classes: Annotated[int, typer.Option(min=1, help="Logits of the head.")] = 600,
    steps: Annotated[int, typer.Option(min=1, help="Timed steps per variant.")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps first (compilation happens here).")] = 5,
    device: Annotated[str, typer.Option(help="auto, cuda, cuda:N, mps or cpu.")] = "auto",
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="bf16 autocast; default: on for CUDA only.")
    ] = None,
    compile_model: Annotated[
        bool, typer.Option("--compile/--no-compile", help="Also time the model under torch.compile.")
    ] = True,
) -> None:
    """Fine-tuning images/s of a backbone (bf16, channels-last on CUDA), eager and torch.compile."""
    from rich.console import Console
    from rich.table import Table

    from bench.finetune_speed import describe_device, measure  # imports torch

    console = Console()
    console.print(
        f"{backbone} at {image_size} px, batch {batch_size}, {classes} classes on {describe_device(device)}"
    )
    table = Table("variant", "images/s", "ms/step", "warm-up s", "peak GiB")
    for compiled in (False, True) if compile_model else (False,):
        with console.status(f"timing {'compile' if compiled else 'eager'} …"):
            r = measure(backbone=backbone, image_size=image_size, batch_size=batch_size, num_classes=classes,
                        steps=steps, warmup=warmup, device=device, amp=amp, compile_model=compiled)  # fmt: skip
        table.add_row(r.variant, f"{r.images_per_s:,.1f}", f"{r.step_ms:,.1f}", f"{r.warmup_s:.1f}",
                      f"{r.peak_memory_gib:.2f}")  # fmt: skip
    console.print(table)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@bench_app.command("core-study", context_settings=_PASS_THROUGH)
def bench_core_study(ctx: typer.Context) -> None:
    """Priors and rankers on generated arrays (pass --help for its options)."""
    from bench.core_study import main

    main(ctx.args)


@bench_app.command("review-study", context_settings=_PASS_THROUGH)
def bench_review_study(ctx: typer.Context) -> None:
    """Which reviewed labels move test mAP (pass --help for its options)."""
    from bench.review_study import main

    main(ctx.args)


@bench_app.command("csl-gamma", context_settings=_PASS_THROUGH)
def bench_csl_gamma(ctx: typer.Context) -> None:
    """CSL's gamma_unann on the quality benchmark's data (pass --help for its options)."""
    from bench.csl_gamma import main

    main(ctx.args)


@bench_app.command("loss-speed", context_settings=_PASS_THROUGH)
def bench_loss_speed(ctx: typer.Context) -> None:
    """Loss forward + backward speed per preset on the CPU (pass --help for its options)."""
    from bench.loss_speed import main

    main(ctx.args)


def register(app: typer.Typer) -> None:
    """Join ``labelmend bench`` (the ``labelmend.commands`` entry point)."""
    app.add_typer(bench_app, name="bench")
