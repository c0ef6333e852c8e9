"""Train: queue a retrain cycle as a job and follow it live; shows whether a worker is running.

The form builds a :class:`~app.pipeline.config.CycleConfig` and enqueues a ``cycle`` job;
``labelmend worker`` runs it. Progress comes from the job row (``progress``, ``message``,
``heartbeat_at``), polled by a fragment every two seconds. When jobs wait and no worker has sent
a heartbeat recently, the page says how to start one and can start ``labelmend worker --once``
as a background process. Queueing, cancelling and starting a worker are refused on the server
without the train permission; a job records who queued it (``Job.created_by``).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import streamlit as st

from app.auth import Permission, PermissionDenied
from app.pipeline.config import CycleConfig, PriorSource, TrainMode, WeightsSource
from app.web import guarded, state
from app.web.components import md_escape
from core.losses.catalog import LossName, describe_loss
from db.engine import labelmend_home
from db.jobs import recent_jobs
from db.models import Job, JobStatus, utcnow

#: A worker heartbeats a running job every few seconds; older than this, it is presumed gone.
FRESH_S = 30.0
POLL_S = 2.0
PROC_KEY = "train_worker_proc"
DEFAULTS = CycleConfig(dataset="")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _enqueue(ds: state.DatasetRef) -> None:
    who = state.guard(Permission.TRAIN)
    if who is None:
        return
    values = {
        f.name: st.session_state[f"train-{f.name}"]
        for f in fields(CycleConfig)
        if f"train-{f.name}" in st.session_state
    }
    try:
        config = CycleConfig(dataset=ds.name, **{k: v for k, v in values.items() if k != "dataset"})
        if not config.backbone.strip():
            raise ValueError("the backbone name is empty; give a timm model name such as resnet50")
        job_id = guarded.queue_cycle(state.get_store(), who, config, ds.id)
    except PermissionDenied as err:
        state.flash("error", f"Refused: {err}")
        return
    except (TypeError, ValueError) as err:
        state.flash("error", f"Not queued: {err}")
        return
    state.flash("success", f"Cycle queued as job {job_id}.")


def _choices(values: tuple[str, ...], default: str) -> dict[str, object]:
    """Selectbox arguments for an enum's values with ``default`` preselected."""
    return {"options": values, "index": values.index(default)}


def _form(ds: state.DatasetRef) -> None:
    # Choices come from the config's enums (LossName from the torch-free catalog: no torch here).
    with st.form("train-form"):
        c1, c2, c3, c4 = st.columns(4)
        c1.text_input("Backbone (timm model)", DEFAULTS.backbone, key="train-backbone")
        c2.selectbox(
            "Mode",
            **_choices(TrainMode.values(), DEFAULTS.mode),
            key="train-mode",
            help="head: cached embeddings, fast on CPU; finetune: the whole network (GPU).",
        )
        c3.selectbox(
            "Loss", **_choices(LossName.values(), DEFAULTS.loss), format_func=describe_loss, key="train-loss"
        )
        c4.number_input("Epochs", 1, 1000, DEFAULTS.epochs, key="train-epochs")
        with st.expander("More settings"):
            _more_settings()
        st.form_submit_button(
            "Queue retrain cycle", type="primary", on_click=_enqueue, args=(ds,), key="train-submit"
        )


def _more_settings() -> None:
    a1, a2, a3, a4 = st.columns(4)
    a1.selectbox(
        "Pretrained weights",
        **_choices(WeightsSource.values(), DEFAULTS.pretrained),
        key="train-pretrained",
        help="hub: timm download; packaged: ImageNet weights from a pip package (offline); none: random; "
        "file: the checkpoint below.",
    )
    a2.selectbox(
        "Class prior",
        **_choices(PriorSource.values(), DEFAULTS.prior),
        key="train-prior",
        help="model: the temporary ignore-mode model; naive: annotated positive rate; file: the CSV below.",
    )
    a3.number_input("Image size (px)", 32, 1024, DEFAULTS.image_size, step=32, key="train-image_size")
    a4.number_input("Batch size", 1, 4096, DEFAULTS.batch_size, key="train-batch_size")
    p1, p2 = st.columns(2)
    p1.text_input(
        "Checkpoint file (weights: file)",
        key="train-pretrained_file",
        help="A local checkpoint on the worker's machine (.pth, .pt, .bin or .safetensors).",
    )
    p2.text_input(
        "Prior file (class prior: file)",
        key="train-prior_file",
        help="A Classes,avg_pred CSV on the worker's machine.",
    )
    b1, b2, b3, b4, b5 = st.columns(5)
    b1.number_input("Learning rate", 1e-6, 1.0, DEFAULTS.lr, format="%.5f", key="train-lr")
    b2.number_input(
        "Suggestions to keep", 1, 10_000_000, DEFAULTS.top_suggestions, key="train-top_suggestions"
    )
    b3.number_input(
        "Audit share",
        0.0,
        0.5,
        DEFAULTS.audit_share,
        step=0.01,
        format="%.2f",
        key="train-audit_share",
        help="Share of the review queue drawn at random from unknown cells, not by score. Their "
        "decisions measure how precise the suggestions are and how many labels each class is "
        "missing (Models page). 0 = none.",
    )
    b4.selectbox("Device", DEVICES, key="train-device")
    b5.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="train-seed")


