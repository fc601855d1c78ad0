"""Cluster profiles: where and how jobs go (partition, account, GPUs, set-up lines).

A profile is a small YAML file (slurm/profiles/default.yaml is the CPU-only default). Every
value that ends up in a rendered script is checked here, at load time, with the field name
in the error: values for `#SBATCH` lines must be plain tokens (sbatch does not parse shell
quoting), values for shell lines are later passed through `shlex.quote`. `setup` lines are
the one exception: they are shell commands by intent (module load, source), written by the
profile's author, so they are only checked to be single lines.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from contract.errors import ConfigError

PROFILES = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = PROFILES / "default.yaml"

TOKEN = re.compile(r"^[A-Za-z0-9_.+-]+$")
LIST_TOKEN = re.compile(r"^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$")
CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,&|*()\[\]:-]+$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SBATCH_OPTION = re.compile(r"^--[a-z][a-z0-9-]*(=[A-Za-z0-9_.,:/@%&|+=*()\[\]-]+)?$")
GPU_OPTIONS = ("gres", "gpus-per-node")
# options the renderer owns: setting them in extra_sbatch would silently fight the renderer
OWNED = ("--array", "--output", "--error", "--open-mode", "--signal", "--requeue",
         "--dependency", "--job-name", "--nodes", "--ntasks-per-node", "--cpus-per-task",
         "--time", "--mem", "--partition", "--account", "--qos", "--constraint", "--gres",
         "--gpus-per-node", "--parsable", "--kill-on-invalid-dep")


def _fail(name: str, value: Any, fix: str) -> None:
    raise ConfigError(f"profile field {name}={value!r} is invalid: {fix}")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(name, value, "use a whole number >= 1")
    return value


def _token(name: str, value: Any, pattern: re.Pattern = TOKEN) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        _fail(name, value, "use letters, digits and . _ + - only (no spaces or quotes)")
    return value


def _one_line(name: str, value: Any) -> str:
    if not isinstance(value, str) or "\n" in value or "\r" in value or "\0" in value:
        _fail(name, value, "use a single line of text")
    return value


@dataclass
class GpuSpec:
    option: str = "gres"
    type: Optional[str] = None

    def sbatch_lines(self, count: int) -> list[str]:
        """The GPU request for `count` devices per node."""
        if self.option == "gres":
            return [f"--gres=gpu:{self.type + ':' if self.type else ''}{count}"]
        return [f"--gpus-per-node={self.type + ':' if self.type else ''}{count}"]


@dataclass
class FinishSpec:
    cpus: int = 1
    mem_gb: int = 4
    time_min: int = 30
    report: bool = True


@dataclass
class Profile:
    partition: Optional[str] = None
    cpu_partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    gpus: Optional[GpuSpec] = None
    setup: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    python: Optional[str] = None
    throttle: int = 4
    signal_s: int = 120
    mem: bool = True
    transfer_time_min: int = 60
    finish: FinishSpec = field(default_factory=FinishSpec)
    extra_sbatch: list = field(default_factory=list)
    source: str = "<defaults>"

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable


def _gpus(value: Any) -> Optional[GpuSpec]:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"option", "type"}:
        _fail("gpus", value, "use null (CPU only) or {option: gres|gpus-per-node, type: NAME}")
    spec = GpuSpec(**value)
    if spec.option not in GPU_OPTIONS:
        _fail("gpus.option", spec.option, f"use one of {', '.join(GPU_OPTIONS)}")
    _token("gpus.type", spec.type)
    return spec


def _finish(value: Any) -> FinishSpec:
    if isinstance(value, FinishSpec):
        value = dict(value.__dict__)
    value = value or {}
    known = {f.name for f in fields(FinishSpec)}
    if not isinstance(value, dict) or set(value) - known:
        _fail("finish", value, f"use a mapping of {', '.join(sorted(known))}")
    spec = FinishSpec(**value)
    for name in ("cpus", "mem_gb", "time_min"):
        _positive_int(f"finish.{name}", getattr(spec, name))
    if not isinstance(spec.report, bool):
        _fail("finish.report", spec.report, "use true or false")
    return spec


def parse_profile(raw: dict, source: str = "<mapping>") -> Profile:
    """Validate a profile mapping; unknown fields are errors naming the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a profile is a YAML mapping")
    known = {f.name for f in fields(Profile)} - {"source"}
    for key in raw:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = (f": did you mean {close[0]!r}?" if close
                    else f" (known: {', '.join(sorted(known))})")
            raise ConfigError(f"{source}: unknown profile field {key!r}{hint}")
    p = Profile(**{k: v for k, v in raw.items()}, source=source)
    p.partition = _token("partition", p.partition, LIST_TOKEN)
    p.cpu_partition = _token("cpu_partition", p.cpu_partition, LIST_TOKEN)
    p.account = _token("account", p.account)
    p.qos = _token("qos", p.qos)
    p.constraint = _token("constraint", p.constraint, CONSTRAINT)
    p.gpus = _gpus(p.gpus)
    if not isinstance(p.setup, list):
        _fail("setup", p.setup, "use a list of shell lines")
    p.setup = [_one_line(f"setup[{i}]", line) for i, line in enumerate(p.setup)]
    if not isinstance(p.env, dict):
        _fail("env", p.env, "use a mapping NAME: value")
    env = {}
    for key, value in p.env.items():
        if not isinstance(key, str) or not ENV_KEY.match(key):
            _fail(f"env.{key}", key, "use a shell variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if isinstance(value, (dict, list)) or value is None:
            _fail(f"env.{key}", value, "use a string or number")
        env[key] = _one_line(f"env.{key}", str(value))
    p.env = env
    if p.python is not None:
        _one_line("python", p.python)
    _positive_int("throttle", p.throttle)
    _positive_int("signal_s", p.signal_s)
    _positive_int("transfer_time_min", p.transfer_time_min)
    if not isinstance(p.mem, bool):
        _fail("mem", p.mem, "use true or false")
    p.finish = _finish(p.finish)
    if not isinstance(p.extra_sbatch, list):
        _fail("extra_sbatch", p.extra_sbatch, "use a list of --option[=value] strings")
    for i, opt in enumerate(p.extra_sbatch):
        if not isinstance(opt, str) or not SBATCH_OPTION.match(opt):
            _fail(f"extra_sbatch[{i}]", opt, "use --option or --option=value with no spaces "
                  "or quotes")
        if opt.split("=", 1)[0] in OWNED:
            _fail(f"extra_sbatch[{i}]", opt, "the renderer sets this option itself; use the "
                  "profile field or the run's resources instead")
    return p


def load_profile(path: Union[str, Path, None] = None) -> Profile:
    """The profile at `path` (a file, or a name in slurm/profiles/), else the default."""
    if path is None:
        path = DEFAULT_PROFILE
    path = Path(path)
    if not path.is_file() and (PROFILES / f"{path}.yaml").is_file():
        path = PROFILES / f"{path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"profile {path} not found (built-in: "
                                f"{', '.join(p.stem for p in sorted(PROFILES.glob('*.yaml')))})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_profile(raw, str(path))
