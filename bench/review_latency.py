"""Review latency benchmark: key press → next suggestion shown, in a real browser, on a big store.

Seeds a store quickly with bulk inserts (default 100,000 images, 600 classes, 5 labels per image
and 1,000,000 pending suggestions; images are 256 real JPEG files shared by all rows), starts
``labelmend serve`` on it, and drives the Review page with Playwright + Chromium: the time from
the ``keydown`` event to the moment the next suggestion's card is in the page with its image
decoded, both measured with the page's own clock (``performance.now()``), for ``n`` presses.
It also times how long each page takes to show its content.

Run: ``labelmend bench review [--suggestions 1000000] [--workdir DIR]`` (needs Playwright and
``/usr/bin/chromium``; ``LABELMEND_CHROMIUM`` overrides the browser path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage

from app.store import open_store
from db.bulk import load_rows
from db.datasets import ensure_classes, get_or_create_dataset
from db.runs import create_run, finish_run

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
N_FILES = 256
FIRST_KEY_SETTLE_MS = 500
CARD = "st-key-review-card-"

#: Installed in the page: records the last keydown time and, once armed with the id shown, the
#: time the card of another suggestion is in the DOM with its image decoded.
WATCH_JS = """
() => {
  if (window.__lmInstalled) return;
  window.__lmInstalled = true;
  window.__lmDown = null;
  document.addEventListener('keydown', () => { window.__lmDown = performance.now(); }, true);
  window.__lmCurrent = () => {
    // The card on screen: exactly one, none of its elements left stale by a rerun in progress.
    const cards = [...document.querySelectorAll('[class*="CARD"]')]
      .filter(el => !el.querySelector('[data-stale="true"]'));
    if (cards.length !== 1) return null;
    const el = cards[0];
    const m = el.className.match(/CARD(\\d+)/);
    if (!m) return null;
    const img = el.querySelector('img');
    const ready = !img || (img.complete && img.naturalWidth > 0);
    return {id: m[1], ready: ready};
  };
  window.__lmArm = (prev) => {
    window.__lmResult = null;
    const check = () => {
      if (window.__lmResult) return true;
      const cur = window.__lmCurrent();
      if (cur && cur.id !== prev && cur.ready) {
        window.__lmResult = {id: cur.id, t: performance.now()};
        return true;
      }
      return false;
    };
    const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
    obs.observe(document.body, {subtree: true, childList: true, attributes: true});
    document.addEventListener('load', () => { if (check()) obs.disconnect(); }, true);
  };
}
""".replace("CARD", CARD)


@dataclass
class LatencyResult:
    """Key press → next suggestion shown, in milliseconds (page clock)."""

    samples_ms: list[float]
    median_ms: float
    p90_ms: float
    page_load_s: dict[str, float] = field(default_factory=dict)  #: first visit (cold caches)
    page_load_warm_s: dict[str, float] = field(default_factory=dict)  #: median of later visits
    store: dict[str, Any] = field(default_factory=dict)


def current_card(page: Page) -> str:
    """The id of the suggestion the Review page shows (waits until one is shown)."""
    page.wait_for_function("() => window.__lmCurrent && window.__lmCurrent() && window.__lmCurrent().ready")
    return str(page.evaluate("() => window.__lmCurrent().id"))


def open_review(page: Page, base_url: str, dataset: str, annotator: str) -> None:
    """Open the Review page on ``dataset`` and give the annotator's name once."""
    page.goto(f"{base_url}/?dataset={dataset}")
    name = page.get_by_label("Your name")
    name.fill(annotator)
    page.get_by_role("button", name="Start").click()
    page.locator(f"[class*='{CARD}']").first.wait_for(timeout=60_000)
    page.evaluate(WATCH_JS)
    wait_idle(page)
    # Streamlit binds a button's shortcut only once the button is mounted for good: a key
    # pressed during the run that first renders the buttons, or within ~0.3 s after it, is
    # dropped by the browser (no message reaches the server). Later keys are not affected.
    page.wait_for_timeout(FIRST_KEY_SETTLE_MS)


