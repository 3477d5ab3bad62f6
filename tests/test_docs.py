"""The docs a user reads: BENCHMARKS.md's figures come from the committed JSONs, and no page
narrates how the project was built or points at files outside the repository.

Figures are checked per ``##`` section (and per row of a table that links a JSON): every number
in it must be a value of the JSON(s) it links, as shown (a fraction as a percentage, bytes as
MB, a share as its complement), rounded to the decimals written; every commit must be the one
the JSON records, every date its date, every version its machine's. A section that links no JSON
holds no figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
MAX_LINES = 400

JSON_LINK = re.compile(r"\]\((?:\./)?benchmarks/([\w-]+\.json)\)")
LINK_TARGET = re.compile(r"\]\([^)]*\)")  # where a link points is not a figure
COMMIT = re.compile(r"`([0-9a-f]{7,40})`")
DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
VERSION = re.compile(r"(?<![\w.])(\d+\.\d+\.\d+(?:\+\w+)?)")
# A standalone number: not part of a name (resnet20, fc2, x86_64, classifier.4, H100).
NUMBER = re.compile(r"(?<![\w.\-/])([-−+]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])(?!\.\d)")


def sections(text: str) -> list[tuple[str, str]]:
    """(title, body) of the text before the first ``##`` heading and of every ``##`` section."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return [("(preamble)", parts[0])] + list(zip(parts[1::2], parts[2::2], strict=True))


def blocks(title: str, body: str) -> list[tuple[str, str]]:
    """A table row that links a JSON (with the ``| |`` rows that continue it) is checked against
    that JSON alone; the rest of the section against every JSON the section links."""
    rows: list[tuple[str, list[str]]] = []
    rest: list[str] = []
    in_row = False  # whether the previous line belongs to the last row
    for line in body.splitlines():
        if line.startswith("|") and JSON_LINK.search(line):
            rows.append((f"{title}: {line[:40]}", [line]))
            in_row = True
        elif line.startswith("| |") and in_row:
            rows[-1][1].append(line)
        else:
            rest.append(line)
            in_row = False
    return [(name, "\n".join(lines)) for name, lines in rows] + [(title, "\n".join(rest))]


def leaves(data, key: str = ""):
    """Every scalar of a JSON document, with the numbers inside its keys and strings."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from (float(n) for n in re.findall(r"\d+(?:\.\d+)?", k))
            yield from leaves(v, k)
    elif isinstance(data, list):
        for item in data:
            yield from leaves(item, key)
    elif isinstance(data, bool) or data is None:
        return
    elif isinstance(data, (int, float)):
        yield float(data)
    elif isinstance(data, str):
        yield data
        yield from (float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", data))


def shown_as(value: float) -> set[float]:
    """How a stored value may be written: itself, as a percentage, bytes as MB, a share as its
    complement (skipped = 1 - backpropagated), as a magnitude."""
    forms = {value, 100 * value, value / 1e6}
    if 0 <= value <= 1:
        forms |= {1 - value, 100 * (1 - value)}
    return {abs(form) for form in forms}


def unmatched_figures(text: str, documents: list[dict]) -> list[str]:
    values, strings = [], []
    for document in documents:
        for leaf in leaves(document):
            (strings if isinstance(leaf, str) else values).append(leaf)
    forms = {form for value in values for form in shown_as(value)}
    provenance = [d.get("provenance", {}) for d in documents]
    text = LINK_TARGET.sub("]", text)
    missing = []
    for commit in COMMIT.findall(text):
        if not any(str(p.get("commit", "")).startswith(commit) for p in provenance):
            missing.append(f"commit {commit}")
    for date in DATE.findall(text):
        if not any(str(p.get("started", "")).startswith(date) for p in provenance):
            missing.append(f"date {date}")
    for version in VERSION.findall(text):
        if not any(version in s for s in strings):
            missing.append(f"version {version}")
    text = COMMIT.sub(" ", DATE.sub(" ", VERSION.sub(" ", text)))
    for match in NUMBER.finditer(text):
        whole, decimals = match.group(2).replace(",", ""), match.group(3) or ""
        written = float(f"{whole}.{decimals}" if decimals else whole)
        tolerance = 0.5 * 10 ** -len(decimals) + 1e-9
        if not any(abs(form - written) <= tolerance for form in forms):
            start = max(0, match.start() - 30)
            missing.append(f"{match.group(0)!r} in …{text[start:match.end() + 20]!r}…")
    return missing


def test_benchmarks_page_is_short():
    lines = BENCHMARKS.read_text().splitlines()
    assert len(lines) <= MAX_LINES, (f"docs/BENCHMARKS.md has {len(lines)} lines "
                                     f"(at most {MAX_LINES})")


def test_every_figure_in_benchmarks_is_in_the_json_its_section_links():
    problems = []
    for title, body in sections(BENCHMARKS.read_text()):
        for name, block in blocks(title, body):
            files = sorted(set(JSON_LINK.findall(block)))
            for missing_file in [f for f in files
                                 if not (BENCHMARKS.parent / "benchmarks" / f).is_file()]:
                problems.append(f"{name}: links missing {missing_file}")
            documents = [json.loads((BENCHMARKS.parent / "benchmarks" / f).read_text())
                         for f in files if (BENCHMARKS.parent / "benchmarks" / f).is_file()]
            problems += [f"{name}: {figure}" for figure in unmatched_figures(block, documents)]
    assert not problems, "figures not in the linked JSON:\n" + "\n".join(problems)


def test_the_checker_catches_a_figure_that_is_not_in_the_json():
    document = {"accuracy": 0.8742, "bytes": 13990880, "backprop_fraction": 0.5106,
                "provenance": {"commit": "25a72ff9bd", "started": "2026-11-23T20:06:19+0000",
                               "machine": {"torch": "2.13.0+cpu"}}}
    shown = "87.42 %, 13.99 MB, 48.9 % skipped, resnet20, `25a72ff`, 2026-11-23, torch 2.13.0+cpu"
    assert unmatched_figures(shown, [document]) == []
    wrong = unmatched_figures("87.52 %, `1234567`, 2026-11-24, torch 2.12.0", [document])
    assert len(wrong) == 4 and "87.52" in wrong[-1]


def test_a_continuation_row_is_checked_with_the_row_it_continues():
    row = "| a | [a](benchmarks/a.json) |"
    body = f"{row}\n| | 1 |\n| | 2 |\ntext\n| | 3 |"
    assert blocks("t", body) == [(f"t: {row[:40]}", f"{row}\n| | 1 |\n| | 2 |"),
                                 ("t", "text\n| | 3 |")]


# Words that give away how the work was organized, and pointers at scratch files outside the
# repository. Process sessions (start_new_session, a process's session) are the OS's, not ours.
NARRATION = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|this|that|previous|next|earlier)"
    r" (?:session|sitting)\b|\bsittings?\b|\bengineers?\b|\bhelpers? session\b|\btickets?\b"
    r"|\bissue ?#?\d+|\bseed ?00\d\b|\bseed document|/tmp/|\.probe/|\bnot adopted\b",
    re.IGNORECASE)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PACKAGES = [p for package in ("fedlite", "clients", "strategies", "simulations")
            for p in sorted((ROOT / package).rglob("*")) if p.suffix in {".py", ".toml", ".sh"}]


@pytest.mark.parametrize("path", PAGES + PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_or_module_narrates_the_work_or_points_outside_the_repository(path):
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if NARRATION.search(line)]
    assert not hits, "\n".join(hits)
