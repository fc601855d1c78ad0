"""`scaling sweep`: a sweep file -> `<root>/<name>/runs/<run_id>/config.yaml` + manifest.csv.

The sweep file (docs/design.md) names a base config, fields `set` to one value for every run
(kept out of run ids), and axes; grids are crossed, `zip` groups move together, `grids`
adds more blocks over the same base, runs are de-duplicated by config hash. `replicates`
makes worlds replicates: replicate r trains on world ``worlds_from + r`` with init seed r
(one key ties both, run ids end in ``-r<r>``; a grid may give its own count). Every run
config is validated here, so a typo fails now, not on the cluster. Regenerating adds new
runs, never touches a `done` run, and refuses when the config of a run that is `done` or
has a checkpoint would change (a resumed run must train on the config its folder records).
A sweep folder belongs to one sweep file (`study.json`): a different file with the same
name is refused instead of merged.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import itertools
import json
import logging
from pathlib import Path
from typing import Any, Optional, Union

from contract.atomic import atomic_write_text
from contract.config import (
    RunConfig,
    check_field_path,
    closest,
    config_hash,
    dump_yaml,
    get_path,
    load_yaml,
    read_run_config,
    set_path,
    to_dict,
)
from contract.errors import ConfigError, UserError
from contract.runfolder import (
    SAFE_NAME,
    private_dir,
    read_json,
    read_manifest,
    read_state,
    write_json,
)

log = logging.getLogger(__name__)

SWEEP_KEYS = ("name", "description", "base", "set", "axes", "zip", "seeds", "replicates",
              "grids")
GRID_KEYS = ("axes", "zip", "replicates")
REPLICATE_KEYS = ("worlds_from", "count")
REPLICATE = "replicate"
"""The pseudo-axis of `replicates:`: replicate r sets ``data.seed`` to worlds_from + r and
``seed`` to r (one key ties the world and the init seed; runs are named ``-r<r>``)."""
TIED = ("seed", "data.seed")
MAX_NAME = 100  # sweep names and run ids name folders (255 bytes at most) and Slurm jobs
# Short prefixes for readable run ids (others use the field's last name).
ABBREV = {"model.width_per_group": "w", "data.images": "n", "data.vocab": "v", "seed": "s",
          "model.depth": "d", "model.cardinality": "g", "data.resample": "r",
          "data.label_noise": "ln", "data.label_noise_from": "lnf-",
          "optim.images_seen": "i", "model.base_width": "b",
          "shard.strategy": "", "precision": "", "data.seed": "world",
          "transfer.targets": "t", "data.supervised": "sup-", REPLICATE: "r"}


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            text = f"{value / factor:.3g}"
            return text + suffix
    return f"{value:g}"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return _si(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    text = str(value).replace("matched:", "m-")
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)


def make_run_id(point: dict, order: list[str]) -> str:
    parts = []
    for key in order:
        if key in point:
            prefix = ABBREV.get(key, key.rsplit(".", 1)[-1] + "_")
            parts.append(prefix + format_value(point[key]))
    return "-".join(parts) or "run"


def _grid_points(axes: dict, zipped: list, where: str) -> list[dict]:
    if not isinstance(axes, dict):
        raise ConfigError(f"{where}.axes={axes!r} is invalid: use a mapping field -> list")
    blocks: list[list[dict]] = []
    for key, values in axes.items():
        check_field_path(key)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.axes.{key}={values!r} is invalid: use a non-empty list")
        blocks.append([{key: v} for v in values])
    for i, group in enumerate(zipped or []):
        if not isinstance(group, dict) or not group:
            raise ConfigError(f"{where}.zip[{i}]={group!r} is invalid: use a mapping field -> list")
        lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in group.items()}
        for key in group:
            check_field_path(key)
        if len(set(lengths.values())) != 1 or -1 in lengths.values():
            raise ConfigError(f"{where}.zip[{i}] lists have lengths {lengths}: zipped axes "
                              "move together, so give every list the same length")
        keys = list(group)
        blocks.append([dict(zip(keys, vals)) for vals in zip(*(group[k] for k in keys))])
    points = []
    for combo in itertools.product(*blocks):
        point: dict = {}
        for part in combo:
            point.update(part)
        points.append(point)
    return points


def _with_set(base: dict, fixed, axes: list[str]) -> dict:
    """The base with the sweep's `set` fields applied: one value for every run, so they
    do not name runs (an axis with one value does)."""
    if fixed is None:
        return base
    if not isinstance(fixed, dict):
        raise ConfigError(f"set={fixed!r} is invalid: use a mapping field -> value "
                          "(one value for every run)")
    fixed_base = copy.deepcopy(base)
    for key, value in fixed.items():
        if key == "name":
            raise ConfigError("set.name is invalid: every run is named by its axis values; "
                              "name the sweep with the top-level `name`")
        try:
            check_field_path(str(key))
        except ConfigError as exc:
            raise ConfigError(f"set.{key}: {exc}") from None
        if key == "seed" and key in axes:
            raise ConfigError("set.seed and `seeds` (or a seed axis) both give the run seed: "
                              "keep one")
        if key in axes:
            raise ConfigError(f"set.{key} is also an axis of this sweep: give it once, as an "
                              "axis (its values vary and name runs) or in set (one value "
                              "for every run)")
        set_path(fixed_base, key, value)
    # a bad set value is the sweep's, not one run's: name it when the base alone is valid
    try:
        read_run_config({**fixed_base, "name": "set-check"})
    except ConfigError as exc:
        try:
            read_run_config({**base, "name": "set-check"})
        except ConfigError:
            pass  # the base needs the axes to be valid: the runs will say what is wrong
        else:
            raise ConfigError(f"set: {exc}") from None
    return fixed_base


def _check_keys(mapping: dict, allowed, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"unknown key {where}{key!r} in the sweep file: did you mean "
                              f"{closest(str(key), allowed)!r}?")


def load_sweep(sweep_file: Union[str, Path]) -> dict:
    sweep_file = Path(sweep_file)
    spec = load_yaml(sweep_file)
    _check_keys(spec, SWEEP_KEYS, "")
    if not spec.get("name") or not isinstance(spec["name"], str):
        raise ConfigError(f"name={spec.get('name')!r} is invalid: give the sweep a name "
                          "(its folder name)")
    if len(spec["name"]) > MAX_NAME:
        raise ConfigError(f"name={spec['name'][:20] + '...'!r} is invalid: use at most "
                          f"{MAX_NAME} characters (it is {len(spec['name'])}; it names a "
                          "folder and Slurm jobs)")
    if not SAFE_NAME.match(spec["name"]):
        raise ConfigError(f"name={spec['name']!r} is invalid: use letters, digits and . _ + - "
                          "(a folder name, not starting with a dot: no slashes, spaces or "
                          "shell characters)")
    return spec


def resolve_base(base, sweep_file: Path) -> dict:
    """The base run config every run starts from. Required and not empty: without one
    every run would silently be the config's defaults, the paper's ResNeXt-101 at 224 px,
    whatever memory the runs ask for."""
    if base is None or base == {}:
        what = "base is missing" if base is None else "base={} is invalid"
        raise ConfigError(f"{what}: a sweep file needs a base run config, e.g. "
                          "`base: configs/base-cpu.yaml` (a file, next to the sweep file or "
                          "from the current folder) or an inline mapping")
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if isinstance(base, str):
        for candidate in (sweep_file.parent / base, Path(base)):
            if candidate.is_file():
                return load_yaml(candidate)
        raise ConfigError(f"base={base!r} is invalid: no such file next to "
                          f"{sweep_file} or in the current folder")
    raise ConfigError(f"base={base!r} is invalid: use a path or an inline mapping")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _replicate_list(value, where: str) -> list[int]:
    """A replicate count (``6`` -> 0..5) or an explicit list of replicate numbers."""
    if _is_int(value) and value >= 1:
        return list(range(value))
    if (isinstance(value, list) and value and all(_is_int(r) and r >= 0 for r in value)
            and len(set(value)) == len(value)):
        return list(value)
    raise ConfigError(f"{where}={value!r} is invalid: use a count of replicates (e.g. 6 for "
                      "replicates 0-5) or a list of distinct replicate numbers >= 0")


def _replicates(spec: dict, grid_specs: list) -> Optional[tuple[int, list[int]]]:
    """(worlds_from, the top level's replicate numbers) of `replicates:`, or None without
    it; refuses every other way of giving the run seed or the world, since replicate r
    fixes both (seed r, data.seed worlds_from + r)."""
    top = spec.get("replicates")
    if top is None:
        for i, grid in enumerate(grid_specs):
            if grid.get("replicates") is not None:
                raise ConfigError(f"grids[{i}].replicates needs the top-level `replicates: "
                                  "{worlds_from: W, count: N}` (W: the first world seed): "
                                  "add it")
        return None
    if not isinstance(top, dict):
        raise ConfigError(f"replicates={top!r} is invalid: use a mapping {{worlds_from: W, "
                          "count: N}} (replicate r trains on world W + r with seed r)")
    _check_keys(top, REPLICATE_KEYS, "replicates.")
    start = top.get("worlds_from")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ConfigError(f"replicates.worlds_from={start!r} is invalid: use the first world "
                          "seed (an integer >= 0; replicate r trains on world worlds_from + r)")
    if spec.get("seeds") is not None:
        raise ConfigError("seeds and replicates both give the run seed: keep one (replicate "
                          "r trains on world worlds_from + r with seed r)")
    given = spec.get("set")
    fixed: dict = given if isinstance(given, dict) else {}
    for key in TIED:
        if key in fixed:
            raise ConfigError(f"set.{key} and replicates both give {key}: keep one "
                              "(replicate r sets seed r and data.seed worlds_from + r)")
    for i, grid in enumerate([spec, *grid_specs]):
        where = "" if i == 0 else f"grids[{i - 1}]."
        axes_given = grid.get("axes")
        axes: dict = axes_given if isinstance(axes_given, dict) else {}
        zipped = [g for g in (grid.get("zip") or []) if isinstance(g, dict)]
        for key in list(axes) + [k for g in zipped for k in g]:
            if key in TIED:
                kind = "axes" if key in axes else "zip"
                raise ConfigError(f"{where}{kind} varies {key} and replicates gives it: keep "
                                  "one (replicate r sets seed r and data.seed worlds_from + "
                                  "r; a grid may give its own `replicates: N`)")
    return start, _replicate_list(top.get("count", 1), "replicates.count")


# long by design: grids x axes x zip x set x replicates, checked where they meet
def expand(spec: dict, base: dict) -> tuple[list[tuple[str, RunConfig, dict]], list[str]]:  # noqa: C901
    """All (run_id, config, axis point) of a sweep spec, de-duplicated by config hash."""
    grids, grid_specs = [], []
    if spec.get("axes") or spec.get("zip") or not spec.get("grids"):
        grids.append(({**(spec.get("axes") or {})}, spec.get("zip") or [], "sweep", None))
    for i, grid in enumerate(spec.get("grids") or []):
        if not isinstance(grid, dict):
            raise ConfigError(f"grids[{i}]={grid!r} is invalid: use a mapping with axes/zip")
        _check_keys(grid, GRID_KEYS, f"grids[{i}].")
        grid_specs.append(grid)
        grids.append((grid.get("axes") or {}, grid.get("zip") or [], f"grids[{i}]",
                      grid.get("replicates")))
    seeds = spec.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"seeds={seeds!r} is invalid: use a non-empty list of integers "
                          "(or leave seeds out for the base seed)")
    replicates = _replicates(spec, grid_specs)

    order: list[str] = []
    for axes, zipped, _, _ in grids:
        for key in list(axes) + [k for g in zipped for k in g]:
            if key not in order:
                order.append(key)
    if seeds is not None and "seed" not in order:
        order.append("seed")
    if replicates is not None:
        order.append(REPLICATE)
    base = _with_set(base, spec.get("set"), order)

    runs, seen_hash, seen_id = [], set(), {}
    for axes, zipped, where, own in grids:
        if replicates is None:
            extra = [{"seed": s} for s in seeds] if seeds is not None else [{}]
        else:
            numbers = replicates[1] if own is None else _replicate_list(
                own, f"{where}.replicates")
            extra = [{REPLICATE: r} for r in numbers]
        for point in _grid_points(axes, zipped, where):
            for more in extra:
                full = {**point, **more}
                data = copy.deepcopy(base)
                for key, value in full.items():
                    if key == REPLICATE and replicates is not None:
                        set_path(data, "seed", value)
                        set_path(data, "data.seed", replicates[0] + value)
                    else:
                        set_path(data, key, value)
                run_id = make_run_id(full, order)
                if len(run_id) > MAX_NAME:
                    raise ConfigError(f"run {run_id[:40]}...: its id would be {len(run_id)} "
                                      f"characters, more than {MAX_NAME}: shorten the axis "
                                      "values or use fewer axes")
                data["name"] = run_id
                try:
                    config = read_run_config(data)
                except ConfigError as exc:
                    raise ConfigError(f"run {run_id}: {exc}") from None
                digest = config_hash(config)
                if digest in seen_hash:
                    continue
                seen_hash.add(digest)
                if run_id in seen_id:
                    run_id = f"{run_id}-{digest[:6]}"
                    config.name = run_id
                seen_id[run_id] = digest
                runs.append((run_id, config, full))
    return runs, order


def first_difference(old: dict, new: dict, prefix: str = "") -> Optional[str]:
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, path + ".")
            if found:
                return found
        elif a != b:
            return f"{path}: {a!r} -> {b!r}"
    return None


def _num_classes(config: RunConfig) -> int:
    """Size of the run's hashtag vocabulary: it fixes the classifier head. The synthetic
    world knows it without rendering; a real source is scanned once (uncached, no pixels
    kept) since its vocabulary comes from its own tags."""
    from data.pretrain import build_pretrain_set, world_for
    from data.vocab import resolve_vocab

    if config.data.supervised:
        from data.targets import num_classes

        return num_classes(config.data, config.model.image_size, config.data.supervised)
    if config.data.source == "synthetic":
        world = world_for(config.data, config.model.image_size)
        return len(resolve_vocab(world, config.data.vocab))
    scan = dataclasses.replace(config.data, cache=False)
    return build_pretrain_set(scan, config.model.image_size).num_classes


def _check_targets(run_id: str, config: RunConfig, checked: set) -> None:
    """Look at the files of each target once per sweep (scaling.target_checks.validate_targets);
    a one-line ConfigError naming the run and the target otherwise."""
    from scaling.target_checks import validate_targets

    tc = config.transfer
    key = json.dumps([tc.targets, config.data.supervised, config.data.source,
                      config.data.path, config.data.seed, vars(config.data.world),
                      config.model.image_size, tc.train_images, tc.protocols,
                      tc.fewshot_shots], sort_keys=True, default=str)
    if key in checked:
        return
    try:
        validate_targets(config)
    except (ConfigError, OSError) as exc:
        raise ConfigError(f"run {run_id}: {' '.join(str(exc).split())}") from None
    checked.add(key)


def run_estimates(config: RunConfig, cache: dict, clock, check_host: bool = False) -> dict:
    """Manifest columns of one run; resolves `shard.strategy: auto` in `config` (in place)
    to the strategy and nodes x devices the memory estimator picks (scaling/memory.py);
    `clock` (a scaling.walltime.Estimator) times it on this host. With `check_host` (at
    sweep), a run whose node cannot hold it is refused."""
    from scaling import memory
    from scaling.recipe import model_kwargs

    classes = _num_classes(config)
    key = (config.model.arch, tuple(sorted(model_kwargs(config).items())), classes,
           config.model.image_size)
    if key not in cache:
        cache[key] = memory.profile_config(config, classes)
    profile = cache[key]
    if config.shard.strategy == "auto":
        chosen = memory.apply_plan(config, memory.choose(profile, config))
    else:
        chosen = config.shard.strategy
    world = config.resources.world_size
    est = memory.estimate(profile, config, world)
    if check_host:
        _check_host_estimate(config, est)
    wall = clock.run(config, classes, profile.flops_per_image, profile.num_features or 256)
    return {"params": profile.params, "flops_per_image": profile.flops_per_image,
            "pretrain_flops": 3 * profile.flops_per_image * config.optim.images_seen,
            "num_classes": classes, "est_mem_per_device_gb": round(memory.gib(est.total_bytes), 3),
            "strategy": chosen, "zero_stage": config.shard.zero_stage,
            "reshard_after_forward": config.shard.reshard_after_forward,
            "nodes_x_devices": f"{config.resources.nodes}x{config.resources.devices_per_node}",
            "est_device_hours": round(memory.device_hours(profile, config, world), 4),
            "est_host_mem_per_node_gb": round(memory.gib(_host_bytes(config, est)), 3),
            "est_train_s": round(wall.train_s, 1), "est_transfer_s": round(wall.transfer_s, 1),
            "est_basis": wall.basis}


def _warn_slow_precision(configs) -> None:
    """Warn once per kind for runs asking for bf16 where it is emulated (this host's CPU
    for CPU runs; the GPU table for CUDA runs): the sweep is where a user can still change
    it (scaling/precision.py)."""
    from scaling.precision import sweep_warning

    said = set()
    for config in configs:
        res = config.resources
        message = sweep_warning(config.precision, res.device, res.gpu)
        if message and message not in said:
            said.add(message)
            log.warning(message)


def _host_bytes(config: RunConfig, est) -> float:
    """Host memory of one node: every rank's pretraining data (uint8 cache and per-image
    index, contract.config), plus the ranks' own memory when they run on CPU."""
    return config.cache_bytes_per_node + config.index_bytes_per_node + _rank_bytes(config, est)


