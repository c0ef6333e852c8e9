"""Review: one likely-missing label at a time, decided with the keyboard.

Keys: **a** accept, **x** reject, **space** skip, **backspace** undo, **←** back to a passed
suggestion, **→** pass. Each decision is written at once by :func:`db.review.decide` in its own
transaction (label + audit event); the suggestion shown is leased to the annotator by
:func:`db.review.claim_next`, so two annotators never see the same one.

Second pair of eyes (when people sign in; :mod:`db.double_review`): a second look that another
annotator's decision left waiting is shown first, exactly like a suggestion — same card, same
buttons, nothing about the first decision (the card's label lists leave out the asked class, for
every card alike). Accept / reject record the second decision, undo takes it back, skip passes
over it (it waits for someone else). In single-person mode there is no second person: no share
is drawn and no second look is shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import streamlit as st

from app.auth import Permission, PermissionDenied
from app.double_review import share_for
from app.web import cached, guarded, state
from app.web.components import Action, action_bar, md_escape, names_line
from app.web.images import LARGE_PX, show_image
from db import queries
from db.datasets import image_labels
from db.double_review import (
    claim_next_second,
    claim_second,
    get_second,
    release_second,
    release_second_claims,
    undo_second,
    waiting_count,
)
from db.errors import ConflictError, NotFoundError, StoreError
from db.models import SecondReviewStatus, SuggestionStatus, utcnow
from db.review import Decision, claim_next, claim_one, decide, release_claims, release_one, undo

STATE_KEY = "review_state"
CLASS_KEY = "review_class"
RENEW_BEFORE_S = 30.0
MAX_PASSED = 200
SECOND_ROW_WIDTHS = (1.5, 1.0, 1.0)  # "Undo" carries the wide "Backspace" key hint

ACTIONS = (
    Action("accept", "Accept", "A", "review-accept", "Yes, it is there: label the cell positive.", "primary"),
    Action("reject", "Reject", "X", "review-reject", "No, it is not there: label the cell negative."),
    Action("skip", "Skip", "Space", "review-skip", "Not sure: leave the cell unknown."),
    Action("undo", "Undo", "Backspace", "review-undo", "Undo your last decision."),
    Action("back", "Back", "Left", "review-back", "Back to the last suggestion you passed."),
    Action("pass", "Pass", "Right", "review-pass", "Pass over it for now, without deciding."),
)


@dataclass
class ReviewState:
    """This tab's place in the queue: the leased suggestion, the undo stack, passed-over ids.

    ``current``, ``decided`` and ``passed`` hold suggestion ids; ``looks`` maps the suggestion id
    of each second look met in this tab to its :class:`~db.models.SecondReview` id, and ``look``
    is set when the suggestion on screen is one. ``second_looks``: whether this tab takes them
    (False in single-person mode).
    """

    dataset_id: int
    class_id: int | None
    reviewer: str
    second_looks: bool = False
    current: int | None = None
    look: int | None = None
    decided: list[int] = field(default_factory=list)
    passed: list[int] = field(default_factory=list)
    looks: dict[int, int] = field(default_factory=dict)


def _review_state(dataset_id: int, class_id: int | None, reviewer: str, second_looks: bool) -> ReviewState:
    rv: ReviewState | None = st.session_state.get(STATE_KEY)
    key = (dataset_id, class_id, reviewer, second_looks)
    if rv is None or (rv.dataset_id, rv.class_id, rv.reviewer, rv.second_looks) != key:
        if rv is not None:
            with state.get_store().write() as s:
                release_claims(s, rv.reviewer, rv.dataset_id)
                release_second_claims(s, rv.reviewer, rv.dataset_id)
        rv = ReviewState(dataset_id, class_id, reviewer, second_looks)
        st.session_state[STATE_KEY] = rv
    return rv


def _decide(rv: ReviewState, decision: Decision) -> None:
    if rv.current is None:
        return
    sid, look, rv.current, rv.look = rv.current, rv.look, None, None
    if look is not None and decision is Decision.SKIP:
        _pass_over(rv, sid)  # not sure: leave the second look to someone else
        return
    problem: StoreError | None = None
    try:
        if look is not None:
            guarded.second_decision(state.get_store(), state.identity(), look, decision)
        else:
            share = share_for(state.require_permission(Permission.REVIEW))
            with state.get_store().write() as s:
                try:
                    decide(s, sid, decision, rv.reviewer, second_review_share=share)
                except (ConflictError, NotFoundError) as err:
                    problem = err  # committed: a suggestion labelled meanwhile stays superseded
    except (ConflictError, NotFoundError, PermissionDenied, ValueError) as err:
        problem = err  # a second look taken meanwhile, the sign-in ended, or a bad share setting
    if problem is not None:
        state.flash("warning", str(problem))
        _pass_over(rv, sid)  # move on: do not offer the conflicting suggestion again
        return
    rv.decided.append(sid)


def _release(rv: ReviewState, sid: int) -> None:
    """Give back the lease on ``sid`` (a suggestion, or the second look of one)."""
    with state.get_store().write() as s:
        if sid in rv.looks:
            release_second(s, rv.looks[sid], rv.reviewer)
        else:
            release_one(s, sid, rv.reviewer)


def _pass_over(rv: ReviewState, sid: int) -> None:
    rv.passed = [*rv.passed, sid][-MAX_PASSED:]
    _release(rv, sid)


def _undo(rv: ReviewState) -> None:
    if not rv.decided:
        state.flash("info", "Nothing to undo in this session.")
        return
    sid = rv.decided.pop()
    look = rv.looks.get(sid)
    try:
        with state.get_store().write() as s:
            if look is not None:
                undo_second(s, look, rv.reviewer)
            else:
                undo(s, sid, rv.reviewer)
    except (ConflictError, NotFoundError) as err:
        state.flash("warning", str(err))
        return
    _release_current(rv)
    rv.current, rv.look = sid, look


def _release_current(rv: ReviewState) -> None:
    """Give back the shown suggestion before showing another; the queue offers it again later."""
    if rv.current is not None:
        _release(rv, rv.current)
        rv.current = rv.look = None


def _back(rv: ReviewState) -> None:
    if not rv.passed:
        return
    sid = rv.passed.pop()
    look = rv.looks.get(sid)
    with state.get_store().write() as s:
        taken = claim_second(s, look, rv.reviewer) if look is not None else claim_one(s, sid, rv.reviewer)
    if taken:
        _release_current(rv)
        rv.current, rv.look = sid, look
    else:
        state.flash("info", f"Suggestion {sid} was decided or taken by someone else meanwhile.")


def _pass(rv: ReviewState) -> None:
    if rv.current is None:
        return
    sid, rv.current = rv.current, None
    _pass_over(rv, sid)


def _on_action(name: str, shown: int | None) -> None:
    """A button or key: ``shown`` is the suggestion on screen when the buttons were rendered."""
    rv: ReviewState = st.session_state[STATE_KEY]
    if name in ("accept", "reject", "skip"):
        if shown is None or shown != rv.current:
            state.flash("info", "Key ignored: it was pressed before the next suggestion was shown.")
            return
        _decide(rv, Decision(name))
    else:
        {"undo": _undo, "back": _back, "pass": _pass}[name](rv)


def _current_look(rv: ReviewState) -> queries.SuggestionView | None:
    """The second look on screen with its lease renewed, else None (``rv.current`` then cleared)."""
    assert rv.current is not None and rv.look is not None
    store = state.get_store()
    with store.read() as s:
        row = get_second(s, rv.look)
        pending = row is not None and row.status == SecondReviewStatus.PENDING
        expires = state.as_utc(row.claim_expires_at) if row is not None else None
        mine = pending and row is not None and row.claimed_by == rv.reviewer
        if mine and expires and expires > utcnow() + dt.timedelta(seconds=RENEW_BEFORE_S):
            return queries.suggestion_view(s, rv.current)
    if pending:
        with store.write() as s:
            if claim_second(s, rv.look, rv.reviewer):
                return queries.suggestion_view(s, rv.current)
    rv.current = rv.look = None
    return None


def _next_look(rv: ReviewState) -> queries.SuggestionView | None:
    """Lease the next second look waiting for this reviewer (never their own decision); None if none."""
    with state.get_store().write() as s:
        look = claim_next_second(
            s, rv.dataset_id, rv.reviewer, class_id=rv.class_id, exclude=tuple(rv.passed)
        )
        if look is None:
            return None
        rv.current, rv.look = look.suggestion_id, look.id
        rv.looks[look.suggestion_id] = look.id
        return queries.suggestion_view(s, look.suggestion_id)


def _current(rv: ReviewState) -> queries.SuggestionView | None:
    """What to show, leased to the reviewer: the current item (lease renewed), else the next second
    look waiting for them, else the next suggestion."""
    store = state.get_store()
    if rv.current is not None and rv.look is not None:
        view = _current_look(rv)
        if view is not None:
            return view
    if rv.current is not None:
        with store.read() as s:
            view = queries.suggestion_view(s, rv.current)
        expires = state.as_utc(view.claim_expires_at) if view else None
        fresh = utcnow() + dt.timedelta(seconds=RENEW_BEFORE_S)
        if (
            view
            and view.status == SuggestionStatus.PENDING
            and view.claimed_by == rv.reviewer
            and expires
            and expires > fresh
        ):
            return view
        if view and view.status == SuggestionStatus.PENDING:
            with store.write() as s:
                if claim_one(s, rv.current, rv.reviewer):
                    return queries.suggestion_view(s, rv.current)
        rv.current = None
    try:
        if rv.second_looks:
            view = _next_look(rv)
            if view is not None:
                return view
        with store.write() as s:
            sugg = claim_next(s, rv.dataset_id, rv.reviewer, class_id=rv.class_id, exclude=tuple(rv.passed))
            if sugg is None:
                return None
            rv.current = sugg.id
            rv.looks.pop(sugg.id, None)  # its second look, if any, was withdrawn by an undo
            return queries.suggestion_view(s, sugg.id)
    except ConflictError as err:
        st.warning(md_escape(err))
        return None


def _class_filter(ds: state.DatasetRef) -> int | None:
    url = state.get_store().url
    options: dict[int | None, str] = {None: "All classes"}
    for cid, key, name, n in cached.pending_classes(url, ds.id):
        options[cid] = f"{name} ({key}) — {n} pending"
    if st.session_state.get(CLASS_KEY) not in options:
        st.session_state.pop(CLASS_KEY, None)
    choice: int | None = st.selectbox(
        "Class", list(options), format_func=options.__getitem__, key=CLASS_KEY, label_visibility="collapsed"
    )
    return choice


def _labels(image_id: int, asked: int) -> None:
    """The image's labels, leaving out the class asked about (``asked``): a suggestion's cell is
    unknown, and a second look's cell holds the first decision, which must not show."""
    with state.get_store().read() as s:
        il = image_labels(s, image_id)
    positives = [c.display_name for c in il.positives if c.id != asked]
    negatives = [c.display_name for c in il.negatives if c.id != asked]
    st.markdown(f"**Positive ({len(positives)}):** {names_line(positives)}")
    st.markdown(f"**Negative ({len(negatives)}):** {names_line(negatives)}")
    st.markdown(f"**Unknown:** {il.n_classes - len(positives) - len(negatives)} of {il.n_classes} classes")