def wait_idle(page: Page, timeout_ms: float = 60_000) -> None:
    """Wait until Streamlit has finished the current script run (``data-test-script-state``)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=timeout_ms,
    )


def press_and_time(page: Page, key: str, timeout_ms: float = 30_000) -> tuple[str, float]:
    """Press ``key`` on the Review page; returns (id shown next, ms from keydown to it shown)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    prev = current_card(page)
    page.evaluate("(prev) => window.__lmArm(prev)", prev)
    page.keyboard.press(key)
    try:
        page.wait_for_function("() => window.__lmResult !== null", timeout=timeout_ms)
    except PlaywrightTimeout:
        alerts = page.evaluate(
            "() => [...document.querySelectorAll('[data-testid=stAlert]')].map(e => e.innerText)"
        )
        raise AssertionError(
            f"key {key!r} on suggestion {prev}: no other suggestion shown within {timeout_ms / 1000:.0f} s "
            f"(now {page.evaluate('() => window.__lmCurrent()')}, messages {alerts})"
        ) from None
    shown = page.evaluate("() => [window.__lmResult.id, window.__lmResult.t - window.__lmDown]")
    return str(shown[0]), float(shown[1])


def measure_review_latency(page: Page, n: int = 20, keys: Sequence[str] = ("a", "x")) -> list[float]:
    """Decide ``n`` suggestions with ``keys`` in turn (the page must show one); ms per press."""
    samples = []
    for i in range(n):
        _, ms = press_and_time(page, keys[i % len(keys)])
        samples.append(ms)
    return samples


#: Sidebar link → text the page shows once loaded (with a dataset and an annotator).
PAGE_CONTENT = {
    "Class grid": "Thumbnails per page",
    "Image": "Positive (",
    "Dataset": "Labels per class",
    "Models": "Partial mAP per cycle",
    "Train": "Queue retrain cycle",
    "Import / Export": "Export the cleaned labels",
    "Review": "Is there a",
}


