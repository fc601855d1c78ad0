"""wsl-scaling: sweep -> train -> transfer -> collect -> report, one step per package.

Everything here is importable without torch; each function imports its engine on call.
"""

from contract.config import RunConfig, load_run_config
from contract.errors import ConfigError, RunError
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

__all__ = ["RunConfig", "load_run_config", "ConfigError", "RunError", "expand_sweep", "sweep",
           "run", "run_local", "train", "transfer", "status", "collect", "fit", "report",
           "demo"]
