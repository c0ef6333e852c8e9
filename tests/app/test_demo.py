"""`labelmend demo` preparation: generated files imported through the real importer, a cycle queued once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.demo import prepare_demo
from app.store import open_store
from db import jobs
from db.datasets import get_dataset
from db.models import Image, LabelEvent
from db.stats import class_counts


def test_prepare_demo_imports_and_queues_once(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(db_url)
    info = prepare_demo(store, n_images=60, image_size=32)
    assert info.created and info.job_id is not None
    assert (info.folder / "truth.csv").is_file() and (info.folder / "labels.csv").is_file()
    with store.read() as s:
        ds = get_dataset(s, "demo")
        counts = class_counts(s, ds.id)
        assert len(counts) == 24
        assert s.scalar(select(func.count()).select_from(Image)) == 60
        n_events = s.scalar(select(func.count()).select_from(LabelEvent))
        assert n_events == sum(c.positive + c.negative for c in counts) > 0
        splits = set(s.scalars(select(Image.split)))
        assert splits == {"train", "val", "test"}
        job = jobs.get_job(s, info.job_id)
        assert job.kind == "cycle" and job.payload["pretrained"] == "packaged"
    again = prepare_demo(store, n_images=60, image_size=32)
    assert not again.created and again.job_id is None