def _rank_bytes(config: RunConfig, est) -> float:
    """Host memory of one node's ranks themselves: counted when they run on CPU."""
    on_cpu = config.resources.device == "cpu"
    return est.total_bytes * config.resources.devices_per_node if on_cpu else 0.0


def _check_host_estimate(config: RunConfig, estimate) -> None:
    """The run config checks that a node holds the run's data; here, where the estimator
    knows it, the ranks' own memory on CPU is added: a run that cannot fit the memory it
    requests would be killed by the scheduler or swap the node."""
    from contract.config import host_memory_problem

    problem = host_memory_problem(config, _rank_bytes(config, estimate))
    if problem:
        raise ConfigError(problem)  # the caller names the run


def expand_sweep(sweep_file: Union[str, Path], root: Union[str, Path] = "sweeps") -> Path:
    """Expand a sweep file into `<root>/<name>/`; returns the sweep folder."""
    sweep_file = Path(sweep_file)
    spec = load_sweep(sweep_file)
    base = resolve_base(spec.get("base"), sweep_file)
    runs, order = expand(spec, base)
    sweep_dir = Path(root) / spec["name"]
    runs_dir = sweep_dir / "runs"

    # targets whose files can be checked now (user folders, materialized copies), so a
    # bad target fails here and not after pretraining
    checked: set = set()
    for run_id, config, _ in runs:
        _check_targets(run_id, config, checked)

    # resolve `auto` (strategy, nodes x devices) first: a done run is compared resolved
    from scaling.walltime import Estimator

    cache: dict = {}
    clock = Estimator()
    estimates = {}
    for run_id, config, _ in runs:
        try:
            estimates[run_id] = run_estimates(config, cache, clock, check_host=True)
        except (UserError, FileNotFoundError) as exc:  # the data source refuses the config
            raise ConfigError(f"run {run_id}: {exc}") from None
    clock.cache.save()
    for row in estimates.values():
        if not row["est_basis"].startswith("GPU table"):
            row["est_basis"] += clock.busy_note()

    _warn_slow_precision(config for _, config, _ in runs)

    # refuse before writing anything: another study under the same name, or a run that is
    # done or has a checkpoint whose config would change
    _check_same_study(sweep_dir, sweep_file)
    frozen = {}
    for run_id, config, _ in runs:
        run_dir = runs_dir / run_id
        why = frozen_reason(run_dir)
        if why and (run_dir / "config.yaml").is_file():
            old = load_yaml(run_dir / "config.yaml")
            new = to_dict(config)
            if config_hash(read_run_config(old)) != config_hash(config):
                diff = first_difference(old, new)
                raise ConfigError(f"run {run_id} {why} and its config would change "
                                  f"({diff}): use a new sweep name, or remove that run "
                                  f"folder ({run_dir}) to start it again")
            frozen[run_id] = True

    private_dir(sweep_dir)
    private_dir(runs_dir)
    rows = []
    for run_id, config, point in runs:
        run_dir = runs_dir / run_id
        as_dict = to_dict(config)
        axis_values = {key: point[key] if key in point else get_path(as_dict, key)
                       for key in order}
        if run_id not in frozen:
            private_dir(run_dir)
            atomic_write_text(run_dir / "config.yaml", dump_yaml(to_dict(config)))
        row = {"run_id": run_id, "config_hash": config_hash(config)}
        row.update(axis_values)
        row.update(estimates[run_id])
        rows.append(row)

    old_rows = read_manifest(sweep_dir / "manifest.csv")
    new_ids = {r["run_id"] for r in rows}
    kept = [r for r in old_rows if r["run_id"] not in new_ids and (runs_dir / r["run_id"]).is_dir()]
    write_manifest(sweep_dir / "manifest.csv", kept + rows)
    atomic_write_text(sweep_dir / "sweep.yaml", sweep_file.read_text())
    if read_json(sweep_dir / "study.json") is None:
        write_json(sweep_dir / "study.json", {"sweep_file": str(sweep_file.resolve())})
    return sweep_dir


def frozen_reason(run_dir: Path) -> Optional[str]:
    """Why a run's config may no longer change (None when it may): it is done, or it has a
    complete checkpoint that a resume would continue under the recorded config."""
    if read_state(run_dir)["train"] == "done":
        return "is done"
    ckpts = run_dir / "checkpoints"
    if ckpts.is_dir() and any((p / "COMPLETE").is_file() for p in ckpts.iterdir()):
        return "has checkpoints"
    return None


def _check_same_study(sweep_dir: Path, sweep_file: Path) -> None:
    """A sweep folder is one study: refuse a different sweep file that has the same name
    (the same file edited, or an identical copy, is the same study)."""
    recorded = sweep_dir / "sweep.yaml"
    if not recorded.is_file():
        return
    study = read_json(sweep_dir / "study.json") or {}
    source = study.get("sweep_file")
    if source is None or source == str(sweep_file.resolve()):
        return
    if recorded.read_text() == sweep_file.read_text():
        return
    raise ConfigError(f"name={sweep_dir.name!r} is already used by another sweep file "
                      f"({source}) in {sweep_dir}: give {sweep_file} another name, or "
                      "another --root")


def write_manifest(path: Path, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
