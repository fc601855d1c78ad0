"""tests/reliability: each issue-11 item as a test that fails on the code before its fix.

The engine's tiny configs (tests/scaling/engine_helpers.py) and the Slurm helpers
(tests/slurm/slurm_helpers.py) are shared from their folders."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "scaling", HERE.parent / "slurm"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
