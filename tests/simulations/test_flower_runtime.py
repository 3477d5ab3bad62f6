"""Flower's private names that fedlite relies on (all in ``simulations.flower_runtime``): this
fails on a Flower upgrade that moves or changes them, before any run does."""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import queue
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from simulations import flower_runtime

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ("flwr.app", "flwr.serverapp", "flwr.clientapp", "flwr.simulation")


class Note(str):
    """A stand-in message: equal to its name, typed as Flower's messages are."""

    def __new__(cls, name: str, message_type: str = "train", content: dict | None = None):
        note = super().__new__(cls, name)
        note.metadata = SimpleNamespace(message_type=message_type)
        note.content = content or {}
        return note


class Link:
    """What the pickup reads of Flower's LinkState: each node's undelivered messages."""

    def __init__(self, waiting: dict[int, list]) -> None:
        self.waiting = {node: [m if isinstance(m, Note) else Note(m) for m in messages]
                        for node, messages in waiting.items()}

    def get_message_ins(self, node_id: int, limit: int) -> list[Note]:
        taken = self.waiting[node_id][:limit]
        del self.waiting[node_id][:limit]
        return taken


def test_every_private_name_is_where_the_adapter_takes_it_from():
    for module, names in flower_runtime.PRIVATE_NAMES.items():
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name} is gone"


def test_run_simulation_takes_the_arguments_the_adapter_passes():
    from flwr.simulation.run_simulation import _run_simulation

    params = inspect.signature(_run_simulation).parameters
    assert {"num_supernodes", "exit_event", "client_app", "server_app", "backend_name",
            "backend_config", "app_dir", "run", "server_app_context", "is_app",
            "verbose_logging"} <= set(params)


def test_run_and_task_identity_have_what_the_adapter_sets():
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    run = Run.create_empty(run_id=5)
    for attribute in ("primary_task_id", "federation_id", "override_config"):
        assert hasattr(run, attribute)
    with flower_runtime.server_identity(run_id=7):
        assert TaskIdentity.run_id == 7 and TaskIdentity.task_id == 1


def _flwr_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [name for name in found if name.startswith("flwr.")]  # not flwr_datasets


def test_nothing_else_imports_from_flowers_internals():
    adapter = ROOT / "simulations" / "flower_runtime.py"
    offenders = []
    for package in ("fedlite", "clients", "strategies", "simulations", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            if path == adapter or path == Path(__file__).resolve():
                continue
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in _flwr_imports(path)
                          if not m.startswith(PUBLIC)]
    assert offenders == []


def test_the_engine_looks_up_its_loops_by_the_names_the_adapter_replaces():
    from flwr.server.superlink.fleet.vce import vce_api

    for name, ours in [("add_messages_to_queue", flower_runtime.prompt_message_pickup),
                       ("put_message_into_state", flower_runtime.prompt_reply_store)]:
        assert name in vce_api.run_api.__code__.co_names
        assert (list(inspect.signature(getattr(vce_api, name)).parameters)
                == list(inspect.signature(ours).parameters))


@contextlib.contextmanager
def running(loop, *args):
    """``loop(*args, stop)`` in a thread for the block; then it is told to stop (a wait on a
    push is woken too) and must end."""
    stop = threading.Event()
    worker = threading.Thread(target=loop, args=(*args, stop))
    worker.start()
    try:
        yield
    finally:
        stop.set()
        flower_runtime.MESSAGES_PUSHED.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def test_message_pickup_hands_every_nodes_message_over_and_stops_when_told():
    link, handed = Link({1: ["a1", "a2"], 2: ["b1"], 3: []}), queue.Queue()
    with running(flower_runtime.prompt_message_pickup, link, handed,
                 dict.fromkeys(link.waiting)):
        got = [handed.get(timeout=5) for _ in range(3)]
    assert sorted(got) == ["a1", "a2", "b1"] and got.index("a1") < got.index("a2")


def test_a_push_wakes_the_pickup_for_a_message_that_came_while_it_waited(monkeypatch):
    monkeypatch.setattr(flower_runtime, "PICKUP_WAIT_MAX", 60.0)  # only a push can wake it
    link, handed = Link({7: []}), queue.Queue()
    with running(flower_runtime.prompt_message_pickup, link, handed, {7: None}):
        link.waiting[7].append(Note("late"))
        flower_runtime.MESSAGES_PUSHED.set()
        assert handed.get(timeout=10) == "late"


def test_the_pickup_is_flowers_again_after_a_run():
    from flwr.server.superlink.fleet.vce import vce_api

    original = vce_api.add_messages_to_queue
    with flower_runtime._replaced(vce_api, "add_messages_to_queue", print):
        assert vce_api.add_messages_to_queue is print
    assert vce_api.add_messages_to_queue is original


def test_what_one_look_finds_goes_to_the_actors_heaviest_first():
    from clients.cohort import COHORT_TYPE

    def packed(name: str, load: float) -> Note:
        return Note(name, COHORT_TYPE, {"cohort": {"load": load}})

    # node order: light, heavy, another kind of message, middle
    link = Link({1: [packed("light", 5.0)], 2: [packed("heavy", 40.0)], 3: ["other"],
                 4: [packed("middle", 20.0)]})
    handed = queue.Queue()
    with running(flower_runtime.prompt_message_pickup, link, handed,
                 dict.fromkeys(link.waiting)):
        got = [handed.get(timeout=5) for _ in range(4)]
    assert got == ["heavy", "middle", "light", "other"]


class Store:
    """What the reply loop writes to: Flower's LinkState's ``store_message_res``."""

    def __init__(self) -> None:
        self.stored: list = []

    def store_message_res(self, message) -> None:
        self.stored.append(message)


def test_the_reply_loop_stores_every_reply_and_says_so_each_time():
    store, replies = Store(), queue.Queue()
    flower_runtime.REPLY_STORED.clear()
    with running(flower_runtime.prompt_reply_store, store, replies):
        for name in ["r1", "r2"]:
            replies.put(name)
            assert flower_runtime.REPLY_STORED.wait(10)
            flower_runtime.REPLY_STORED.clear()
    assert store.stored == ["r1", "r2"]


class Inbox:
    """A Flower grid whose replies arrive when a test says: pushes are counted, pulls give
    what has arrived for the ids asked."""

    def __init__(self) -> None:
        self.arrived: list = []
        self.pulls = 0

    def push_messages(self, messages):
        return [f"id{i}" for i, _ in enumerate(messages)]

    def pull_messages(self, message_ids):
        self.pulls += 1
        ready = [m for m in self.arrived if m.metadata.reply_to_message_id in message_ids]
        self.arrived = [m for m in self.arrived if m not in ready]
        return ready


def test_the_servers_grid_pulls_a_reply_once_it_is_stored_not_on_its_timer():
    inbox, stop = Inbox(), threading.Event()
    grid = flower_runtime.PromptGrid(inbox, stop, poll_seconds=60.0)  # only a store can wake it
    flower_runtime.MESSAGES_PUSHED.clear()

    def reply_later():
        time.sleep(0.2)
        inbox.arrived.append(SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id="id0")))
        flower_runtime.REPLY_STORED.set()  # what prompt_reply_store does after storing

    helper = threading.Thread(target=reply_later)
    helper.start()
    start = time.monotonic()
    replies = grid.send_and_receive(["message"], timeout=120)
    helper.join()
    assert [r.metadata.reply_to_message_id for r in replies] == ["id0"]
    assert time.monotonic() - start < 30  # woken by the store, long before the 60 s timer
    assert flower_runtime.MESSAGES_PUSHED.is_set()  # the push woke the engine's pickup
