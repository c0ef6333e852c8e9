"""OpenImages import: real formats, the real class file, re-imports, and every bad-file case.

Each test runs on SQLite and PostgreSQL (``db_url`` fixture). A failed import must leave the
store exactly as it was: the same number of labels, events, images and classes.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import LabelFileError
from db.io import ImportReport, import_openimages
from db.models import Dataset, Image, Label, LabelClass, LabelEvent

# The real OpenImages V6 class list (19,994 MIDs, quoted names with commas, duplicated display
# names), kept in the repository so a clean clone tests against it.
REAL_CLASSES = Path(
    os.environ.get(
        "LABELMEND_OIDV6_CLASSES",
        Path(__file__).resolve().parents[1] / "data" / "oidv6-class-descriptions.csv",
    )
)
HEADER = "ImageID,Source,LabelName,Confidence\n"
CLASSES = 'LabelName,DisplayName\n/m/c0,Cat\n/m/c1,Dog\n/m/c2,"Hat, top"\n'


def counts(s: Session) -> tuple[int, ...]:
    """(labels, events, images, classes, datasets) — what a failed import must not change."""
    return tuple(
        int(s.scalar(select(func.count()).select_from(m)) or 0)
        for m in (Label, LabelEvent, Image, LabelClass, Dataset)
    )


def cells(s: Session, dataset: str) -> set[tuple[str, str, int]]:
    """Every label of ``dataset`` as (image external id, class key, value)."""
    rows = s.execute(
        select(Image.external_id, LabelClass.key, Label.value)
        .join(Label, Label.image_id == Image.id)
        .join(LabelClass, LabelClass.id == Label.class_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Dataset.name == dataset)
    )
    return {(a, b, int(c)) for a, b, c in rows}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def make_images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        fmt = {".png": "PNG", ".webp": "WEBP"}.get(Path(name).suffix.lower(), "JPEG")
        PILImage.new("RGB", (20 + i, 10 + i), (i * 40 % 255, 90, 30)).save(folder / name, fmt)
    return folder


def run(sm: sessionmaker[Session], **kwargs: Any) -> ImportReport:
    with sm.begin() as s:
        return import_openimages(s, **kwargs)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    images = make_images(tmp_path / "img", ["a.jpg", "b.png", "c.webp", "d.jpeg"])
    labels = write(
        tmp_path / "labels.csv",
        HEADER
        + "a,verification,/m/c0,1\na,verification,/m/c1,0\nb,crowdsource,/m/c2,1.0\nc,verification,/m/c0,0.0\n",
    )
    return {"images": images, "labels": labels, "classes": write(tmp_path / "classes.csv", CLASSES)}


def test_import_registers_every_image_and_logs_every_label(
    sm: sessionmaker[Session], files: dict[str, Path]
) -> None:
    report = run(
        sm,
        labels=files["labels"],
        classes=files["classes"],
        images=files["images"],
        dataset="oi",
        author="ann",
    )
    assert (report.rows_read, report.labels_added, report.labels_changed, report.labels_unchanged) == (
        4,
        4,
        0,
        0,
    )
    assert (report.images_registered, report.classes_added) == (4, 3)
    with sm() as s:
        assert cells(s, "oi") == {("a", "/m/c0", 1), ("a", "/m/c1", 0), ("b", "/m/c2", 1), ("c", "/m/c0", 0)}
        imgs = {i.external_id: i for i in s.scalars(select(Image))}
        assert sorted(imgs) == ["a", "b", "c", "d"]  # d has no label row: registered, all unknown
        assert (imgs["b"].path, imgs["b"].width, imgs["b"].height, imgs["b"].split) == (
            "b.png",
            21,
            11,
            "train",
        )
        assert (imgs["d"].path, imgs["d"].width) == ("d.jpeg", 23)
        ds = s.scalar(select(Dataset).where(Dataset.name == "oi"))
        assert ds is not None and ds.image_root == str(files["images"].resolve())
        names = [c.display_name for c in s.scalars(select(LabelClass).order_by(LabelClass.position))]
        assert names == ["Cat", "Dog", "Hat, top"]
        events = list(s.scalars(select(LabelEvent)))
        assert len(events) == 4
        assert {(e.before, e.author, e.source, e.reason) for e in events} == {
            (None, "ann", "import", "import labels.csv")
        }
        assert sorted(e.after for e in events) == [0, 0, 1, 1]
        labels = list(s.scalars(select(Label)))
        assert {(lb.source, lb.author, lb.version) for lb in labels} == {("import", "ann", 1)}


def test_reimport_changes_nothing_and_a_changed_file_updates_with_versions(
    sm: sessionmaker[Session], files: dict[str, Path], tmp_path: Path
) -> None:
    kw = {"classes": files["classes"], "images": files["images"], "dataset": "oi"}
    run(sm, labels=files["labels"], **kw)
    with sm() as s:
        before = counts(s)
    again = run(sm, labels=files["labels"], **kw)
    assert (again.labels_added, again.labels_changed, again.labels_unchanged, again.images_registered) == (
        0,
        0,
        4,
        0,
    )
    with sm() as s:
        assert counts(s) == before
    changed = write(
        tmp_path / "labels2.csv",
        HEADER + "a,v,/m/c0,0\na,v,/m/c1,0\nd,v,/m/c1,1\nd,v,/m/c1,1\n",  # a/c0 flips, d/c1 new (twice)
    )
    report = run(sm, labels=changed, author="bob", **kw)
    assert (report.labels_added, report.labels_changed, report.labels_unchanged, report.duplicate_rows) == (
        1,
        1,
        1,
        1,
    )
    with sm() as s:
        assert ("a", "/m/c0", 0) in cells(s, "oi") and ("d", "/m/c1", 1) in cells(s, "oi")
        flipped = s.execute(
            select(Label.version, Label.author)
            .join(Image, Image.id == Label.image_id)
            .join(LabelClass, LabelClass.id == Label.class_id)
            .where(Image.external_id == "a", LabelClass.key == "/m/c0")
        ).one()
        assert tuple(flipped) == (2, "bob")
        last = list(s.scalars(select(LabelEvent).where(LabelEvent.reason == "import labels2.csv")))
        assert len(last) == 2 and {(e.before, e.after) for e in last} == {(None, 1), (1, 0)}
        assert counts(s)[1] == before[1] + 2


def test_real_openimages_class_file_with_and_without_header(
    sm: sessionmaker[Session], tmp_path: Path
) -> None:
    with REAL_CLASSES.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert len(rows) == 19_994
    labels = write(
        tmp_path / "labels.csv", HEADER + f"x1,verification,{rows[0][0]},1\nx2,verification,{rows[-1][0]},0\n"
    )
    report = run(sm, labels=labels, classes=REAL_CLASSES, dataset="real")
    assert (report.classes_added, report.labels_added, report.images_registered) == (19_994, 2, 2)
    headerless = write(tmp_path / "noheader.csv", REAL_CLASSES.read_bytes().split(b"\n", 1)[1])
    assert run(sm, labels=labels, classes=headerless, dataset="real2").classes_added == 19_994
    with sm() as s:
        for name in ("real", "real2"):
            got = s.execute(
                select(LabelClass.key, LabelClass.display_name)
                .join(Dataset, Dataset.id == LabelClass.dataset_id)
                .where(Dataset.name == name)
                .order_by(LabelClass.position)
            ).all()
            assert [tuple(r) for r in got] == [tuple(r) for r in rows]
        assert sum("," in n for _, n in rows) > 0  # quoted display names with commas came through
        assert len(rows) - len({n for _, n in rows}) == 12  # repeated display names are fine
        assert cells(s, "real") == {("x1", rows[0][0], 1), ("x2", rows[-1][0], 0)}
        assert {i.path for i in s.scalars(select(Image))} == {"x1.jpg", "x2.jpg"}


def test_crlf_quotes_unicode_and_sql_fragments_round_trip(sm: sessionmaker[Session], tmp_path: Path) -> None:
    hostile = 'O\'Brien "x"; DROP TABLE label;--'
    classes = write(tmp_path / "c.csv", '"日本","Japan, ""the"" country"\r\n"/m/a,b",\'quoted\'\r\n')
    labels = write(
        tmp_path / "l.csv",
        'ImageID,Source,LabelName,Confidence\r\n"O\'Brien ""x""; DROP TABLE label;--",v,日本,1\r\n'
        'img,"src, with comma","/m/a,b",0\r\n',
    )
    report = run(sm, labels=labels, classes=classes, dataset="weird")
    assert report.labels_added == 2
    with sm() as s:
        assert cells(s, "weird") == {(hostile, "日本", 1), ("img", "/m/a,b", 0)}
        assert (
            s.scalar(select(LabelClass.display_name).where(LabelClass.key == "日本"))
            == 'Japan, "the" country'
        )
        assert s.scalar(select(Image.path).where(Image.external_id == hostile)) == hostile + ".jpg"


def test_splits_file_sets_splits(sm: sessionmaker[Session], files: dict[str, Path], tmp_path: Path) -> None:
    splits = write(tmp_path / "splits.csv", "ImageID,Split\na,val\nd,test\n")
    run(
        sm,
        labels=files["labels"],
        classes=files["classes"],
        images=files["images"],
        split="val",
        splits=splits,
    )
    with sm() as s:
        got = {e: sp for e, sp in s.execute(select(Image.external_id, Image.split))}
    assert got == {"a": "val", "b": "val", "c": "val", "d": "test"}


def test_unusable_files_and_links_outside_are_skipped(sm: sessionmaker[Session], tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["ok.jpg"])
    (folder / "empty.jpg").write_bytes(b"")
    outside = make_images(tmp_path / "elsewhere", ["secret.jpg"])
    os.symlink(outside / "secret.jpg", folder / "link.jpg")
    os.symlink(folder / "ok.jpg", folder / "inside.jpg")
    labels = write(tmp_path / "l.csv", HEADER + "ok,v,/m/c0,1\n")
    report = run(sm, labels=labels, classes=write(tmp_path / "c.csv", CLASSES), images=folder)
    assert report.images_registered == 2
    assert dict(report.images_skipped).keys() == {"empty.jpg", "link.jpg"}
    assert "outside the image folder" in dict(report.images_skipped)["link.jpg"]
    with sm() as s:
        assert sorted(s.scalars(select(Image.external_id))) == ["inside", "ok"]
    bad = write(tmp_path / "l2.csv", HEADER + "empty,v,/m/c0,1\n")
    with pytest.raises(LabelFileError, match=r'^l2\.csv:2: the image file of ImageID "empty" is not usable'):
        run(sm, labels=bad, classes=write(tmp_path / "c.csv", CLASSES), images=folder)


# ------------------------------------------------------------------------- bad files

BAD_LABELS = [
    (
        "wrong header",
        HEADER.replace("Source", "Src") + "a,v,/m/c0,1\n",
        r'^labels\.csv:1: missing column "Source"',
    ),
    (
        "missing column",
        "ImageID,Source,LabelName\na,v,/m/c0\n",
        r'^labels\.csv:1: missing column "Confidence"',
    ),
    ("empty file", "", r"^labels\.csv:1: the file is empty; the first line must be the header"),
    ("only a newline", "\n", r"^labels\.csv:1: the file is empty"),
    (
        "not utf-8",
        HEADER.encode() + b"a,v,/m/c0,1\nb,v,/m/c\xff1,1\n",
        r"^labels\.csv:3: byte 0xff at column 9 is not UTF-8 text; save the file as UTF-8$",
    ),
    (
        "unknown class",
        HEADER + "a,v,/m/c0,1\nb,v,/m/xyz,1\n",
        r'^labels\.csv:3: class "/m/xyz" is not in the class file; add it to the classes file or remove the row$',
    ),
    (
        "unknown image",
        HEADER + "a,v,/m/c0,1\nzzz,v,/m/c0,1\n",
        r'^labels\.csv:3: no image file for ImageID "zzz" under ',
    ),
    (
        "value yes",
        HEADER + "a,v,/m/c0,yes\n",
        r'^labels\.csv:2: Confidence "yes" is not 0 or 1; write 1 \(present\)',
    ),
    ("value 2", HEADER + "a,v,/m/c0,1\na,v,/m/c1,2\n", r'^labels\.csv:3: Confidence "2" is not 0 or 1'),
    ("value -1", HEADER + "a,v,/m/c0,-1\n", r'^labels\.csv:2: Confidence "-1" is not 0 or 1'),
    (
        "value huge",
        HEADER + "a,v,/m/c0,99999999999999999999\n",
        r'^labels\.csv:2: Confidence "99999999999999999999"',
    ),
    ("value empty", HEADER + "a,v,/m/c0,\n", r'^labels\.csv:2: Confidence "" is not 0 or 1'),
    ("missing fields", HEADER + "a,v\n", r"^labels\.csv:2: empty class id"),
    (
        "extra fields",
        HEADER + "a,v,/m/c0,1\nb,v,/m/c0,1,x\n",
        r"^labels\.csv:3: 5 fields where the header has 4",
    ),
    (
        "extra fields first row",
        HEADER + "a,v,/m/c0,1,x\n",
        r"^labels\.csv:2: 5 fields where the header has 4; quote",
    ),
    (
        "same cell 1 and 0",
        HEADER + "a,v,/m/c0,1\nb,v,/m/c0,1\na,v,/m/c0,1\na,v,/m/c0,0\n",
        r'^labels\.csv:5: image "a" class "/m/c0" is 0 here but 1 on line 2; keep one of the two rows$',
    ),
    (
        "first bad line wins across kinds",
        HEADER + "a,v,/m/c0,1\nb,v,/m/c1,0\nb,v,/m/nope,1\nzzz,v,/m/c0,1\nb,v,/m/c1,1\n",
        r'^labels\.csv:4: class "/m/nope"',
    ),
    (
        "conflict before an unknown class",
        HEADER + "a,v,/m/c0,1\na,v,/m/c0,0\nb,v,/m/nope,1\n",
        r'^labels\.csv:3: image "a" class "/m/c0" is 0 here but 1 on line 2',
    ),
]


@pytest.mark.parametrize(("content", "message"), [pytest.param(c, m, id=i) for i, c, m in BAD_LABELS])
def test_bad_label_file_is_one_line_and_changes_nothing(
    sm: sessionmaker[Session], files: dict[str, Path], content: str | bytes, message: str
) -> None:
    run(sm, labels=files["labels"], classes=files["classes"], images=files["images"], dataset="oi")
    with sm() as s:
        before = counts(s)
    bad = write(files["labels"].parent / "labels.csv", content)
    with pytest.raises(LabelFileError, match=message) as err:
        run(sm, labels=bad, classes=files["classes"], images=files["images"], dataset="oi", author="x")
    assert "\n" not in str(err.value)
    with sm() as s:
        assert counts(s) == before


def test_bad_class_and_split_files(sm: sessionmaker[Session], files: dict[str, Path], tmp_path: Path) -> None:
    cases = [
        (
            {"classes": write(tmp_path / "c1.csv", "/m/c0,Cat,extra\n")},
            r"^c1\.csv:1: 3 fields where a class row has 2",
        ),
        (
            {"classes": write(tmp_path / "c2.csv", "/m/c0,Cat\n/m/c0,Dog\n")},
            r'^c2\.csv:2: class "/m/c0" is named "Dog"',
        ),
        ({"classes": write(tmp_path / "c3.csv", "")}, r"^c3\.csv:1: no classes in the file"),
        (
            {"classes": write(tmp_path / "c4.csv", b"/m/c0,Caf\xe9\n")},
            r"^c4\.csv:1: byte 0xe9 at column 10 is not UTF-8",
        ),
        (
            {"splits": write(tmp_path / "s1.csv", "a,holdout\n")},
            r'^s1\.csv:1: split "holdout" is not train, val or test',
        ),
        (
            {"splits": write(tmp_path / "s2.csv", "ImageID,Split\nnope,val\n")},
            r'^s2\.csv:2: image "nope" is neither',
        ),
    ]
    for extra, message in cases:
        kw: dict[str, object] = {
            "labels": files["labels"],
            "classes": files["classes"],
            "images": files["images"],
        }
        kw.update(extra)
        with pytest.raises(LabelFileError, match=message):
            run(sm, **kw)
        with sm() as s:
            assert counts(s) == (0, 0, 0, 0, 0)


def test_unsafe_image_ids_and_image_folder_problems(sm: sessionmaker[Session], tmp_path: Path) -> None:
    classes = write(tmp_path / "c.csv", CLASSES)
    escape = write(tmp_path / "l.csv", HEADER + "ok,v,/m/c0,1\n../../etc/passwd,v,/m/c0,1\n")
    with pytest.raises(
        LabelFileError, match=r'^l\.csv:3: image id "\.\./\.\./etc/passwd" would point outside'
    ):
        run(sm, labels=escape, classes=classes)
    twins = make_images(tmp_path / "twins", ["a.jpg", "a.png"])
    with pytest.raises(
        LabelFileError, match=r'two image files share the id "a": "a\.jpg" and "a\.png"; keep one'
    ):
        run(sm, labels=write(tmp_path / "l2.csv", HEADER + "a,v,/m/c0,1\n"), classes=classes, images=twins)
    with sm() as s:
        assert counts(s) == (0, 0, 0, 0, 0)
    one = make_images(tmp_path / "one", ["a.jpg"])
    run(
        sm,
        labels=write(tmp_path / "l3.csv", HEADER + "a,v,/m/c0,1\n"),
        classes=classes,
        images=one,
        dataset="d",
    )
    other = make_images(tmp_path / "other", ["a.jpg"])
    with pytest.raises(LabelFileError, match=r'dataset "d" keeps its images under'):
        run(
            sm,
            labels=write(tmp_path / "l4.csv", HEADER + "a,v,/m/c0,1\n"),
            classes=classes,
            images=other,
            dataset="d",
        )


def test_one_bad_row_at_the_end_of_a_large_file(
    sm: sessionmaker[Session], files: dict[str, Path], tmp_path: Path
) -> None:
    run(sm, labels=files["labels"], classes=files["classes"], images=files["images"], dataset="oi")
    with sm() as s:
        before = counts(s)
    n = 50_000
    classes = write(tmp_path / "c.csv", "".join(f"/m/k{j},Class {j}\n" for j in range(50)))
    body = "".join(f"img{i // 10:05d},verification,/m/k{(i * 7) % 50},{i % 2}\n" for i in range(n))
    bad = write(tmp_path / "big.csv", HEADER + body + "img00000,verification,/m/k0,maybe\n")
    with pytest.raises(LabelFileError, match=rf'^big\.csv:{n + 2}: Confidence "maybe" is not 0 or 1'):
        run(sm, labels=bad, classes=classes, dataset="big", chunk_rows=7_000)
    conflict = write(tmp_path / "big.csv", HEADER + body + "img00000,verification,/m/k0,1\n")
    with pytest.raises(
        LabelFileError, match=rf'^big\.csv:{n + 2}: image "img00000" class "/m/k0" is 1 here but 0'
    ):
        run(sm, labels=conflict, classes=classes, dataset="big", chunk_rows=7_000)
    with sm() as s:
        assert counts(s) == before
