"""The torch-free contract layer: run-folder files, config dataclasses, errors (docs/design.md).

Everything two steps of the flow agree on lives here, once: the file schema versions
(`versions`), atomic writes (`atomic`), the run folder's state.json phases, stale rule,
metrics.jsonl reader and run listing (`runfolder`), the user-error types (`errors`), the
run config dataclasses and their one reader (`config`, `world`, `targets`, `strategies`).
Stdlib and PyYAML only: `scaling`, `slurm`, `analysis` and `data` import it; it imports none
of them (an import-linter contract in pyproject.toml holds that).
"""
