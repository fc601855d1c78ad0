"""The torch-free contract layer: run-folder files, config dataclasses, errors (docs/design.md)."""
