"""Client behaviour that wraps the ClientApp's training as Flower mods, the way Flower's own
client-side features attach (``ClientApp(mods=...)`` / ``@app.train(mods=...)``).

- ``method_outgoing_mod``: methods of the table that change what a client sends (the attack of
  robustness experiments) transform the trained wire arrays after training;
- ``clipping_mod``: the client half of Flower's client-side differential-privacy wrappers:
  Flower's ``fixedclipping_mod`` or ``adaptiveclipping_mod``, chosen by the ServerApp (which
  knows the strategy) through the train config key ``client-clipping``.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from clients.context import client_id_of, config_of
from fedlite.methods import Method, table
from strategies.array_codec import decode, encode_record

CLIPPING_KEY = "client-clipping"  # "fixed" | "adaptive", set by strategies.server_app
CLIPPING_MODS = {"fixed": fixedclipping_mod, "adaptive": adaptiveclipping_mod}


def _transforms_replies(method: Method) -> bool:
    return type(method).outgoing is not Method.outgoing


def method_outgoing_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    cfg = config_of(context)
    transforms = [(m, s) for m, s in table.active(cfg) if _transforms_replies(m)]
    if not transforms:
        return reply
    sent = {key: decode(array) for key, array in msg.content["arrays"].items()}
    arrays = {key: decode(array) for key, array in reply.content["arrays"].items()}
    for method, settings in transforms:
        arrays = method.outgoing(settings, client_id_of(context), cfg.num_clients, sent, arrays)
    reply.content["arrays"] = encode_record({k: np.ascontiguousarray(v)
                                             for k, v in arrays.items()})
    return reply


def clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    mode = msg.content["config"].get(CLIPPING_KEY) if "config" in msg.content else None
    if mode is None:
        return call_next(msg, context)
    if mode not in CLIPPING_MODS:
        raise ValueError(f"train config `{CLIPPING_KEY}` = {mode!r}: expected one of "
                         f"{sorted(CLIPPING_MODS)}")
    return CLIPPING_MODS[mode](msg, context, call_next)
