"""Everything fedlite needs from Flower's internals, in one place.

Flower 1.41's public simulation entry points (``flwr run``, the deprecated
``flwr.simulation.run_simulation``) either leave a SuperLink running in the background or
warn, and neither hands the caller the ServerApp's result as rounds end. ``run_in_process``
does what Flower's own ``flwr-simulation`` process does: it registers a ``Run`` (whose override
config is fused with the app's pyproject defaults, as under ``flwr run .``) with the process's
``TaskIdentity`` and calls ``_run_simulation``. ``server_identity`` gives a test process the
identity a ServerApp has, so that ``Message``s can be built outside one.

While a simulation runs, the engine's loop that hands the ServerApp's messages to the client
actors (``vce_api.add_messages_to_queue``) is ``prompt_message_pickup``: Flower's looks for new
messages every 0.1 s, so every round's messages waited 0.05 s on average before any client
started. Ours looks as soon as the ServerApp's grid has pushed (``MESSAGES_PUSHED``, set by the
engine's grid), again at once while a look finds messages (it takes one a node), and otherwise
every 0.1 s as Flower's does. What one look finds goes to the actors heaviest first
(``clients.cohort.dispatch_load``), where Flower's goes in node order. A loop that looked every
few milliseconds instead kept about a twentieth of a core busy beside the client actors.

The other way, the engine's loop that stores the actors' replies in the LinkState
(``vce_api.put_message_into_state``) is ``prompt_reply_store``: the same work, and it sets
``REPLY_STORED`` after each reply, so the ServerApp's grid (which pulls replies from the
LinkState) can wait on that instead of looking on a timer.

These names are private to Flower and may change in any release:
``tests/simulations/test_flower_runtime.py`` checks each one and fails on an upgrade that
breaks them. Nothing else in fedlite imports from ``flwr`` beyond ``flwr.app``,
``flwr.serverapp``, ``flwr.clientapp`` and ``flwr.simulation``.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator, Mapping
from queue import Empty, Queue
from typing import Any

from flwr.app import Context, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.superlink.fleet.vce import vce_api
from flwr.serverapp import ServerApp
from flwr.simulation.run_simulation import _run_simulation
from flwr.supercore.constant import NOOP_FEDERATION_ID
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.supercore.telemetry import EventType

from clients.cohort import dispatch_load
from strategies.grids import StoppableGrid

PRIVATE_NAMES = {  # module -> names fedlite takes from it (the upgrade test checks these)
    "flwr.simulation.run_simulation": ["_run_simulation"],
    "flwr.supercore.run": ["Run"],
    "flwr.supercore.task_identity": ["TaskIdentity"],
    "flwr.supercore.constant": ["NOOP_FEDERATION_ID"],
    "flwr.supercore.telemetry": ["EventType"],
    "flwr.common.constant": ["SUPERLINK_NODE_ID"],
    "flwr.server.superlink.fleet.vce.vce_api": ["add_messages_to_queue",
                                                "put_message_into_state", "run_api"],
}
# Set after the ServerApp pushes messages; the pickup waits on it, at most PICKUP_WAIT_MAX s.
MESSAGES_PUSHED = threading.Event()
PICKUP_WAIT_MAX = 0.1  # Flower's own loop looks this often
# Set after a reply is stored in the LinkState; the ServerApp's grid waits on it between pulls.
REPLY_STORED = threading.Event()


class PromptGrid(StoppableGrid):
    """The ServerApp's grid in a simulation: a push wakes the engine's message pickup
    (``MESSAGES_PUSHED``), and a stored reply wakes the wait for replies (``REPLY_STORED``);
    ``poll_seconds`` only bounds that wait."""

    def push_messages(self, messages):
        ids = list(super().push_messages(messages))
        MESSAGES_PUSHED.set()
        return ids

    def pull_messages(self, message_ids):
        REPLY_STORED.clear()  # before pulling: a reply stored meanwhile wakes the next wait
        return super().pull_messages(message_ids)

    def _pause(self) -> None:
        self._check()
        REPLY_STORED.wait(self.poll_seconds)


def run_in_process(*, num_supernodes: int, client_app: ClientApp, server_app: ServerApp,
                   run_config: dict[str, Any], backend_config: dict[str, Any], app_dir: str,
                   verbose: bool) -> None:
    """Run ``server_app`` against ``num_supernodes`` SuperNodes of ``client_app`` on Ray, in
    this process, with ``run_config`` as the run's override config."""
    run = Run.create_empty(run_id=_random_id())
    run.primary_task_id = _random_id()
    run.federation_id = NOOP_FEDERATION_ID
    run.override_config = dict(run_config)
    TaskIdentity.task_id, TaskIdentity.run_id = 1, run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(run_id=run.run_id, node_id=0, node_config={}, state=RecordDict(),
                      run_config=dict(run_config))
    with _replaced(vce_api, "add_messages_to_queue", prompt_message_pickup), \
            _replaced(vce_api, "put_message_into_state", prompt_reply_store):
        _run_simulation(num_supernodes=num_supernodes,
                        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
                        client_app=client_app, server_app=server_app, backend_name="ray",
                        backend_config=backend_config, app_dir=app_dir, run=run,
                        server_app_context=context, is_app=True, verbose_logging=verbose)


def prompt_message_pickup(state: Any, queue: Queue, nodes_mapping: Mapping[int, Any],
                          f_stop: threading.Event) -> None:
    """``vce_api.add_messages_to_queue`` (same arguments, same work: every SuperNode's next
    undelivered message into the actors' queue), woken by ``MESSAGES_PUSHED``."""
    while not f_stop.is_set():
        MESSAGES_PUSHED.clear()  # before looking: a push during the look wakes the next wait
        found = [message for node_id in nodes_mapping.keys()
                 for message in state.get_message_ins(node_id=node_id, limit=1)]
        # heaviest first (a stable sort: Flower's node order among equals)
        for message in sorted(found, key=dispatch_load, reverse=True):
            queue.put(message)
        if not found:
            MESSAGES_PUSHED.wait(PICKUP_WAIT_MAX)


def prompt_reply_store(state: Any, queue: Queue, f_stop: threading.Event) -> None:
    """``vce_api.put_message_into_state`` (same arguments, same work: each reply from the
    actors into the LinkState), setting ``REPLY_STORED`` after each."""
    while not f_stop.is_set():
        try:
            reply = queue.get(timeout=1.0)  # as Flower's: the stop is seen within a second
        except Empty:
            continue
        state.store_message_res(reply)
        REPLY_STORED.set()


@contextlib.contextmanager
def _replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` is ``value`` inside the block (Flower's engine looks it up per run)."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@contextlib.contextmanager
def server_identity(run_id: int = 1) -> Iterator[None]:
    """This process acts as a ServerApp of run ``run_id`` (Messages read the process's run
    and task ids); the previous identity is restored after."""
    saved = {name: vars(TaskIdentity).get(f"_{name}") for name in ("run_id", "task_id",
                                                                    "node_id")}
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = run_id, 1, 0
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(TaskIdentity, f"_{name}", value)


def _random_id() -> int:
    return secrets.randbits(63)