def page_load_times(
    page: Page,
    base_url: str,
    dataset: str,
    annotator: str = "bench-viewer",
    rounds: int = 3,
    settle_ms: float = 2_000,
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds to each page's content, as a user clicks through the sidebar ``rounds`` times.

    The Review page is timed from the name form (first card shown). The first round finds the
    server's caches (thumbnails, counts) cold; later rounds find them warm. After each page the
    user looks at it for ``settle_ms`` before the next click: clicking the instant a chart page's
    script ends measures the browser still drawing its Plotly charts (up to ~1.7 s more in
    headless Chromium on 2 cores), not the next page.

    Returns:
        ``(cold, warm)``: seconds until the page's key content is visible on the first visit, and
        the median over the later visits (absent when ``rounds`` is 1).
    """
    page.goto(f"{base_url}/?dataset={dataset}")
    page.get_by_label("Your name").fill(annotator)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start").click()
    page.locator(f"[class*='{CARD}']").first.wait_for(timeout=120_000)
    cold = {"review (first card)": round(time.perf_counter() - t0, 3)}
    wait_idle(page)
    page.wait_for_timeout(settle_ms)
    later: dict[str, list[float]] = {}
    for r in range(rounds):
        for link, text in PAGE_CONTENT.items():
            t0 = time.perf_counter()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
            page.get_by_text(text).first.wait_for(timeout=120_000)
            seconds = round(time.perf_counter() - t0, 3)
            if r == 0:
                cold[link] = seconds
            else:
                later.setdefault(link, []).append(seconds)
            wait_idle(page, timeout_ms=120_000)
            page.wait_for_timeout(settle_ms)
    warm = {link: round(statistics.median(v), 3) for link, v in later.items()}
    return cold, warm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(db_url: str, home: Path, log: Path) -> Iterator[str]:
    """Run ``labelmend serve`` on a free port; yields its base URL once it answers ``/_stcore/health``."""
    port = _free_port()
    exe = Path(sys.executable).with_name("labelmend")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from app.cli import main; main()"]
    env = {**os.environ, "LABELMEND_HOME": str(home)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(port), "--db", db_url], env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"labelmend serve did not start; log: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed_big_store(
    db_url: str,
    root: Path,
    *,
    name: str = "bench",
    images: int = 100_000,
    classes: int = 600,
    suggestions: int = 1_000_000,
    labels_per_image: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Fill a store fast (bulk inserts, no audit events) for the benchmark; returns counts and seconds.

    Image ``i`` has labels for classes ``(i + 300 + 53 j) % C`` (j < ``labels_per_image``) and
    suggestions for ``(i + 53 j) % C``; the two sets never meet, so every suggestion is an
    unknown cell. Scores are uniform in (0, 1), higher = reviewed first.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    for f in range(N_FILES):
        pixels = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(root / "img" / f"{f:03d}.jpg", quality=80)
    store = open_store(db_url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    per_image = -(-suggestions // images)
    with store.write() as s:
        ds = get_or_create_dataset(s, name, image_root=str(root))
        ids = ensure_classes(s, ds.id, [(f"/m/b{c:04d}", f"bench class {c}") for c in range(classes)])
        class_ids = np.array([ids[f"/m/b{c:04d}"] for c in range(classes)], dtype=np.int64)
        load_rows(
            s,
            "image",
            ["dataset_id", "external_id", "path", "width", "height", "split", "created_at"],
            ((ds.id, f"b{i:07d}", f"img/{i % N_FILES:03d}.jpg", 96, 96, "train", now) for i in range(images)),
        )
        first = int(
            s.connection()
            .exec_driver_sql(f"SELECT min(id) FROM image WHERE dataset_id = {int(ds.id)}")
            .scalar()
        )
        image_ids = np.arange(first, first + images, dtype=np.int64)
        load_rows(
            s,
            "label",
            ["image_id", "class_id", "value", "source", "author", "created_at", "updated_at", "version"],
            (
                (
                    int(image_ids[i]),
                    int(class_ids[(i + 300 + 53 * j) % classes]),
                    int((i + j) % 3 == 0),
                    "import",
                    "bench",
                    now,
                    now,
                    1,
                )
                for i in range(images)
                for j in range(labels_per_image)
            ),
        )
        run = create_run(s, ds.id, "target", {"backbone": "bench", "loss": "csl"})
        finish_run(s, run.id, metrics={"partial_map": 50.0})
        scores = rng.random(suggestions)
        load_rows(
            s,
            "suggestion",
            ["run_id", "dataset_id", "image_id", "class_id", "score", "prob", "prior", "rank", "status", "version"],
            (
                (run.id, ds.id, int(image_ids[k % images]), int(class_ids[(k % images + 53 * (k // images)) % classes]),
                 float(scores[k]), float(scores[k]), 0.1, k + 1, "pending", 1)
                for k in range(min(suggestions, images * per_image))
            ),
        )  # fmt: skip
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    store.dispose()
    return {
        "images": images,
        "classes": classes,
        "labels": images * labels_per_image,
        "suggestions": suggestions,
        "seed_s": round(time.perf_counter() - t0, 1),
    }


def run(
    workdir: Path, *, db_url: str | None, n: int, suggestions: int, images: int, classes: int
) -> LatencyResult:
    """Seed, serve, and measure; see the module docstring."""
    from playwright.sync_api import sync_playwright

    url = db_url or f"sqlite:///{workdir / 'bench.db'}"
    if db_url is None and (workdir / "bench.db").exists():
        info = {"reused": str(workdir / "bench.db")}  # seeded by an earlier run with --workdir
    else:
        info = seed_big_store(
            url, workdir / "images", images=images, classes=classes, suggestions=suggestions
        )
    chromium = os.environ.get("LABELMEND_CHROMIUM", "/usr/bin/chromium")
    with served(url, workdir / "home", workdir / "serve.log") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        try:
            loads, warm = page_load_times(
                browser.new_page(viewport={"width": 1400, "height": 900}), base, "bench"
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            open_review(page, base, "bench", "bench-annotator")
            samples = measure_review_latency(page, n=n)
        finally:
            browser.close()
    ordered = sorted(samples)
    return LatencyResult(
        samples_ms=[round(x, 1) for x in samples],
        median_ms=round(statistics.median(samples), 1),
        p90_ms=round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        page_load_s=loads,
        page_load_warm_s=warm,
        store=info,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suggestions", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=600)
    parser.add_argument("-n", type=int, default=20, help="key presses to time")
    parser.add_argument("--db", default=None, help="database URL (default: a SQLite file in the workdir)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the store here and reuse it next time (default: temp)",
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="labelmend-review-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(
            workdir,
            db_url=args.db,
            n=args.n,
            suggestions=args.suggestions,
            images=args.images,
            classes=args.classes,
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(asdict(result), indent=2))
    print(
        f"key press -> next suggestion shown: median {result.median_ms} ms over {len(result.samples_ms)} presses"
    )


if __name__ == "__main__":
    main()
