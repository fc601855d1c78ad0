"""What decides each of the paper's six findings: a typed config, fixed before the runs.

`configs/findings.yaml` names, per finding, the rows it compares (target, protocol, the
axis values), the statistic and the threshold its 95% interval must clear. Writing these
down before the final runs is what makes a verdict a test rather than a reading of the
plots. `load_findings_config` is strict: an unknown or mistyped field is a one-line
`FindingsConfigError` naming the field, the value and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, cast

import yaml

from contract import versions
from contract.config import PROTOCOLS, RESAMPLES, from_dict
from contract.errors import ConfigError
from contract.target_spec import SYNTHETIC

SCHEMA_VERSION = versions.FINDINGS_CONFIG  # contract/versions.py
DEFAULT_PATH = (Path(__file__).parent / "findings.yaml").resolve()  # -> configs/findings.yaml
"""The shipped config (a checkout's ``configs/findings.yaml``); absent in a bare install,
where the dataclass defaults below (the same values, a test checks it) are used."""


class FindingsConfigError(ConfigError):
    """A bad findings config: one line naming the field, the value and the fix."""


MAX_BOOT = 100_000
"""Bootstrap replicates at most: each replicate holds a draw of every seed, and more than
this changes no interval's printed digits while a typo (2e9) would exhaust the memory."""
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # contract.target_spec' rule


def _check(ok: bool, path: str, value, fix: str) -> None:
    if not ok:
        raise FindingsConfigError(f"{path}={value!r} is invalid: {fix}")


def _did_you_mean(value, choices) -> str:
    match = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f": did you mean {match[0]!r}?" if match else ""


def _one_of(path: str, value, choices) -> None:
    """A value from a fixed set: a typo names the set and the closest value (a protocol
    that is not one would otherwise silently match no run: 'not enough runs')."""
    _check(value in choices, path, value, f"use one of {', '.join(choices)}"
           + _did_you_mean(value, choices))


def _vocab(path: str, value: str, special: tuple = ()) -> None:
    """A vocab value as results.parquet writes it: `all`, a size K, `matched:<target>`
    (or one of `special`: `largest`, `smallest`)."""
    ok = (value in ("all", *special) or (value.isdigit() and int(value) >= 1)
          or (value.startswith("matched:") and len(value) > len("matched:"))
          or (value.startswith("random:") and value[len("random:"):].isdigit()))
    choices = ("all", *special, "matched:coarse")
    _check(ok, path, value, f"use {', '.join(('all', *special))}, a vocabulary size K or "
           "matched:<target>, random:K" + _did_you_mean(value, choices))


def _target(path: str, value) -> None:
    _check(isinstance(value, str) and bool(_TARGET_NAME.match(value)), path, value,
           f"use a target's name: {', '.join(SYNTHETIC)} or the name of one of the sweep's "
           "own targets" + _did_you_mean(value, SYNTHETIC))


@dataclass
class Baseline:
    """The main grid every finding compares within: each finding frees only its own axis
    (vocabulary for 3, resampling for 4, label noise for 5) and holds the others here."""

    vocab: Union[int, str] = "all"
    resample: str = "natural"
    label_noise: float = 0.0

    def __post_init__(self) -> None:
        self.vocab = str(self.vocab)  # a vocab value as results.parquet writes it: text
        _vocab("baseline.vocab", self.vocab)
        _one_of("baseline.resample", self.resample, RESAMPLES)


@dataclass
class LogLinear:
    """1. top1 = a + b log10(images) per width: b's interval above ``min_slope`` for every
    width (seeds resampled; every seed keeps all its sizes)."""

    target: str = "fine"
    protocol: str = "linear"
    min_sizes: int = 3
    """Distinct dataset sizes a width needs before its slope is judged."""
    min_slope: float = 0.0
    """Points per 10x images the lower bound of b must exceed."""

    def __post_init__(self) -> None:
        _target("loglinear.target", self.target)
        _one_of("loglinear.protocol", self.protocol, PROTOCOLS)
        _check(self.min_sizes >= 2, "loglinear.min_sizes", self.min_sizes, "use at least 2")


@dataclass
class Wider:
    """2. b(widest) - b(narrowest): its interval above ``min_difference``."""

    target: str = "fine"
    protocol: str = "linear"
    min_difference: float = 0.0

    def __post_init__(self) -> None:
        _target("wider.target", self.target)
        _one_of("wider.protocol", self.protocol, PROTOCOLS)


@dataclass
class Vocabulary:
    """3. On ``fine_target`` the ``large`` vocabulary beats the ``small`` one (interval of
    top1(large) - top1(small) above ``min_gain``); on ``coarse_target`` the ``matched``
    vocabulary is at least as good as ``full``: the lower bound of top1(matched) -
    top1(full) is above ``-tolerance`` points."""

    fine_target: str = "fine"
    coarse_target: str = "coarse"
    protocol: str = "linear"
    large: Union[int, str] = "largest"
    """A vocab value, or ``largest``: ``all`` if run, else the biggest integer K."""
    small: Union[int, str] = "smallest"
    """A vocab value, or ``smallest``: the smallest integer K run."""
    min_gain: float = 0.0
    matched: Union[int, str] = "matched:coarse"
    full: Union[int, str] = "all"
    tolerance: float = 1.0
    """Points of top-1 the matched vocabulary may lose and still count as at least as good."""
    control: str = "random"
    """The size control of ``small``: ``random`` (= ``random:K`` for small's K), a vocab
    value, or ``none``. When it was run, the judged fine gain is large - control (more tags,
    whichever they are) and control - small (which tags) is shown beside it."""

    def __post_init__(self) -> None:
        self.control = str(self.control)
        _vocab("vocabulary.control", self.control, ("random", "none"))
        for name in ("large", "small", "matched", "full"):  # vocab values: text, like results
            setattr(self, name, str(getattr(self, name)))
        _vocab("vocabulary.large", str(self.large), ("largest",))
        _vocab("vocabulary.small", str(self.small), ("smallest",))
        _vocab("vocabulary.matched", str(self.matched))
        _vocab("vocabulary.full", str(self.full))
        _target("vocabulary.fine_target", self.fine_target)
        _target("vocabulary.coarse_target", self.coarse_target)
        _one_of("vocabulary.protocol", self.protocol, PROTOCOLS)
        _check(self.tolerance >= 0, "vocabulary.tolerance", self.tolerance, "use points >= 0")


@dataclass
class Resampling:
    """4. top1(scheme) - top1(``baseline``) on ``target``: holds when the interval of at
    least one of ``schemes`` is above ``min_gain``."""

    target: str = "fine"
    protocol: str = "linear"
    schemes: list = field(default_factory=lambda: ["sqrt", "uniform"])
    baseline: str = "natural"
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        _check(len(self.schemes) >= 1 and all(isinstance(s, str) for s in self.schemes),
               "resampling.schemes", self.schemes, "name at least one scheme, e.g. [sqrt]")
        for scheme in self.schemes:
            _one_of("resampling.schemes", scheme, RESAMPLES)
        _one_of("resampling.baseline", self.baseline, RESAMPLES)
        _target("resampling.target", self.target)
        _one_of("resampling.protocol", self.protocol, PROTOCOLS)


@dataclass
class LabelNoise:
    """5. cost(p) = top1(clean) - top1(p), paired. Holds when 10% 'costs little' (the upper
    bound of cost(``low``), in images or points as ``little_in`` says, is below the
    threshold) AND cost(``high``) - cost(``low``) has its interval above 0."""

    target: str = "fine"
    protocol: str = "linear"
    clean: float = 0.0
    low: float = 0.1
    high: float = 0.25
    little_in: str = "images"
    """How 'costs little' is judged: ``images`` (the share of pretraining images whose loss
    would cost as much, read off the slope of finding 1 at the noise runs' width) or
    ``points`` (top-1 points). Both are shown; this one decides."""
    little: float = 3.0
    """Points of top-1: under ``points``, 'costs little' means the whole interval of
    cost(low) is below it."""
    little_images: float = 0.5
    """Share of pretraining images: under ``images``, 'costs little' means the whole interval
    of the equivalent share lost is below it (0.5: cheaper than halving the images)."""

    def __post_init__(self) -> None:
        _target("label_noise.target", self.target)
        _one_of("label_noise.protocol", self.protocol, PROTOCOLS)
        _check(self.clean < self.low < self.high, "label_noise.low", self.low,
               "use clean < low < high (e.g. 0.0, 0.1, 0.25)")
        _check(self.little_in in ("images", "points"), "label_noise.little_in",
               self.little_in, "use images or points")
        _check(self.little > 0, "label_noise.little", self.little, "use points > 0")
        _check(0 < self.little_images < 1, "label_noise.little_images", self.little_images,
               "use a share of the images in (0, 1), e.g. 0.5")


@dataclass
class Finetune:
    """6. top1(``better``) - top1(``baseline``) protocol on the same trunk and ``target``:
    its interval above ``min_gain``."""

    target: str = "novel"
    better: str = "finetune"
    baseline: str = "linear"
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        _target("finetune.target", self.target)
        _one_of("finetune.better", self.better, PROTOCOLS)
        _one_of("finetune.baseline", self.baseline, PROTOCOLS)


@dataclass
class FindingsConfig:
    """The statistic and threshold behind every verdict (see `analysis.findings`)."""

    schema_version: int = SCHEMA_VERSION
    level: float = 0.95
    """Two-sided level of every interval."""
    n_boot: int = 2000
    """Bootstrap replicates; each draws the seeds with replacement."""
    boot_seed: int = 0
    min_seeds: int = 3
    """Seeds with complete data a comparison needs; fewer is 'not enough runs'."""
    baseline: Baseline = field(default_factory=Baseline)
    loglinear: LogLinear = field(default_factory=LogLinear)
    wider: Wider = field(default_factory=Wider)
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    resampling: Resampling = field(default_factory=Resampling)
    label_noise: LabelNoise = field(default_factory=LabelNoise)
    finetune: Finetune = field(default_factory=Finetune)

    def __post_init__(self) -> None:
        _check(self.schema_version <= SCHEMA_VERSION, "schema_version", self.schema_version,
               f"this wsl-scaling reads findings configs up to version {SCHEMA_VERSION}")
        _check(0.5 <= self.level < 1, "level", self.level, "use a level in [0.5, 1), e.g. 0.95")
        _check(100 <= self.n_boot <= MAX_BOOT, "n_boot", self.n_boot,
               f"use 100 to {MAX_BOOT} replicates")
        _check(self.min_seeds >= 2, "min_seeds", self.min_seeds,
               "use at least 2 (an interval over seeds needs two)")


def load_findings_config(source: str | os.PathLike | dict | FindingsConfig | None = None
                         ) -> FindingsConfig:
    """A `FindingsConfig` from a YAML path, a mapping, or None (`DEFAULT_PATH` when it
    exists, else the built-in defaults)."""
    if isinstance(source, FindingsConfig):
        return source
    if source is None:
        source = DEFAULT_PATH if DEFAULT_PATH.is_file() else {}
    if not isinstance(source, dict):
        path = Path(source)
        try:
            source = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FindingsConfigError(f"{path}: no such findings config") from None
        except UnicodeDecodeError as e:
            raise FindingsConfigError(f"{path} is not UTF-8 text (byte {e.start}): save it "
                                      "as UTF-8") from None
        except yaml.YAMLError as e:
            first = str(e).splitlines()[0]
            raise FindingsConfigError(f"{path}: not valid YAML ({first})") from None
        if source is None:  # an empty file: a truncated copy must not pass for the defaults
            raise FindingsConfigError(
                f"{path} is empty: write the fields to change (e.g. `min_seeds: 3`), or "
                f"leave out --findings for the shipped {DEFAULT_PATH.name}")
    try:  # the run config's strict reader: one rule for every typed config
        return from_dict(FindingsConfig, cast(dict, source), root="findings config")
    except FindingsConfigError:
        raise
    except ConfigError as exc:
        raise FindingsConfigError(str(exc)) from None


def check_targets(config: FindingsConfig, targets) -> None:
    """Refuse (one line) a target the config names that is neither a synthetic target nor
    one of ``targets`` (those the sweep ran): a typo (`imagenet` for `novel`) would
    otherwise silently be 'not enough runs'. A synthetic target the sweep did not run is
    fine (that finding is then not decided)."""
    known = sorted({str(t) for t in targets if isinstance(t, str)})
    for section, field_ in (("loglinear", "target"), ("wider", "target"),
                            ("vocabulary", "fine_target"), ("vocabulary", "coarse_target"),
                            ("resampling", "target"), ("label_noise", "target"),
                            ("finetune", "target")):
        value = getattr(getattr(config, section), field_)
        if value not in SYNTHETIC and value not in known:
            choices = sorted({*SYNTHETIC, *known})
            _check(False, f"{section}.{field_}", value,
                   f"the sweep has no such target: use one of {', '.join(choices)}"
                   + _did_you_mean(value, choices))
