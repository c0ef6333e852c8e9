"""The import benchmark on PostgreSQL: ours and a plain COPY load the same labels (small sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import bench_app
from bench.import_bench import (
    _label_fingerprint,
    fresh_pg,
    generate_openimages,
    raw_copy_import,
    run_import_bench,
)
from tests.conftest import BACKENDS

pg_only = pytest.mark.parametrize("db_url", [BACKENDS[1]], indirect=True)  # marked pg, skipped without it


@pg_only
def test_raw_copy_import_loads_every_row(db_url: str, tmp_path: Path) -> None:
    labels, classes = generate_openimages(tmp_path, rows=4_000, classes=40, images=500, seed=1)
    fresh_pg(db_url)
    timing = raw_copy_import(db_url, classes, labels, batch=1_000)
    assert timing.wall_s > 0
    n, positives, images = _label_fingerprint(db_url)
    text = labels.read_text(encoding="utf-8").splitlines()[1:]
    assert (n, images) == (4_000, 500)
    assert positives == sum(line.endswith(",1") for line in text)


@pg_only
def test_run_import_bench_on_postgres(db_url: str, tmp_path: Path) -> None:
    r = run_import_bench(tmp_path, rows=3_000, classes=30, images=300, db_url=db_url)
    assert r.backend == "postgresql" and r.raw_tuned is None
    assert r.report.labels_added == 3_000
    assert r.ratio == pytest.approx(r.ours.wall_s / r.raw.wall_s)


@pg_only
def test_bench_import_command_on_postgres(db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        bench_app, ["import", "--rows", "2000", "--classes", "20", "--images", "200", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "postgresql: rows 2,000, classes 20, images 200  (seconds: wall, client cpu)"
    assert lines[2].startswith("raw COPY ")
    assert "(goal <= 1.3)" in result.output


def test_fresh_pg_refuses_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        fresh_pg(f"sqlite:///{tmp_path / 'x.db'}")
