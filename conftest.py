"""Repository-wide pytest settings that pyproject.toml cannot hold.

``--doctest-modules`` (pyproject) imports every module a run walks into. From the repository root
that would include the Streamlit pages (they render on import), Alembic's ``env.py`` (it needs
Alembic's context) and the benchmark and script entry points; those are not walked. A run that
selects no test keeps pytest's exit status 5: running nothing is a failure, not a clean run.
"""

from __future__ import annotations

collect_ignore = ["app", "bench", "migrations", "scripts", "docs"]
