"""`scaling transfer`: evaluate a finished trunk on every target x protocol of its config.

Reads `final/` (never a checkpoint), so it refuses a trunk whose train phase is not `done`.
Protocols (`transfer.protocols`):

- `linear`: pooled final-stage features of the frozen trunk, extracted once per (target,
  split) and cached in `transfer/features/` (sharded over the run's ranks when it has
  several), then multinomial logistic regression with the L2 strength picked on a
  validation fifth of the train split. Also the floor: the same probe on a randomly
  initialised trunk of the same architecture.
- `fewshot`: k-shot probes on the same cached features, several draws per k.
- `finetune`: the whole network trained on the target (scaling/finetune.py).

Every (target, protocol) result is its own file, written when it is finished, so a crash
mid-evaluation loses only the protocol in flight: the rerun skips finished files and reads
features from the cache instead of extracting again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import signal
import time
from pathlib import Path
from typing import cast

import torch

from contract.atomic import atomic_path
from contract.config import RunConfig
from contract.errors import RunError
from contract.runfolder import read_json, read_state, update_state, write_json
from scaling import dist, recipe
from scaling.final import exported, load_trunk, reexport_fix, trunk_digest
from scaling.phase import PhaseStopped, run_phase
from scaling.probe import fixed_probe, linear_probe

log = logging.getLogger(__name__)

EXTRACTIONS = {"count": 0, "images": 0}
"""Feature extractions done by this process (the cache tests and the bench count them)."""


@torch.no_grad()
def extract_features(model, images: torch.Tensor, device: torch.device, batch: int = 500):
    """float32 (n, feature dim) pooled final-stage features of uint8 images."""
    EXTRACTIONS["count"] += 1
    EXTRACTIONS["images"] += len(images)
    feats = []
    for start in range(0, len(images), batch):
        x = recipe.to_input(images[start:start + batch], device)
        x = recipe.memory_format(x, True)
        feats.append(model.forward_features(x).float().cpu())
    if not feats:
        return torch.zeros(0, model.num_features)
    return torch.cat(feats)


def _atomic_save(payload: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def cached_features(model, images: torch.Tensor, device: torch.device, path: Path,
                    key: dict, env: dist.DistEnv) -> torch.Tensor | None:
    """Features of `images` from `path` when it holds the same `key`, else extracted (each
    rank its contiguous share, gathered on rank 0) and saved there. Collective; returns the
    features on rank 0, None elsewhere."""
    found = None
    if path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("key") == json.dumps(key, sort_keys=True):
                found = payload["features"]
        except (OSError, RuntimeError, EOFError, KeyError, ValueError, AttributeError,
                pickle.UnpicklingError):
            # a torn or foreign file: extract again and overwrite it
            found = None
    hit = 0.0 if found is None else 1.0
    if env.distributed:   # extract unless every rank found it (min over ranks)
        hit = -dist.all_reduce_max(-hit, env)
    if hit == 1.0:
        return found if env.is_main else None
    per = math.ceil(len(images) / env.world_size)
    mine = extract_features(model, images[env.rank * per:(env.rank + 1) * per], device)
    if env.distributed:
        parts = [None] * env.world_size if env.is_main else None
        torch.distributed.gather_object(mine, parts, dst=0)
        if not env.is_main:
            return None
        mine = torch.cat(cast(list[torch.Tensor], parts))  # rank 0: every rank's features
    _atomic_save({"key": json.dumps(key, sort_keys=True), "features": mine}, path)
    return mine


# ----- the duplicate-aware lower bound --------------------------------------------------
def find_dedup_file(config: RunConfig, run_dir: Path, target: str) -> Path | None:
    """The `scaling data dedup` file of this run's pretraining set and `target`: under
    transfer.dedup_dir, else the sweep folder, else the run folder."""
    from data.dedup import dedup_path

    roots = [Path(config.transfer.dedup_dir)] if config.transfer.dedup_dir else []
    roots += [run_dir.parent.parent, run_dir]
    for root in roots:
        path = dedup_path(config.data, config.model.image_size, target, root)
        if path.is_file():
            return path
    return None


def lower_bound(correct: torch.Tensor, duplicates) -> float:
    """Top-1 (percent) with every test image that has a near-duplicate counted as wrong."""
    keep = correct.clone().bool()
    dup = torch.as_tensor([d for d in duplicates if 0 <= d < len(keep)], dtype=torch.long)
    keep[dup] = False
    return 100.0 * keep.double().mean().item() if len(keep) else float("nan")


def dedup_fields(dedup: dict | None, correct: torch.Tensor) -> dict:
    if dedup is None:
        return {}
    return {"top1_dedup": lower_bound(correct, dedup["duplicates"]),
            "n_duplicates": sum(0 <= d < len(correct) for d in dedup["duplicates"]),
            "dedup_file": dedup["path"], "dedup_checked": dedup["n_test"]}


def _read_dedup(config: RunConfig, run_dir: Path, spec, n_test: int) -> dict | None:
    path = find_dedup_file(config, run_dir, spec.name)
    if path is None:
        return None
    doc = json.loads(path.read_text())
    if not spec.synthetic and int(doc.get("n_test", -1)) != config.transfer.test_images:
        # a user set's test images are numbered as loaded with that cap: another cap, other
        # numbers; say so rather than count the wrong images as duplicates
        log.warning("%s: %s was written for n_test=%s, this run evaluates "
                    "transfer.test_images=%d: no lower bound (rerun `scaling data dedup "
                    "--n_test %d`)", spec.name, path, doc.get("n_test"),
                    config.transfer.test_images, config.transfer.test_images)
        return None
    return {"duplicates": [int(d) for d in doc["duplicates"]], "path": str(path),
            "n_test": int(doc.get("n_test", n_test))}


# ----- protocols --------------------------------------------------------------------------
def fewshot(train_f, train_y, test_f, test_y, classes: int, shots, draws: int, l2: float,
            seed: int) -> dict:
    """k-shot probes: per k and draw, k train images per class drawn at random, a probe at
    L2 `l2`; mean and sd over draws per k. A k that some class (with any train image)
    cannot give is not drawn (a smaller set would be reported as that k): it is listed in
    `unavailable_shots` instead, and when no k can be drawn the probe fails."""
    counts = torch.bincount(train_y, minlength=classes)
    most = int(counts[counts > 0].min()) if bool((counts > 0).any()) else 0
    unavailable = [int(k) for k in shots if k > most]
    shots = [k for k in shots if k <= most]
    if unavailable:
        log.warning("few-shot k=%s not drawn: the smallest class has %d train images",
                    unavailable, most)
    if not shots:
        raise RunError(f"transfer.fewshot_shots={unavailable} cannot be drawn: the train "
                       f"split's smallest class has {most} images; use shots of at most "
                       f"{most} or raise transfer.train_images")
    curve = []
    for k in shots:
        top1, top5, sizes = [], [], []
        for draw in range(draws):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k * 1009 + draw)
            pick = []
            for c in range(classes):
                members = torch.nonzero(train_y == c).flatten()
                pick.append(members[torch.randperm(len(members), generator=gen)[:k]])
            idx = torch.cat(pick)
            out = fixed_probe(train_f[idx], train_y[idx], test_f, test_y, classes, l2)
            top1.append(out["top1"])
            top5.append(out["top5"])
            sizes.append(len(idx))
        t1, t5 = torch.tensor(top1, dtype=torch.float64), torch.tensor(top5, dtype=torch.float64)
        curve.append({"k": int(k), "n_train": int(max(sizes)), "draws": draws,
                      "top1": t1.mean().item(), "top1_sd": t1.std().item() if draws > 1 else 0.0,
                      "top5": t5.mean().item(), "top5_sd": t5.std().item() if draws > 1 else 0.0})
    return {"fewshot": curve, "top1": curve[-1]["top1"], "top5": curve[-1]["top5"],
            "l2": l2, "shots": [int(k) for k in shots], "unavailable_shots": unavailable}


def transfer(config: RunConfig, run_dir) -> dict:
    """Evaluate the trunk of `run_dir` on each target x protocol; writes
    transfer/<target>__<protocol>.json. Collective when launched with several ranks;
    through the one phase runner (scaling/phase.py)."""
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    if state["train"] != "done":
        raise RunError(f"{run_dir.name}: train phase is {state['train']!r}, not 'done': "
                       "finish `scaling train` first (transfer never reads an unfinished trunk)")
    if not exported(run_dir):
        raise RunError(f"{run_dir.name}: train is done but {run_dir / 'final'} is missing "
                       f"or incomplete: {reexport_fix(run_dir)}")
    from scaling import runconfig

    rewrite = runconfig.check_transfer_change(run_dir, config)  # what config.yaml records

    def finished() -> bool:
        return (read_state(run_dir)["transfer"] == "done"
                and not _missing_results(config, run_dir))

    def body(env: dist.DistEnv) -> dict:
        from scaling.finetune import TransferStopped

        if rewrite and env.is_main:
            log.info("%s", runconfig.record(run_dir, config, "transfer"))
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            if env.is_main:
                update_state(run_dir, transfer="running", error=None)
            results, errors = _transfer(config, run_dir, env)
            if errors:
                raise RunError("; ".join(errors))
            if env.is_main:
                update_state(run_dir, transfer="done")
            dist.barrier(env)   # every rank's exit status reads `done`
            return results
        except TransferStopped as stop:  # fine-tuning checkpointed and stopped on a signal
            if env.is_main:
                update_state(run_dir, transfer=stop.phase, error=None)
            dist.barrier(env)
            return {}
        except (Cancelled, KeyboardInterrupt) as stop:
            # as training: a stopped phase is `cancelled` (rerun to resume: finished result
            # files and cached features are kept), never left `running`
            if env.is_main:
                how = "SIGTERM" if isinstance(stop, Cancelled) else "Ctrl-C (SIGINT)"
                update_state(run_dir, transfer="cancelled", error=f"cancelled by {how}")
                log.info("%s: transfer cancelled by %s; finished results and cached "
                         "features are kept: rerun `scaling transfer` to go on",
                         run_dir.name, how)
            if isinstance(stop, KeyboardInterrupt):
                raise
            raise PhaseStopped() from None  # the peers stop too: no barrier on the way out
        finally:
            signal.signal(signal.SIGTERM, previous)

    return run_phase(run_dir, "transfer", config, body, finished=finished, nothing={})


def _missing_results(config: RunConfig, run_dir: Path) -> list[str]:
    """Result files of the config's targets x protocols not in `transfer/` (a `done`
    transfer whose files were removed evaluates them again)."""
    from contract.target_spec import parse_targets

    return [name for spec in parse_targets(config.transfer.targets)
            for p in config.transfer.protocols
            if not (run_dir / "transfer" / (name := f"{spec.name}__{p}.json")).is_file()]


class Cancelled(BaseException):
    """SIGTERM while probing (scancel, the local executor stopping): raised at once, since
    a probe has no step boundary to wait for; every file is written atomically, so nothing
    is torn. A BaseException, so no `except Exception` on the way swallows it. Fine-tuning
    installs its own handlers (checkpoint at the step, then TransferStopped)."""


def _on_sigterm(signum, frame) -> None:
    raise Cancelled()


FLOOR_CACHE_VERSION = 1
"""Bump when the random trunk or the probe changes: cached floors then no longer match."""


def _floor_file(config: RunConfig, run_dir: Path, spec, n_train: int,
                n_test: int) -> Path | None:
    """Where a sweep keeps the floor of one (architecture, run seed, world, target, split
    sizes): `<sweep>/floors/<key>.json`. The random trunk and the target images depend on
    nothing else, so runs that differ only in pretraining data or recipe share one floor
    (a paper-mini sweep probes one random trunk per width and run seed, whatever the
    vocabulary, instead of one per run). None outside a sweep folder (no manifest.csv
    beside runs/), where nothing is shared."""
    sweep = run_dir.parent.parent
    if run_dir.parent.name != "runs" or not (sweep / "manifest.csv").is_file():
        return None
    # keyed on what builds the random trunk (load_trunk: arch and kwargs, no pretraining
    # head), so another vocabulary's hashtag list does not split the floor
    meta = read_json(run_dir / "final" / "model.json")
    if meta is None:  # load_trunk refuses such a run before any floor is asked for
        return None
    trunk = {"arch": meta["arch"], "kwargs": meta["kwargs"]}
    data = config.data
    key = {"version": FLOOR_CACHE_VERSION, "torch": torch.__version__, "model": trunk,
           "seed": config.seed, "source": data.source, "path": data.path,
           "world_seed": data.seed, "world": vars(data.world),
           "train": _spec_key(spec, "train", n_train, config.model.image_size, "floor"),
           "n_test": n_test}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return sweep / "floors" / f"{spec.name}-{digest[:16]}.json"


def _spec_key(spec, split: str, n: int, size: int, which: str) -> dict:
    return {"target": vars(spec), "split": split, "n": n, "image_size": size, "trunk": which}


# long by design: per target, the protocols' dispatch over cached features
def _transfer(config: RunConfig, run_dir: Path, env: dist.DistEnv) -> tuple[dict, list]:  # noqa: C901
    from contract.target_spec import parse_targets
    from data.targets import TargetError, load_target_split

    tc, size, device = config.transfer, config.model.image_size, env.device
    specs = parse_targets(tc.targets)
    out_dir = run_dir / "transfer"
    probes = [p for p in tc.protocols if p in ("linear", "fewshot")]
    trunk = floor = None
    results, errors = {}, []
    for spec in specs:
        todo = [p for p in tc.protocols if not (out_dir / f"{spec.name}__{p}.json").is_file()]
        if not todo:
            continue
        try:
            tr = load_target_split(config.data, size, spec, "train", tc.train_images)
            te = load_target_split(config.data, size, spec, "test", tc.test_images)
        except (TargetError, OSError, ValueError) as exc:
            errors.append(f"target {spec.name}: {' '.join(str(exc).split())}")
            log.warning("skipping target %s: %s", spec.name, exc)
            continue
        classes = len(tr.classes)
        dedup = _read_dedup(config, run_dir, spec, len(te.labels)) if env.is_main else None
        common = {"target": spec.name, "target_format": spec.format, "n_train": len(tr.labels),
                  "n_test": len(te.labels), "num_classes": classes, "bad_train": tr.bad,
                  "bad_test": te.bad}
        feats: dict = {}
        extract_s = 0.0
        if any(p in probes for p in todo):
            if trunk is None:
                trunk = load_trunk(run_dir).to(device).to(memory_format=torch.channels_last)
            start = time.perf_counter()
            before = EXTRACTIONS["count"]
            cache = out_dir / "features"
            models = {"trunk": trunk}
            floor_file = (_floor_file(config, run_dir, spec, len(tr.labels), len(te.labels))
                          if tc.floor else None)
            known_floor = read_json(floor_file) if floor_file is not None else None
            if tc.floor and "linear" in todo and known_floor is None:
                if floor is None:
                    floor = load_trunk(run_dir, random_init=True, seed=config.seed).to(device)
                    floor = floor.to(memory_format=torch.channels_last)
                models["floor"] = floor
            weights = {"trunk": trunk_digest(run_dir), "floor": f"random-seed{config.seed}"}
            for which, model in models.items():
                for split, data in (("train", tr), ("test", te)):
                    feats[which, split] = cached_features(
                        model, data.images, device, cache / f"{spec.name}__{which}__{split}.pt",
                        _spec_key(spec, split, len(data.labels), size, weights[which]), env)
            extract_s = time.perf_counter() - start
            common["features_extracted"] = EXTRACTIONS["count"] - before
            common["extract_s"] = extract_s
        for protocol in todo:
            start = time.perf_counter()
            if protocol == "finetune":
                from scaling.finetune import finetune

                out = finetune(config, run_dir, env, spec.name, tr, te)
                if not env.is_main:
                    continue
                record = dict(common, protocol=protocol, **out)
                record.pop("correct", None)
                record.update(dedup_fields(dedup, out["correct"]))
            elif not env.is_main:
                continue
            elif protocol == "linear":
                train_f, test_f = feats["trunk", "train"], feats["trunk", "test"]
                out = linear_probe(train_f, tr.labels, test_f, te.labels, classes,
                                   seed=config.seed)
                record = dict(common, protocol=protocol, top1=out["top1"], top5=out["top5"],
                              l2=out["l2"], feature_dim=train_f.shape[1])
                record.update(dedup_fields(dedup, out["correct"]))
                if ("floor", "train") in feats:
                    base = linear_probe(feats["floor", "train"], tr.labels,
                                        feats["floor", "test"], te.labels, classes,
                                        seed=config.seed)
                    known_floor = {"floor_top1": base["top1"], "floor_top5": base["top5"]}
                    if floor_file is not None:
                        write_json(floor_file, known_floor)
                if tc.floor and known_floor is not None:
                    record.update(floor_top1=known_floor["floor_top1"],
                                  floor_top5=known_floor["floor_top5"])
            else:  # fewshot
                train_f, test_f = feats["trunk", "train"], feats["trunk", "test"]
                out = fewshot(train_f, tr.labels, test_f, te.labels, classes,
                              tc.fewshot_shots, tc.fewshot_draws, tc.fewshot_l2, config.seed)
                record = dict(common, protocol=protocol, feature_dim=train_f.shape[1], **out)
            record["wall_s"] = time.perf_counter() - start + (
                extract_s if protocol in probes else 0.0)
            write_json(out_dir / f"{spec.name}__{protocol}.json", record)
            results[(spec.name, protocol)] = record
    return results, errors
