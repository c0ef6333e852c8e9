"""Stages as values: their shares of the progress bar, the order they are reported in, their timings."""

from __future__ import annotations

import pytest

from app.pipeline.stages import Stage, StageTimer


def test_shares_cover_the_whole_bar() -> None:
    assert sum(stage.share for stage in Stage) == pytest.approx(1.0)
    assert all(0 < stage.share <= 1 for stage in Stage)
    assert Stage.values() == ("load", "features", "prior", "target", "evaluate", "suggest", "store")


def test_timer_reports_each_stage_before_its_progress_and_maps_it_onto_the_bar() -> None:
    events: list[tuple[str, object]] = []
    timer = StageTimer(
        lambda f, m: events.append(("progress", (f, m))), lambda s: events.append(("stage", s))
    )
    for stage in Stage:
        report = timer.start(stage)
        report(0.5, "half")
        report(7.0, "past the end")  # clamped to this stage's share
        timer.end()
    stages = [value for kind, value in events if kind == "stage"]
    assert stages == list(Stage)
    for i, (kind, value) in enumerate(events):
        if kind == "stage":  # the next event is the stage's first progress, at its start
            assert events[i + 1][0] == "progress" and events[i + 1][1][1] == f"{value}: starting"  # type: ignore[index]
    fractions = [value[0] for kind, value in events if kind == "progress"]  # type: ignore[index]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    first_half = next(value for kind, value in events if kind == "progress" and value[1] == "load: half")  # type: ignore[index]
    assert first_half[0] == pytest.approx(Stage.LOAD.share / 2)  # type: ignore[index]
    assert list(timer.timings) == list(Stage.values()) and all(t >= 0 for t in timer.timings.values())


def test_timer_without_callbacks_still_times_and_end_needs_a_start() -> None:
    timer = StageTimer(None)
    timer.start(Stage.LOAD, "reading")(1.0, "done")
    timer.end()
    assert set(timer.timings) == {"load"}
    with pytest.raises(RuntimeError, match="no stage started"):
        timer.end()
