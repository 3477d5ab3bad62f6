"""What a training reply must be before it is aggregated: the keys, shapes and dtypes that were
sent, finite values, and one ``num-examples`` from 0 (nothing to train on) to the samples there
are.

The driver's ``Validation`` applies it to every reply; a host node that sums its clients'
replies (``strategies.reduction``) applies it to each before the sum.
"""

from __future__ import annotations

import math

import numpy as np
from flwr.app import ArrayRecord, Message

from strategies.array_codec import view

Spec = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, dtype) of what was sent


def spec_of(arrays: ArrayRecord) -> Spec:
    return {key: (tuple(array.shape), str(array.dtype)) for key, array in arrays.items()}


def problem(msg: Message, expected: Spec, max_examples: float,
            arrays_key: str = "arrays", weight_key: str = "num-examples",
            decoded: dict[str, np.ndarray] | None = None) -> str | None:
    """Why a training reply must not be aggregated, or None if it is fine. ``decoded``, if
    given, receives the arrays as checked (read-only), so a caller that sums them need not
    decode again."""
    content = msg.content
    if arrays_key not in content.array_records:
        return f"no ArrayRecord '{arrays_key}'"
    arrays = content.array_records[arrays_key]
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing:
        return f"missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}"
    if extra:
        return f"unexpected keys {extra[:3]}{'...' if len(extra) > 3 else ''}"
    for key, array in arrays.items():
        shape, dtype = expected[key]
        if tuple(array.shape) != shape:
            return f"'{key}' has shape {tuple(array.shape)}, expected {shape}"
        if str(array.dtype) != dtype:
            return f"'{key}' has dtype {array.dtype}, expected {dtype}"
        values = view(array)
        if decoded is not None:
            decoded[key] = values
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            return f"'{key}' holds NaN or Inf"
    weights = [record[weight_key] for record in content.metric_records.values()
               if weight_key in record]
    if len(weights) != 1:
        return f"{len(weights)} '{weight_key}' values, expected one"
    weight = weights[0]
    # 0 is a client that held nothing to train on (a continual client without a sample of the
    # task): a well-formed reply that the aggregation leaves out (``contributing``)
    if isinstance(weight, list) or not math.isfinite(weight) or weight < 0:
        return f"'{weight_key}' = {weight!r} is not a number of samples (0 or more)"
    if weight > max_examples:
        return f"'{weight_key}' = {weight:g} is more than the {max_examples:g} samples there are"
    return None
