"""The host side of a cohort message: train (or evaluate) each client a node hosts, one after
another, on the one model and dataset this worker process keeps, through the ClientApp itself.

Each client's message is rebuilt as it would arrive on its own SuperNode (its records, the
packed ArrayRecords, its message type) and handed to the ClientApp with a Context of its own
(its partition id; its state from the packed message, or the node's own ``context.state`` for
a cohort of one), so the handlers and mods run exactly as in a deployment
(``strategies.cohort`` packs and unpacks). With ``reduce`` set (FedAvg-type strategies, training
messages), the node replies with its clients' weighted sum instead of each reply
(``strategies.reduction``).
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Context, Error, Message, Metadata, RecordDict

from fedlite.cohorts import virtual_node_id
from strategies.reduction import HostSum
from strategies.reply_check import spec_of

COHORT_TYPE = "query.cohort"
ERROR_CODE = 1  # a client's handler raised: reported as Flower reports ClientApp exceptions

log = logging.getLogger("flwr")


def dispatch_load(message: Message) -> float:
    """The work a message brings its node: a packed message's clients' training samples (the
    driver's ``load``), 0 for any other. The engine hands the heaviest first, so that the
    actors, taking messages as they free up, finish a round together (longest job first)."""
    if message.metadata.message_type != COHORT_TYPE:
        return 0.0
    return float(message.content["cohort"].get("load", 0.0))


def run_cohort(app, msg: Message, context: Context) -> Message:
    # records are read by name: ``content.config_records`` rebuilds a dict of every
    # ConfigRecord of the message on each call, a cost that grows with the clients it carries
    spec = msg.content["cohort"]
    carry = bool(spec["carry-state"])
    reduce = bool(spec.get("reduce", False))
    out = RecordDict()
    total: HostSum | None = None  # with ``reduce``: the clients' replies summed as they come
    records = _by_client(msg.content)
    for client in spec["clients"]:
        content = RecordDict(records["in"].get(client, {}))
        for name, index in msg.content[f"refs.{client}"].items():
            content[name] = msg.content[f"arrays.{index}"]
        if reduce and total is None:  # every client was sent the same arrays
            total = HostSum(spec_of(content["arrays"]), float(spec["max-examples"]))
        if carry:
            state = RecordDict(records["state"].get(client, {}))
        else:
            state = context.state  # a cohort of one: the node's own client keeps its state here
        client_context = Context(run_id=context.run_id, node_id=context.node_id,
                                 node_config={**context.node_config, "partition-id": client,
                                              "num-partitions": int(spec["num-clients"])},
                                 state=state, run_config=context.run_config)
        try:
            reply = app(_client_message(msg, content, str(spec["message-type"])), client_context)
        except Exception as err:  # one client failing does not fail the others of its host
            log.exception("fedlite: client %d failed", client)
            reply = Message(Error(ERROR_CODE, f"{type(err).__name__}: {err}"), reply_to=msg)
            client_context = None  # its state stays as the driver last had it
        if total is not None:
            total.add(virtual_node_id(client), reply)
        elif reply.has_error():
            out[f"error.{client}"] = ConfigRecord({"code": int(reply.error.code),
                                                   "reason": str(reply.error.reason)})
        else:
            for name, record in reply.content.items():
                out[f"reply.{client}.{name}"] = record
        if carry and client_context is not None:
            for name, record in client_context.state.items():
                out[f"state.{client}.{name}"] = record
    if total is not None:
        for name, record in total.content().items():
            out[f"reduced.{name}"] = record
    return Message(out, reply_to=msg)


def _by_client(content: RecordDict) -> dict[str, dict[int, dict[str, object]]]:
    """The packed records ``in.<client>.<name>`` and ``state.<client>.<name>``, by kind and
    client, in one pass (a host of many clients would otherwise scan them once per client)."""
    records: dict[str, dict[int, dict[str, object]]] = {"in": {}, "state": {}}
    for key, record in content.items():
        kind, _, rest = key.partition(".")
        if kind in records:
            client, _, name = rest.partition(".")
            records[kind].setdefault(int(client), {})[name] = record
    return records


def _client_message(outer: Message, content: RecordDict, message_type: str) -> Message:
    """The client's own message: the packed message's metadata with the client's type."""
    meta = outer.metadata
    return Message(content=content, metadata=Metadata(
        run_id=meta.run_id, message_id=meta.message_id, src_node_id=meta.src_node_id,
        dst_node_id=meta.dst_node_id, reply_to_message_id="", group_id=meta.group_id,
        created_at=meta.created_at, ttl=meta.ttl, message_type=message_type,
        src_task_id=meta.src_task_id, dst_task_id=meta.dst_task_id))
