"""The cohort grid: many virtual clients on few SuperNodes, each client still its own node to
the strategy.

In simulation a SuperNode is a worker, not a client: each node hosts a fixed set of clients,
balanced by their training-set sizes (``fedlite.cohorts``). Between the strategy and Flower's
Grid this adapter lists one virtual node id per client, packs the messages of the clients a node
hosts into one message for that node (each distinct ArrayRecord once, every client's other
records and state), and unpacks the node's reply into one reply per client, with that client's
virtual node id as its source. Any Flower Strategy, robust ones included, sees exactly what it
would see in a deployment where each SuperNode is one client; Flower's engine registers, polls
and messages ``N`` nodes, not the population. With one client per node (a deployment) the same
code sends cohorts of one.

Client state (pFedPara's W2, FedPer's local modules, skipping's threshold and histogram,
continual learning's memory) is the per-client ``context.state``. In a deployment it stays in
the SuperNode's own ``context.state``, on the client's machine, as in any Flower app. In a
simulation it lives here, in the driver, keyed by client (and so in each round's checkpoint),
and travels to the host with the client's message and back with its reply: it follows its
client exactly from round to round whichever Ray actor serves the host, and only the sampled
clients' state moves in a round.

With ``reduce`` (FedAvg-type strategies, ``strategies.reduction``) a host's training reply is
its clients' weighted mean, presented to the strategy as one reply that stands for them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from clients.cohort import COHORT_TYPE, ERROR_CODE
from fedlite.cohorts import balanced_layout, client_of, virtual_node_id
from strategies.grids import ForwardingGrid
from strategies.reduction import RECORD, left_out


HOST_QUERY = "query.partition"


def host_indices(grid: Grid, timeout: float) -> dict[int, int]:
    """Real node id -> its partition id (the client it is, or the host index in a cohort
    simulation), from one query message per SuperNode."""
    messages = [Message(RecordDict(), dst_node_id=node, message_type=HOST_QUERY)
                for node in grid.get_node_ids()]
    indices = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} did not say its partition id "
                               f"({reply.error.reason}); its ClientApp must answer "
                               f"{HOST_QUERY!r}")
        indices[reply.metadata.src_node_id] = int(reply.content["metrics"]["partition-id"])
    return indices


@dataclass
class Transport:
    """What the simulation itself sent: the packed messages' arrays, and how many."""

    bytes_down: int = 0
    bytes_up: int = 0
    messages: int = 0


