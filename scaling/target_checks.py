"""What `scaling sweep` checks of a run's transfer targets before any run starts: user
target folders exist with two classes and both splits, synthetic targets of a real source
have a copy of the world, and every few-shot k can be drawn for every class.

Its own module (contract and data only), so the sweep reads it without importing the
transfer and fine-tuning engine.
"""

from __future__ import annotations

from contract.config import RunConfig
from contract.errors import ConfigError


def validate_targets(config: RunConfig) -> None:
    """What can be checked before any run starts (sweep time): user target folders exist,
    have two classes and both splits; synthetic targets of a real source need a copy of the
    world. A one-line ConfigError naming the target otherwise."""
    from contract.target_spec import parse_target, parse_targets
    from data.targets import check_target

    specs = parse_targets(config.transfer.targets)
    if config.data.supervised:
        specs.append(parse_target(config.data.supervised, "data.supervised"))
    for spec in specs:
        if spec.synthetic and config.data.source != "synthetic":
            from data.sources import check_materialized_world

            check_materialized_world(config.data)
        check_target(spec)
    if "fewshot" in config.transfer.protocols:
        for spec in parse_targets(config.transfer.targets):
            _check_shots(config, spec)


def _check_shots(config: RunConfig, spec) -> None:
    """Refuse a k of `transfer.fewshot_shots` that the target's train split cannot give
    every class (a k-shot probe of fewer images would be reported under the wrong k)."""
    from data.targets import train_class_counts

    tc = config.transfer
    counts, available = train_class_counts(config.data, config.model.image_size, spec,
                                           tc.train_images)
    most = min(counts)
    too_many = [k for k in tc.fewshot_shots if k > most]
    if not too_many:
        return
    fits = [k for k in tc.fewshot_shots if k <= most]
    fixes = [f"use shots of at most {most}" + (f" (e.g. {fits})" if fits else "")] \
        if most else []
    need = max(too_many)
    if spec.synthetic:
        fixes.append(f"raise transfer.train_images to {need * len(counts)}")
    elif tc.train_images < available:
        uncapped, _ = train_class_counts(config.data, config.model.image_size, spec, available)
        if min(uncapped) >= need:
            fixes.append(f"raise transfer.train_images to {available} (all its train images)")
    if not fixes:
        fixes.append("give every class train images")
    fix = ", or ".join(fixes)
    raise ConfigError(f"transfer.fewshot_shots={list(tc.fewshot_shots)} is invalid for target "
                      f"{spec.name!r}: its train split gives at most {most} images in its "
                      f"smallest class (transfer.train_images={tc.train_images} over "
                      f"{len(counts)} classes), fewer than k={need}: {fix}")
