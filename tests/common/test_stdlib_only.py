"""``common`` is the bottom layer: importing it pulls in nothing of ours and no third-party package."""

from __future__ import annotations

import subprocess
import sys


def test_common_imports_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "import common, common.atomic, common.choice, common.images, common.progress\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "bad = sorted(roots & {'app', 'core', 'db', 'bench', 'numpy', 'torch', 'PIL', 'sqlalchemy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
