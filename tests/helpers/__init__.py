"""Helpers shared by more than one test folder.

- engine: the tiny run config (TINY), run folders, `scaling train` and torchrun launchers.
- slurm_runs: tiny sweeps written straight to disk, the CLI as a subprocess, Slurm polling.
"""
