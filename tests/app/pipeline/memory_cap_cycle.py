"""Run one head-mode cycle of ``N`` images × ``C`` classes under an address-space cap (RLIMIT_AS).

Used by ``test_memory_cap.py`` in a fresh process: ``python -m tests.app.pipeline.memory_cap_cycle
WORKDIR N C BUDGET_MIB``. Generates OpenImages-format labels and embeddings with
:mod:`bench.scale`, imports them into SQLite, then caps this process's address space at what it
maps now plus ``BUDGET_MIB`` and runs :func:`app.pipeline.cycle.run_cycle`. It first checks that the
cap is real: a dense ``(N, C)`` float32 array (what the dense path held as probabilities) cannot be
allocated under it. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path


def mapped_bytes() -> int:
    """This process's virtual memory size (VmSize), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(work: Path, n: int, c: int, budget_mib: int) -> dict[str, object]:
    os.environ["LABELMEND_HOME"] = str(work / "home")
    import numpy as np

    from app.pipeline.cycle import run_cycle
    from app.pipeline.features import feature_cache, resolve_weights
    from app.store import open_store
    from bench.scale import ScaleConfig, cycle_config, generate
    from db.io import import_openimages

    cfg = ScaleConfig(images=n, classes=c, labels_per_image=8, epochs=1, top_suggestions=20_000, pending=0)
    store = open_store(f"sqlite:///{work / 'cap.db'}")
    config = cycle_config(cfg)
    cache_dir = store.home / "cache"
    cache = feature_cache(config, c, cache_dir, resolve_weights(config, cache_dir))
    files = generate(cfg, work / "files", cache.append, lambda _f, _m: None)
    with store.write() as s:
        import_openimages(s, labels=files.labels, classes=files.classes, splits=files.splits, dataset="scale")

    cap = mapped_bytes() + budget_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        dense = np.ones((n, c), dtype=np.float32)
        del dense
        dense_fits = True
    except MemoryError:
        dense_fits = False
    result = run_cycle(store, config)
    return {
        "dense_fits": dense_fits,
        "partial_map": result.partial_map,
        "n_suggestions": result.n_suggestions,
        "cap_mib": cap // 2**20,
        "mapped_mib_after": mapped_bytes() // 2**20,
        "timings": result.timings,
    }


if __name__ == "__main__":
    work, n, c, budget = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(main(work, n, c, budget)))
