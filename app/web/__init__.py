"""The Streamlit browser app: ``labelmend serve`` runs ``app/web/main.py``, a router over ``views/``.

The page scripts live in ``views/``, not ``pages/``: Streamlit treats a ``pages/`` folder next to
the entrypoint as a legacy (v1) multipage app and then runs page files without the entrypoint,
so the router, sidebar and ``st.navigation`` sections would be skipped.

Pages are thin: they read through ``db`` queries (:mod:`db.queries` holds the pages' own reads,
:mod:`app.web.cached` caches some), act through ``db.review`` / ``db.labels`` / ``db.jobs``, and
render. Every decision is written in its own transaction from a widget callback, so nothing waits
in ``st.session_state``.
"""

from pathlib import Path

MAIN_SCRIPT = Path(__file__).with_name("main.py")
#: Uploads are for small files (``--server.maxUploadSize``); bigger ones are imported by server path.
MAX_UPLOAD_MB = 50

__all__ = ["MAIN_SCRIPT", "MAX_UPLOAD_MB"]
