"""Atomic writes: the old file or the whole new one, and never a temporary file left behind."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from common.atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text


class Boom(RuntimeError):
    pass


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bytes_and_text_round_trip(tmp_path: Path) -> None:
    data = bytes(range(256)) * 3
    assert atomic_write_bytes(tmp_path / "b.bin", data) == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == data
    text = "Ünïcode, 日本\nsecond line\n"
    atomic_write_text(tmp_path / "t.txt", text)
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == text
    assert _names(tmp_path) == ["b.bin", "t.txt"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert _names(tmp_path) == ["f.txt"]


def test_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(str(path), "x")
    assert path.read_text() == "x"
    with atomic_open(tmp_path / "d" / "e.csv", newline="", encoding="utf-8") as fh:
        fh.write("x\n")
    assert (tmp_path / "d" / "e.csv").read_text() == "x\n"


def test_failure_in_the_block_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("old content\n")
    with pytest.raises(Boom), atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["half", "written"])
        fh.flush()
        raise Boom("mid-write")
    assert path.read_text() == "old content\n"
    assert _names(tmp_path) == ["labels.csv"]


def test_failure_before_any_file_existed_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom), atomic_path(tmp_path / "out.parquet") as tmp:
        tmp.write_bytes(b"partial")
        raise Boom
    assert _names(tmp_path) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_open(tmp_path / "x.bin", "wb") as fh:
        fh.write(b"1")
        raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_the_destination_is_untouched_until_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".f.txt.") and tmp.name.endswith(".part")
        assert tmp.exists() and tmp.stat().st_size == 0
        tmp.write_text("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new"
    assert not tmp.exists()


def test_temp_names_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    with atomic_path(path) as a, atomic_path(path) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert path.read_text() == "a"  # the last one to finish wins
    assert _names(tmp_path) == ["f.txt"]


def test_failed_replace_leaves_no_temp(tmp_path: Path) -> None:
    folder_in_the_way = tmp_path / "taken"
    (folder_in_the_way / "child").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write_text(folder_in_the_way, "x")
    assert _names(tmp_path) == ["taken"]
    assert folder_in_the_way.is_dir()


def test_without_fsync_still_atomic(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "thumb.jpg", b"jpeg", fsync=False)
    assert (tmp_path / "thumb.jpg").read_bytes() == b"jpeg"
    assert _names(tmp_path) == ["thumb.jpg"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


@pytest.mark.parametrize("mode", ["r", "a", "x", "r+"])
def test_atomic_open_refuses_non_write_modes(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="write mode"), atomic_open(tmp_path / "f", mode):
        pass
    assert _names(tmp_path) == []
