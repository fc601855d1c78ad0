"""wsl-scaling: sweep -> train -> transfer -> collect -> report, one step per package.

Everything here is importable without torch; each function imports its engine on call.
"""

from contract.config import RunConfig, load_run_config
from scaling.api import (
                         collect,
                         demo,
                         expand_sweep,
                         fit,
                         report,
                         run,
                         run_local,
                         status,
                         sweep,
                         train,
                         transfer,
)
from scaling.errors import ConfigError, RunError

__all__ = ["RunConfig", "load_run_config", "ConfigError", "RunError", "expand_sweep", "sweep",
           "run", "run_local", "train", "transfer", "status", "collect", "fit", "report",
           "demo"]
