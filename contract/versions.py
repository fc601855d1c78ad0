"""Every file format's schema version, in one place (docs/design.md: "Every file format
carries a `schema_version` so later versions can still read older files").

A reader refuses a file whose version is newer than the one here (guessing at its meaning
would give wrong numbers) and reads older ones. Bump a format's number here, and only
here, when its meaning changes, and teach its reader the old one.
"""

from __future__ import annotations

RUN_CONFIG = 1
"""`runs/<run_id>/config.yaml` (contract.config.RunConfig)."""
RUN_FILES = 1
"""The run folder's JSON files: state.json, provenance.json, memory.json,
transfer/<target>__<protocol>.json (contract.runfolder, contract.runfolder)."""
CHECKPOINT_MARKER = 1
"""`checkpoints/<step>/COMPLETE` (scaling.checkpoint)."""
LOADER_STATE = 1
"""The resumable loader's position inside a checkpoint (data.loader)."""
RESULTS = 1
"""`<sweep>/results.parquet` and the report's fits.json / findings.json (analysis)."""
FINDINGS_CONFIG = 1
"""A findings config (analysis.findings_config)."""
DATASET = 1
"""A materialized real-format copy: meta.json, synonyms.json, vocab.json (data.materialize,
read by data.sources)."""
DEDUP = 1
"""`dedup/<pretraining set>__<target>.json` (data.dedup)."""


def newer_than_known(version, known: int) -> bool:
    """True when a file's `schema_version` is an integer newer than this code reads."""
    return isinstance(version, int) and not isinstance(version, bool) and version > known
