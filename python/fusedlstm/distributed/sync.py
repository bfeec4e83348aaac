"""Keeping the replicas the same: the signature check, rank 0's state, the weight check.

When fit starts (and before the first train_on_batch of a model) the ranks compare a
signature (weights' names, shapes and dtypes, optimizer, losses, metrics, the data's
size and batching, epochs): a rank whose script or data differs stops the job with a
message naming the first differences. Then every rank takes rank 0's weights,
optimizer state and random state (through the trainer's training-state interface),
and derives its own dropout stream from that state. At each epoch's end the ranks
compare a checksum of their weights.
"""

import hashlib
import json
import pickle
import zlib

import numpy as np

from .._version import __version__
from ..variables import note_write

__all__ = ["signature", "agree", "sync_from_root", "weights_agree", "describe_data"]


def _metrics_config(model):
    try:
        cc = model.get_compile_config()
    except NotImplementedError:  # a metric object that cannot be described: compare types only
        return [type(m).__name__ for m in model.metrics]
    return None if cc is None else [cc["metrics"], cc["weighted_metrics"]]


def signature(model, extra):
    """What every rank must have in common, as canonical JSON."""
    store = model.parameter_store()
    opt = model.optimizer
    try:
        opt_cfg = opt.get_config() if opt is not None else None
    except NotImplementedError:
        opt_cfg = type(opt).__name__
    sig = {
        "fusedlstm": __version__,
        "model": type(model).__name__,
        "weights": [[v.path, list(v.value.shape), str(v.value.dtype), bool(v.trainable)] for v in model.weights],
        "trainable floats": int(store.size),
        "optimizer": [type(opt).__name__, opt_cfg],
        "losses": [None if s is None else [s.name, type(s.loss).__name__, s.loss.reduction, s.weight]
                   for s in model.compiled_losses],
        "metrics": _metrics_config(model),
    }
    sig.update(extra)
    return json.dumps(sig, sort_keys=True, default=repr)


def agree(comm, text, what):
    """Raise ValueError on every rank unless all ranks have the same signature `text`."""
    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint8)
    everyone = comm.allgather(digest, f"the signature check of {what}")
    if (everyone == everyone[0]).all():
        return
    texts = [json.loads(t) for t in comm.allgather_bytes(text.encode(), f"the signature check of {what}")]
    other = next(r for r in range(comm.size) if texts[r] != texts[0])
    keys = sorted(set(texts[0]) | set(texts[other]))
    diffs = [k for k in keys if texts[0].get(k) != texts[other].get(k)]
    lines = [_difference(k, texts[0].get(k), texts[other].get(k), other) for k in diffs[:4]]
    raise ValueError(
        f"MPIStrategy: the ranks disagree at {what}; every rank must build the same model, compile "
        "it the same way and pass the same data and fit arguments:\n" + "\n".join(lines))


def sync_from_root(comm, model):
    """Every rank takes rank 0's weights, optimizer state and random state; returns this
    rank's dropout Generator, derived from the broadcast state and the rank."""
    store = model.parameter_store()
    comm.bcast(store.flat, "the broadcast of rank 0's weights")
    note_write()
    for v in model.weights:
        if not store.holds(v):
            buf = np.ascontiguousarray(v.value)
            comm.bcast(buf, "the broadcast of rank 0's weights")
            if buf is not v.value:
                v._write(buf)
    opt = model.optimizer
    if opt is not None and store.size:
        opt.build(store.variables)
        st = opt.get_state()
        it = np.array([st["iterations"]], dtype=np.int64)
        comm.bcast(it, "the broadcast of rank 0's optimizer state")
        for slot in st["slots"]:
            comm.bcast(slot, "the broadcast of rank 0's optimizer state")
        if "u_product" in st:
            u = np.array([st["u_product"]], dtype=np.float64)
            comm.bcast(u, "the broadcast of rank 0's optimizer state")
            st["u_product"] = float(u[0])
        opt.set_state(dict(st, iterations=int(it[0]), learning_rate=None), store.variables)
    mine = pickle.dumps(model.get_training_state()["rng"]["global"])
    state = comm.bcast_bytes(mine, "the broadcast of rank 0's random state")
    model.set_training_state({"rng": {"global": pickle.loads(state)}})
    seed = int.from_bytes(hashlib.sha256(state).digest()[:16], "little")
    return np.random.default_rng([seed, comm.rank])


def weights_agree(comm, model, what):
    """Raise RuntimeError on every rank unless all ranks hold bitwise identical weights."""
    store = model.parameter_store()
    crc = np.array([zlib.crc32(store.flat)], dtype=np.int64)
    crcs = comm.allgather(crc, f"the weight check {what}")[:, 0]
    if (crcs != crcs[0]).any():
        bad = [r for r in range(comm.size) if crcs[r] != crcs[0]]
        raise RuntimeError(
            f"MPIStrategy: the weights of rank(s) {bad} differ from rank 0's {what}. Either code "
            "changed weights on some ranks only (inside fit, e.g. in a callback), or this MPI's "
            "Allreduce returned different sums on different ranks.")


def describe_data(data):
    return {"kind": type(data).__name__, "samples": getattr(data, "n", None),
            "batch_size": getattr(data, "batch_size", None), "steps": getattr(data, "steps", None),
            "shuffle": getattr(data, "shuffle", None)}


def _difference(key, mine, theirs, other):
    """One line naming the first differing entry of a signature field."""
    if isinstance(mine, list) and isinstance(theirs, list):
        for i, (p, q) in enumerate(zip(mine, theirs)):
            if p != q:
                return f"  {key}, entry {i}: rank 0 has {_short(p)}, rank {other} has {_short(q)}"
        return f"  {key}: rank 0 has {len(mine)} entries, rank {other} has {len(theirs)}"
    return f"  {key}: rank 0 has {_short(mine)}, rank {other} has {_short(theirs)}"


def _short(value, limit=160):
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit] + "..."
