"""The simulated review loop of the quality benchmark, on the real store and the real review path.

Per loss, a dataset of the training images with their partial labels is ingested into a SQLite
store (``app.pipeline.ingest.ingest_arrays``). Each cycle:

1. the labels are read back from the store (``app.pipeline.load.load_dataset``);
2. the app's models are trained on them: the temporary ``ignore`` model (2-fold cross-fitted) gives
   the prior (``core.priors.model_prior``), the loss under test gives cross-fitted probabilities,
   and the app's default ranker picks the top R unknown cells (``core.ranking.top_unknown``);
   only the loss differs between the compared arms;
3. as in the app's cycle, the app's default audit share of them (``CycleConfig.audit_share``) is
   replaced by cells drawn at random from all unknown cells, one per block of the queue
   (``app.pipeline.audit.audit_queue``), and the queue is stored as a run's suggestions
   (``db.runs.write_suggestions``) — so "recovered per review" counts what a user's annotators
   would recover, audit cells included;
4. an oracle annotator works through the queue with ``db.review.claim_next`` and
   ``db.review.decide`` — the functions the app's review page calls, one transaction per decision —
   accepting exactly the suggestions that are truly present.

The model trained on all the labels of a cycle is scored on the fully labelled test split before
the first review and after every cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from app.pipeline.audit import audit_queue
from app.pipeline.config import CycleConfig
from app.pipeline.ingest import ingest_arrays
from app.pipeline.load import load_dataset
from app.store import Store
from bench.quality_data import SeedData
from bench.quality_methods import HeadSettings, cross_fit, fit_head, suggestion_probs
from core.constants import POSITIVE
from core.metrics import full_map
from core.priors import model_prior
from core.ranking import top_unknown
from core.train import predict_head
from db import runs
from db.datasets import get_dataset
from db.models import RunKind
from db.review import Decision, claim_next, decide

#: The reviewer name the oracle records its decisions under.
ORACLE = "oracle"


@dataclass
class OracleResult:
    """One loss's review loop on one seed.

    Attributes:
        accepted: per cycle, suggestions the oracle accepted (true labels recovered).
        reviewed: per cycle, suggestions decided.
        test_map: test mAP (0–100) of the model trained on the labels at the start of each cycle,
            then after the last review: ``cycles + 1`` values.
        seconds: wall time of the loop.
        review_seconds: the part spent claiming and deciding suggestions in the store.
    """

    accepted: list[int] = field(default_factory=list)
    reviewed: list[int] = field(default_factory=list)
    test_map: list[float] = field(default_factory=list)
    seconds: float = 0.0
    review_seconds: float = 0.0

    @property
    def recovered_per_review(self) -> list[float]:
        """Per cycle: true labels recovered per review, accepted / reviewed, in [0, 1]."""
        return [a / r if r else float("nan") for a, r in zip(self.accepted, self.reviewed, strict=True)]


def _ingest(store: Store, name: str, data: SeedData, targets: np.ndarray) -> int:
    ids = [data.dataset.image_ids[i] for i in data.train]
    with store.write() as s:
        return ingest_arrays(
            s,
            name,
            image_root=str(data.image_root),
            external_ids=ids,
            paths=[f"{i}.jpg" for i in ids],
            splits=["train"] * len(ids),
            class_keys=data.dataset.class_ids,
            class_names=data.dataset.class_names,
            targets=targets,
            source_name="quality benchmark",
        )


def _review(store: Store, dataset_id: int, truth_of: dict[tuple[int, int], int]) -> tuple[int, int]:
    """The oracle decides every pending suggestion, best first; returns (accepted, reviewed)."""
    accepted = reviewed = 0
    while True:
        with store.write() as s:
            sugg = claim_next(s, dataset_id, ORACLE)
            if sugg is None:
                return accepted, reviewed
            present = truth_of[(sugg.image_id, sugg.class_id)] == POSITIVE
            decide(s, sugg.id, Decision.ACCEPT if present else Decision.REJECT, ORACLE)
        accepted += int(present)
        reviewed += 1


def run_oracle(
    store: Store,
    name: str,
    data: SeedData,
    targets: np.ndarray,
    loss: str,
    settings: HeadSettings,
    *,
    cycles: int,
    review: int,
    seed: int,
) -> OracleResult:
    """Run ``cycles`` train → suggest → review cycles for ``loss`` on a new dataset ``name``.

    Args:
        store: an open store (a throwaway SQLite database).
        name: the dataset name to create (unique in the store).
        data: the seed's data (embeddings, truth).
        targets: int8 (N_train, C) the initial partial labels (1 / 0 / -1).
        loss: the loss preset of the target model.
        settings: head training settings.
        cycles: review cycles.
        review: R, suggestions reviewed per cycle.
        seed: training seed.

    Returns:
        The :class:`OracleResult`.
    """
    started = time.perf_counter()
    dataset_id = _ingest(store, name, data, targets)
    row_of = {ext: i for i, ext in enumerate(data.dataset.image_ids[j] for j in data.train)}
    out = OracleResult()
    for cycle in range(cycles + 1):
        with store.read() as s:
            arrays = load_dataset(s, get_dataset(s, name))
        rows = np.fromiter((row_of[e] for e in arrays.external_ids), dtype=np.int64, count=arrays.n_images)
        x, t = data.x_train[rows], arrays.dense_targets()
        cf_ignore = cross_fit(x, t, "ignore", settings, seed=seed)
        prior = model_prior(cf_ignore, t)
        head = fit_head(x, t, loss, settings, seed=seed, prior=prior)
        out.test_map.append(full_map(predict_head(head, data.x_test), data.y_test).map)
        if cycle == cycles:
            break
        probs = suggestion_probs(x, t, loss, settings, head, seed=seed, prior=prior)
        queue = audit_queue(top_unknown(probs, t, prior, review), t, share=CycleConfig.audit_share,
                            seed=(seed, cycle))  # fmt: skip
        with store.write() as s:
            run = runs.create_run(s, dataset_id, RunKind.TARGET.value, {"loss": loss, "benchmark": "quality"})
            runs.write_suggestions(
                s,
                run.id,
                image_ids=arrays.image_ids[queue.img_idx],
                class_ids=arrays.class_ids[queue.cls_idx],
                scores=queue.score,
                probs=probs[queue.img_idx, queue.cls_idx].astype(np.float64),
                priors=prior[queue.cls_idx],
                audit=queue.audit,
            )
            runs.finish_run(s, run.id, metrics={"test_map": out.test_map[-1]})
        truth = data.y_train[rows]
        truth_of = {
            (int(arrays.image_ids[i]), int(arrays.class_ids[c])): int(truth[i, c])
            for i, c in zip(queue.img_idx.tolist(), queue.cls_idx.tolist(), strict=True)
        }
        t0 = time.perf_counter()
        accepted, reviewed = _review(store, dataset_id, truth_of)
        out.review_seconds += time.perf_counter() - t0
        out.accepted.append(accepted)
        out.reviewed.append(reviewed)
    out.seconds = time.perf_counter() - started
    return out


__all__ = ["ORACLE", "OracleResult", "run_oracle"]
