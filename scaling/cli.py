"""The `scaling` command (jsonargparse): one subcommand per step of the flow.

Torch-free: subcommands import their implementation only when they run. Every subcommand
takes --config, --print_config and --help; boolean options work bare (`--dry_run`) as well
as with a value (`--dry_run false`). Known errors print one line and exit non-zero.

Which options a subcommand has is read from where they are declared (the `scaling.api`
function's signature, the run config's dataclasses), never from the parser's internals.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from jsonargparse import ActionConfigFile
from jsonargparse import ArgumentParser as _JsonArgParser

from contract.errors import ConfigError, RunError, user_message
from scaling import api, logs

TRUTHY = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def ArgumentParser(**kwargs) -> _JsonArgParser:
    """Parsers that raise instead of printing usage and exiting: `main` turns every parse
    error into one line with a did-you-mean (the CLI's one error path)."""
    return _JsonArgParser(exit_on_error=False, **kwargs)


def _function_parser(fn: Callable) -> _JsonArgParser:
    parser = ArgumentParser(description=(fn.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_function_arguments(fn, as_positional=True)
    return parser


RUN_CONFIG_COMMANDS = ("train", "transfer")
# options of train/transfer besides the run config's fields
_RUN_OPTIONS: dict[str, Any] = {"--config": Optional[str], "--run_dir": Optional[str],
                                "--print_config": bool}


def _run_config_parser(help_text: str, prog: Optional[str] = None) -> _JsonArgParser:
    """`train`/`transfer`: jsonargparse types the command-line overrides (one option per
    run config field); the run config itself is read once, by the contract's reader
    (`_run_config`), from the --config file with the overrides on top."""
    from contract.config import RunConfig

    parser = ArgumentParser(description=help_text, prog=prog)
    parser.add_argument("--config", type=Optional[str], default=None,
                        help="a run's config.yaml (the run folder defaults to its folder)")
    parser.add_argument("--print_config", type=bool, default=False,
                        help="print the resolved run config (every field) and exit")
    parser.add_class_arguments(RunConfig, None, fail_untyped=False)
    parser.add_argument("--run_dir", type=Optional[str], default=None,
                        help="run folder (default: the folder of --config)")
    return parser


def _collect_parser() -> _JsonArgParser:
    parser = ArgumentParser(description="Gather runs into <sweep>/results.parquet.")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("sweep_dirs", nargs="+", help="sweep folders")
    parser.add_argument("--write", type=bool, default=True)
    return parser


def _data_parser() -> _JsonArgParser:
    """Parent of `scaling data <action>`; its actions are attached once it has a parent
    (jsonargparse adds nested subcommands in level order)."""
    return ArgumentParser(description="Data tools: materialize real-format copies, find "
                          "near-duplicates of target test images, write runs' "
                          "sampling.json.")


def _sampling_parser() -> _JsonArgParser:
    """`scaling data sampling PATH...`: several positional folders, as `collect` takes."""
    parser = ArgumentParser(description=(api.sampling.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("paths", nargs="+", help="run folders or sweep folders")
    parser.add_argument("--overwrite", type=bool, default=False,
                        help="rewrite the file of runs that already have one")
    return parser


def _attach_data_actions(parser: _JsonArgParser) -> None:
    sub = parser.add_subcommands(required=True, dest="action")
    for name, fn in DATA_ACTIONS.items():
        sub.add_subcommand(name, _sampling_parser() if name == "sampling" else
                           _function_parser(fn),
                           help=(fn.__doc__ or "").strip().splitlines()[0])


DATA_ACTIONS: dict[str, Callable] = {"materialize": api.materialize, "dedup": api.dedup,
                                     "sampling": api.sampling}
COMMANDS_HELP = {"train": "Pretrain one run (what each array task runs).",
                 "transfer": "Probe a finished run's trunk on its targets."}

COMMANDS: dict[str, Callable[[], _JsonArgParser]] = {
    "sweep": lambda: _function_parser(api.sweep),
    "run": lambda: _function_parser(api.run),
    "submit": lambda: _function_parser(api.submit),
    "status": lambda: _function_parser(api.status),
    "cancel": lambda: _function_parser(api.cancel),
    "train": lambda: _run_config_parser(COMMANDS_HELP["train"]),
    "transfer": lambda: _run_config_parser(COMMANDS_HELP["transfer"]),
    "collect": _collect_parser,
    "fit": lambda: _function_parser(api.fit),
    "report": lambda: _function_parser(api.report),
    "register": lambda: _function_parser(api.register),
    "demo": lambda: _function_parser(api.demo),
    "data": _data_parser,
}


def build_parser(only: Optional[str] = None,
                 built: Optional[_JsonArgParser] = None) -> _JsonArgParser:
    """The whole CLI, or with `only` just that subcommand (`built`: its parser, already
    made): building the run-config parser of train/transfer costs a few tenths of a second
    each, which every command would otherwise pay for every subcommand."""
    parser = ArgumentParser(prog="scaling", description="wsl-scaling: how weakly supervised "
                            "pretraining scales, from sweep file to report.")
    sub = parser.add_subcommands(required=True, dest="command")
    for name, make in COMMANDS.items():
        if only is not None and name != only:
            continue
        child = built if built is not None else make()
        sub.add_subcommand(name, child, help=child.description)
        if name == "data":
            _attach_data_actions(child)
    return parser


# what every (sub)command parser accepts besides its own options
_COMMON: dict[str, Any] = {"--help": None, "--config": Optional[str], "--print_config": None}


def _signature_options(fn: Callable) -> dict[str, Any]:
    """`--param` -> type hint of `fn`'s parameters with a default (the rest are positional)."""
    hints = typing.get_type_hints(fn)
    return {f"--{p.name}": hints.get(p.name) for p in inspect.signature(fn).parameters.values()
            if p.default is not inspect.Parameter.empty}


def command_options(argv: list[str]) -> dict[str, Any]:
    """{option: type} of the (sub)command `argv` starts with, from where its options are
    declared (the `scaling.api` function, the run config's dataclasses), for bare boolean
    flags and did-you-mean (the parser's tables are private)."""
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command is None:
        return {"--help": None}
    if command in RUN_CONFIG_COMMANDS:
        from contract.config import field_hints

        own = {**_RUN_OPTIONS, **{f"--{k}": v for k, v in field_hints().items()}}
    elif command == "collect":
        own = {"--write": bool}
    elif command == "data":
        action = argv[1] if len(argv) > 1 else None
        if action not in DATA_ACTIONS:
            return {"--help": None}
        own = _signature_options(DATA_ACTIONS[action])
    else:
        own = _signature_options(getattr(api, command))
    return {**_COMMON, **own}


def _bool_options(argv: list[str]) -> set[str]:
    return {o for o, hint in command_options(argv).items() if hint in (bool, Optional[bool])}


def normalize_bool_flags(argv: list[str], options: set[str]) -> list[str]:
    """`--flag` with no value -> `--flag=true`, so bare boolean flags work."""
    out = []
    for i, token in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if token in options and (nxt is None or nxt.lower() not in TRUTHY):
            out.append(f"{token}=true")
        else:
            out.append(token)
    return out


def _run_config(given: dict):
    """The run config of `train`/`transfer`: the --config file with the command-line values
    (typed by the parser) on top, read by the contract's one reader, so the file's values
    meet exactly the rules `scaling sweep` applies."""
    from contract.config import load_yaml, merge_overrides, read_run_config

    path = given.get("config")
    overrides = {k: v for k, v in given.items() if k not in ("config", "run_dir",
                                                             "print_config", "__path__")}
    return read_run_config(merge_overrides(load_yaml(path) if path else {}, overrides))


def _execute_run_config(command: str, given: dict) -> int:
    config = _run_config(given)
    if given.get("print_config"):
        from contract.config import dump_yaml, to_dict

        print(dump_yaml(to_dict(config)), end="")
        return 0
    run_dir = given.get("run_dir")
    if run_dir is None and given.get("config"):
        run_dir = str(Path(given["config"]).resolve().parent)
    if run_dir is None:
        raise ConfigError(f"{command}: give --config RUN/config.yaml or --run_dir")
    if command == "train":
        from scaling.engine import train as _train

        return 0 if _train(config, run_dir) == "done" else 3
    from contract.runfolder import read_state
    from scaling.transfer import transfer as _transfer

    _transfer(config, run_dir)
    return 0 if read_state(run_dir)["transfer"] == "done" else 3


def _execute(command: str, cfg) -> int:
    args = {k: v for k, v in vars(cfg).items() if k not in ("config", "__path__")}
    if command == "data":
        action = args.pop("action")
        sub = {k: v for k, v in vars(args[action]).items() if k not in ("config", "__path__")}
        DATA_ACTIONS[action](**sub)
        return 0
    if command == "run":
        phases = api.run(**args)
        unfinished = {r: p for r, p in phases.items() if p != "done/done"}
        if unfinished:
            listed = ", ".join(f"{r} ({p})" for r, p in list(unfinished.items())[:3])
            more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
            raise RunError(f"{len(unfinished)} of {len(phases)} runs did not finish: "
                           f"{listed}{more} (train/transfer); see `scaling status "
                           f"{args['sweep_dir']}` and its logs/")
        return 0
    if command == "collect":
        api.collect(args["sweep_dirs"], write=args.get("write", True))
        return 0
    getattr(api, command)(**args)
    return 0


def _closest(word: str, options) -> str:
    import difflib

    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f": did you mean {match[0]!r}?" if match else ""


def parse_error_line(argv: list[str], message: str) -> str:
    """A jsonargparse error as one line, with the closest valid option or choice."""
    text = " ".join(str(message).split())
    options = list(command_options(argv))
    m = re.search(r"unrecognized arguments: (\S+)", text)
    if m and m.group(1).startswith("--"):
        return text + _closest(m.group(1).split("=")[0], options)
    m = re.search(r"does not accept option '([^']+)'", text)
    if m:
        return text + _closest("--" + m.group(1), options)
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", text)
    if m:
        return text.split(" (choose from")[0] + _closest(m.group(1), re.findall(r"'([^']+)'",
                                                                          m.group(2)))
    m = re.match(r'Parser key "([^"]+)": (.*?)(?: Given value type: .*)?$', text)
    if m:
        return f"--{m.group(1)}: " + re.sub(r"<class '(\w+)'>", r"\1", m.group(2))
    return text[:400]


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: Optional[list[str]] = None) -> int:
    """Every subcommand's one error path: a parse error, bad input or an environment
    problem prints one `error:` line and exits non-zero (2 for bad input, 1 otherwise,
    130 on Ctrl-C); anything else is a bug and keeps its traceback. SCALING_DEBUG=1 shows
    the traceback of the first kind too."""
    from jsonargparse import ArgumentError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("SCALING_DEBUG"))
    try:
        logs.setup()
        command = argv[0] if argv and argv[0] in COMMANDS else None
        if command == "data" and len(argv) > 1 and argv[1] in DATA_ACTIONS:
            argv = argv[:2] + normalize_bool_flags(argv[2:], _bool_options(argv[:2]))
        elif command:
            argv = [command] + normalize_bool_flags(argv[1:], _bool_options(argv[:1]))
        try:
            if command in RUN_CONFIG_COMMANDS:
                # only what the command line gives (defaults=False): the file and the
                # defaults are the contract reader's
                parser = _run_config_parser(COMMANDS_HELP[command], prog=f"scaling {command}")
                given = parser.parse_args(argv[1:], defaults=False).as_dict()
                return _execute_run_config(command, given)
            # a known command parses with its own parser only; anything else sees them all
            cfg = build_parser(command).parse_args(argv)
        except ArgumentError as exc:
            if debug:
                raise
            hint = f" (see `scaling {command} --help`)" if command else " (see `scaling --help`)"
            return _fail(parse_error_line(argv, str(exc)) + hint, 2)
        command = cfg.command
        return _execute(command, cfg[command])
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        found = user_message(exc)
        if found is None or debug:
            raise
        return _fail(*found)


if __name__ == "__main__":
    sys.exit(main())