class CohortGrid(ForwardingGrid):
    def __init__(self, grid: Grid, hosts: dict[int, int], sizes: Sequence[int],
                 carry_state: bool, reduce: bool = False, max_examples: float = 1e9) -> None:
        """``hosts``: real node id -> host index; ``sizes``: each client's training samples,
        which place the clients on the hosts (``fedlite.cohorts.balanced_layout``) and make
        each packed message's ``load`` (the engine hands the heaviest to an actor first);
        ``carry_state``: client state travels with
        the client's messages (a cohort simulation) rather than staying on its node;
        ``reduce``: hosts sum their clients' training replies, each checked against
        ``max_examples`` as ``Validation`` checks it."""
        super().__init__(grid)
        self.node_of = {index: node for node, index in hosts.items()}
        if set(self.node_of) != set(range(len(hosts))):
            raise ValueError(f"the SuperNodes answered as hosts {sorted(self.node_of)}; a run "
                             f"of {len(hosts)} nodes needs each of 0..{len(hosts) - 1} once")
        self.sizes, self.num_clients = tuple(sizes), len(sizes)
        self.layout = balanced_layout(self.sizes, len(hosts))
        self.carry_state = carry_state
        self.reduce, self.max_examples = reduce, max_examples
        self.states: dict[int, RecordDict] = {}
        self.transport = Transport()
        # built once: a round asks for them three times (the wait for nodes, sampling for
        # training and for evaluation), 1.2 ms each at 10,000 clients
        self.node_ids = tuple(virtual_node_id(c) for c in range(self.num_clients))

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids)

    def take_transport(self) -> Transport:
        """The transport since the last call (the server reads it once per round)."""
        taken, self.transport = self.transport, Transport()
        return taken

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        groups: dict[tuple[int, str], list[Message]] = {}
        for msg in messages:
            client = client_of(msg.metadata.dst_node_id)
            if not 0 <= client < self.num_clients:
                raise ValueError(f"message to node {msg.metadata.dst_node_id}, which is no "
                                 f"client of this run (virtual ids 1..{self.num_clients})")
            key = (self.layout[client], msg.metadata.message_type)
            groups.setdefault(key, []).append(msg)
        sent = [(self.pack(host, message_type, group), group)
                for (host, message_type), group in groups.items()]
        outers = [outer for outer, _ in sent]
        self.transport.messages += len(outers)
        self.transport.bytes_down += _array_bytes(outers)
        replies = list(self.grid.send_and_receive(outers, timeout=timeout))
        self.transport.bytes_up += _array_bytes(replies)
        # pushing gave each packed message its id, which its reply names (a grid that sets no
        # ids pairs them by node: one packed message per node and call)
        by_id = {outer.metadata.message_id: group for outer, group in sent}
        by_node = {outer.metadata.dst_node_id: group for outer, group in sent}
        unpacked = []
        for reply in replies:
            group = (by_id.get(reply.metadata.reply_to_message_id)
                     if reply.metadata.reply_to_message_id
                     else by_node.get(reply.metadata.src_node_id))
            if group is not None:  # else not one of ours (a late reply of another round)
                unpacked += self.unpack(reply, group)
        return sorted(unpacked, key=lambda r: r.metadata.src_node_id)

    def pack(self, host: int, message_type: str, group: list[Message]) -> Message:
        """One message for ``host`` carrying ``group`` (each distinct ArrayRecord once)."""
        content = RecordDict()
        arrays: dict[int, int] = {}  # id(ArrayRecord) -> its index in the packed message
        clients = []
        for msg in group:
            client = client_of(msg.metadata.dst_node_id)
            clients.append(client)
            refs = ConfigRecord()
            for name, record in msg.content.items():
                if isinstance(record, ArrayRecord):
                    index = arrays.setdefault(id(record), len(arrays))
                    if f"arrays.{index}" not in content:
                        content[f"arrays.{index}"] = record
                    refs[name] = index
                else:
                    content[f"in.{client}.{name}"] = record
            content[f"refs.{client}"] = refs
            if self.carry_state:
                for name, record in self.states.get(client, RecordDict()).items():
                    content[f"state.{client}.{name}"] = record
        content["cohort"] = ConfigRecord({
            "clients": clients, "message-type": message_type, "num-clients": self.num_clients,
            "carry-state": self.carry_state,
            "reduce": self.reduce and message_type == MessageType.TRAIN,
            "max-examples": float(self.max_examples),
            "load": float(sum(self.sizes[c] for c in clients))})
        return Message(content, dst_node_id=self.node_of[host], message_type=COHORT_TYPE)

    def unpack(self, reply: Message, group: list[Message]) -> list[Message]:
        """One reply per client of ``group``; a failed host fails each of its clients."""
        if reply.has_error():
            return [Message(Error(reply.error.code, f"host node failed: {reply.error.reason}"),
                            reply_to=msg) for msg in group]
        # split the reply's records by client once: "state.<client>.<name>", "reply.<client>.<name>"
        records: dict[str, dict[int, RecordDict]] = {"state": {}, "reply": {}}
        for key, record in reply.content.items():
            kind, _, rest = key.partition(".")
            if kind in records:
                client, _, name = rest.partition(".")
                records[kind].setdefault(int(client), RecordDict())[name] = record
        for msg in group:
            client = client_of(msg.metadata.dst_node_id)
            if self.carry_state and client in records["state"]:
                self.states[client] = records["state"][client]
        reduced = reply.content.get(f"reduced.{RECORD}")
        if reduced is not None:
            return self.reduced(reply, group, reduced)
        out = []
        for msg in group:
            client = client_of(msg.metadata.dst_node_id)
            error = f"error.{client}"
            if error in reply.content:
                failure = reply.content[error]
                out.append(Message(Error(int(failure["code"]), str(failure["reason"])),
                                   reply_to=msg))
                continue
            out.append(Message(records["reply"].get(client, RecordDict()), reply_to=msg))
        return out

    @staticmethod
    def reduced(reply: Message, group: list[Message], record: ConfigRecord) -> list[Message]:
        """A host's summed reply, as one reply to its first client's message; with no good
        reply to sum, one error per client (naming why each was left out)."""
        prefix = "reduced."
        content = RecordDict({k[len(prefix):]: v for k, v in reply.content.items()
                              if k.startswith(prefix)})
        if int(record["replies"]) > 0:
            return [Message(content, reply_to=group[0])]
        reasons = dict(left_out(record, "failed"))
        reasons |= {node: f"rejected on its host node: {reason}"
                    for node, reason in left_out(record, "rejected")}
        return [Message(Error(ERROR_CODE, reasons.get(msg.metadata.dst_node_id, "no reply")),
                        reply_to=msg) for msg in group]


def _array_bytes(messages: Iterable[Message]) -> int:
    return sum(record.count_bytes() for msg in messages if not msg.has_error()
               for record in msg.content.array_records.values())


__all__ = ["CohortGrid", "ERROR_CODE", "Transport"]
