"""The manual stays a manual: README.md short, every link between the pages resolves, no
dated narrative outside records/, and every code block of README.md and docs/*.md is run
or checked (python blocks run, YAML parses, commands name real make targets and `scaling`
subcommands)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MANUAL = [README, *DOCS, ROOT / "data" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# words that date a text or tell its story: they belong in records/, not in the manual
_NTH = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh)"
NARRATIVE = re.compile(r"(?:this|last|next|that|earlier) session|tonight|last night|this night"
                       rf"|\b20\d\d-\d\d-\d\d\b|{_NTH} (?:design|session)", re.I)


def _blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, body, the text just before the fence) of each fenced block."""
    text = page.read_text()
    return [(m.group(1), m.group(2), text[max(0, m.start() - 300):m.start()])
            for m in FENCE.finditer(text)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_readme_is_at_most_250_lines():
    lines = README.read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move reference text to a docs/ page"


def test_readme_links_every_docs_page_and_each_link_resolves():
    linked = {(README.parent / t.split("#")[0]).resolve()
              for t in LINK.findall(README.read_text()) if not t.startswith("http")}
    missing = [p.name for p in DOCS if p.resolve() not in linked and p.name != "design.md"]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", [*MANUAL, ROOT / "records" / "README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    bad = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{page.relative_to(ROOT)}: {bad}"


# configs/findings.yaml is left out: its comment dates the one change of a judging rule,
# and a study's registration fingerprints that file, so it changes only with a new study.
CONFIGS = [p for p in sorted((ROOT / "configs").glob("*.yaml")) if p.name != "findings.yaml"]


@pytest.mark.parametrize("page", [*MANUAL, *CONFIGS], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_manual_and_configs_carry_no_dated_narrative(page):
    text = page.read_text()
    if page.suffix == ".yaml":  # only the comments of a config are prose
        text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    found = sorted({m.group(0) for m in NARRATIVE.finditer(text)})
    assert not found, f"{page.relative_to(ROOT)} says {found}: dated text belongs in records/"


def test_python_blocks_of_docs_pages_run_or_say_why_not(tmp_path, monkeypatch):
    """A docs/ python block runs here, or is run by the test its `<!-- run by PATH -->`
    comment names (which must read that page), or says `<!-- not run: why -->`."""
    monkeypatch.chdir(tmp_path)
    ran = 0
    for page in [*DOCS, ROOT / "data" / "README.md"]:
        for lang, body, before in _blocks(page):
            if lang != "python":
                continue
            by = re.search(r"<!-- run by (\S+)", before)
            why = re.search(r"<!-- not run: (\S.*?) -->", before)
            if by:
                test = ROOT / by.group(1).rstrip(",")
                assert test.is_file(), f"{page.name}: {by.group(1)} does not exist"
                assert page.name in test.read_text(), f"{test.name} does not read {page.name}"
            elif not why:
                exec(compile(body, str(page), "exec"), {})  # noqa: S102 (our own docs)
            ran += 1
    assert ran, "no python block found in docs/: the fitting example is gone"


def test_yaml_blocks_parse():
    for page in MANUAL:
        for lang, body, _ in _blocks(page):
            if lang == "yaml":
                assert isinstance(yaml.safe_load(body), dict), f"{page.name}: {body[:60]}"


def test_commands_in_blocks_are_real_make_targets_and_subcommands():
    from scaling.cli import COMMANDS

    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    bad = []
    for page in MANUAL:
        for lang, body, _ in _blocks(page):
            if lang not in ("bash", ""):
                continue
            for line in body.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[0] == "make" and words[1] not in targets:
                    bad.append(f"{page.name}: make {words[1]}")
                if len(words) >= 2 and words[0] in ("scaling", "$") and words[-1] != "...":
                    cmd = words[1] if words[0] == "scaling" else (words[2:3] or [""])[0]
                    if words[0] == "$" and words[1] != "scaling":
                        continue
                    if cmd not in COMMANDS:
                        bad.append(f"{page.name}: scaling {cmd}")
    assert not bad, bad


@pytest.mark.slow
def test_readme_sweep_expands_into_the_run_ids_it_shows(tmp_path):
    """The README's sweep file, next to a copy of base-cpu.yaml, expands into the runs the
    block after it names (imports torch to count FLOPs, hence slow)."""
    from scaling import expand_sweep

    (sweep_yaml,) = [b for lang, b, _ in _blocks(README) if lang == "yaml" and "axes:" in b]
    (tmp_path / "base-cpu.yaml").write_text((ROOT / "configs" / "base-cpu.yaml").read_text())
    (tmp_path / "sweep.yaml").write_text(sweep_yaml)
    sweep = expand_sweep(tmp_path / "sweep.yaml", root=tmp_path / "sweeps")
    runs = sorted(p.name for p in (Path(sweep) / "runs").iterdir())
    shown = re.search(r"sweeps/wsl-mini/runs/(\S+)/", README.read_text()).group(1)
    assert shown in runs and len(runs) == 18, runs
