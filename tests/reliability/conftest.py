"""tests/reliability: each issue-11 item as a test that fails on the code before its fix.

The engine's tiny configs (tests/helpers/engine.py) and the Slurm helpers
(tests/helpers/slurm_runs.py) are shared helpers, imported as `tests.helpers.*`."""