def _worker_command() -> list[str]:
    script = Path(sys.executable).with_name("labelmend")
    base = [str(script)] if script.exists() else [sys.executable, "-c", "from app.cli import main; main()"]
    return [*base, "worker", "--once"]


def _start_worker() -> None:
    if state.guard(Permission.TRAIN) is None:
        return
    logs = labelmend_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"worker-{utcnow():%Y%m%d-%H%M%S}.log"
    env = {**os.environ, "LABELMEND_DB": state.get_store().url}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            _worker_command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    st.session_state[PROC_KEY] = (proc, str(log_path))


def _cancel(job_id: int) -> None:
    try:
        guarded.cancel_job(state.get_store(), state.identity(), job_id)
    except PermissionDenied as err:
        state.flash("error", f"Refused: {err}")


def _age(job: Job, now: dt.datetime) -> float | None:
    beat = state.as_utc(job.heartbeat_at)
    return None if beat is None else (now - beat).total_seconds()


def _worker_state(all_jobs: list[Job], now: dt.datetime) -> None:
    running = [j for j in all_jobs if j.status == JobStatus.RUNNING]
    fresh = [j for j in running if (_age(j, now) or 1e9) < FRESH_S]
    queued = [j for j in all_jobs if j.status == JobStatus.QUEUED]
    for j in fresh:
        st.success(
            f"Worker {md_escape(j.worker)} is running job {j.id} (last heartbeat {_age(j, now):.0f} s ago)."
        )
    for j in running:
        if j not in fresh:
            st.warning(
                f"Job {j.id}'s worker has been silent for {_age(j, now) or 0:.0f} s; a new worker requeues it."
            )
    if queued and not fresh:
        st.warning(
            f"{len(queued)} job(s) waiting and no worker is running. Start one with `labelmend worker`, or run the next job here."
        )
        st.button(
            "Run the next job in a background process", key="train-start-worker", on_click=_start_worker
        )
    elif not queued and not running:
        st.caption("No job is waiting.")
    proc_info = st.session_state.get(PROC_KEY)
    if proc_info:
        proc, log_path = proc_info
        code = proc.poll()
        st.caption(
            f"Background worker pid {proc.pid}: {'running' if code is None else f'exited with code {code}'} · log {md_escape(log_path)}"
        )


def _job(job: Job) -> None:
    with st.container(border=True, key=f"train-job-{job.id}"):
        head, side = st.columns([5, 1], vertical_alignment="center")
        by = f" · by {md_escape(job.created_by)}" if job.created_by else ""
        head.markdown(f"**Job {job.id}** · {md_escape(job.kind)} · {job.status} · attempt {job.attempts}{by}")
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            side.button("Cancel", key=f"train-cancel-{job.id}", on_click=_cancel, args=(job.id,))
            st.progress(
                min(max(float(job.progress or 0.0), 0.0), 1.0), text=md_escape(job.message or job.status)
            )
        elif job.status == JobStatus.FAILED:
            st.error(md_escape((job.error or "failed").splitlines()[0]))
        elif job.status == JobStatus.SUCCEEDED and job.result:
            st.caption(md_escape(", ".join(f"{k}: {v}" for k, v in job.result.items())))


@st.fragment(run_every=POLL_S)
def _jobs(ds: state.DatasetRef) -> None:
    with state.get_store().read() as s:
        all_jobs = recent_jobs(s, limit=20)
        mine = recent_jobs(s, limit=10, dataset_id=ds.id)
    _worker_state(all_jobs, utcnow())
    for job in mine:
        _job(job)


def render() -> None:
    state.show_flashes()
    state.require_page(Permission.TRAIN)
    ds = state.require_dataset()
    st.markdown(f"## Retrain {md_escape(ds.name)}")
    _form(ds)
    st.markdown("#### Jobs")
    _jobs(ds)


render()