def _card(ds: state.DatasetRef, view: queries.SuggestionView) -> None:
    with st.container(key=f"review-card-{view.id}"):
        left, right = st.columns([3, 2], gap="large")
        with right:  # the buttons (bound to this suggestion) are sent before the image
            st.markdown(f"## Is there a {md_escape(view.class_name)}?")
            st.caption(
                f"class {md_escape(view.class_key)} · image {md_escape(view.external_id)} · "
                f"suggestion {view.id}"
            )
            action_bar(ACTIONS[:3], _on_action, args=(view.id,))
            action_bar(ACTIONS[3:], _on_action, args=(view.id,), widths=SECOND_ROW_WIDTHS)
        with left:
            show_image(ds.image_root, view.path, max_px=LARGE_PX)
        with right:
            # No model probability or score here: a random audit cell would give itself away by
            # its low score, and a number next to the image anchors the decision. The class prior
            # is a property of the class, the same for every cell of it.
            st.metric(
                "Class prior",
                "—" if view.prior is None else f"{view.prior:.3f}",
                help="Estimated share of images that show this class.",
            )
            _labels(view.image_id, view.class_id)
            st.page_link(
                "views/image.py",
                label="Open on the Image page",
                icon=":material/open_in_new:",
                query_params={"image": view.external_id},
            )


def render() -> None:
    state.show_flashes()
    ds = state.require_dataset()
    who = state.require_annotator("review")
    identity = state.identity()
    second_looks = identity is not None and not identity.single_person
    top = st.columns([3, 2])
    with top[1]:
        class_id = _class_filter(ds)
    rv = _review_state(ds.id, class_id, who, second_looks)
    view = _current(rv)
    pending = cached.pending_count(state.get_store().url, ds.id, class_id)
    if second_looks:  # counted with the rest: nothing tells a second look apart
        with state.get_store().read() as s:
            pending += waiting_count(s, ds.id, who, class_id)
    queue = f"{cached.PENDING_CAP:,}+" if pending > cached.PENDING_CAP else f"{pending:,}"
    top[0].caption(
        f"Reviewing **{md_escape(ds.name)}** as **{md_escape(who)}** · {queue} pending · "
        f"{len(rv.decided)} decided in this session"
    )
    if view is None:
        st.success("No pending suggestions here. Start a new cycle on the Train page to get more.")
        action_bar(ACTIONS[3:], _on_action, args=(None,), widths=SECOND_ROW_WIDTHS)
    else:
        _card(ds, view)


render()
