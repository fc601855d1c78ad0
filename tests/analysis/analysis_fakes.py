"""The fabricated sweep builder now lives in `analysis.fakes` (the benchmark uses it too);
this name stays for older imports."""

from analysis.fakes import *  # noqa: F401,F403
from analysis.fakes import floor, make_sweep, true_a, true_b, true_top1  # noqa: F401
