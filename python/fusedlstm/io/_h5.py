"""Careful HDF5 access: no links out of the file, no datasets that lie about their size.

A weights file is data from elsewhere. HDF5 can point outside itself (external
and soft links, external or virtual datasets) or declare a huge array that is
mostly fill value; Keras refuses those and so do we, before reading anything.
A damaged file makes h5py raise OSError, KeyError, RuntimeError, ... at any
access: `open_file` reports all of them as one ValueError naming the file.
"""

import contextlib
import math

import numpy as np

__all__ = ["open_file", "get_group", "read_dataset", "attr_strings"]

# Above this, a dataset must store at least 1/100 of what it declares (as a zip member must:
# fusedlstm.untrusted); Keras writes weights uncompressed, so a real file stores all of it.
_BOMB_FLOOR_BYTES = 64 << 20
_MAX_EXPANSION = 100
# What h5py raises for a damaged file (a bit flip in a B-tree, a truncated chunk, a bad attribute).
_DAMAGE = (OSError, KeyError, RuntimeError, TypeError, AttributeError, IndexError, UnicodeDecodeError,
           OverflowError, RecursionError, SystemError)


@contextlib.contextmanager
def open_file(h5py, file, source: str):
    """h5py.File(file, "r") for the duration of the block; any h5py failure inside the block
    (opening included) becomes ValueError naming `source`."""
    try:
        with h5py.File(file, "r") as f:
            yield f
    except _DAMAGE as exc:
        raise ValueError(f"{source}: not a readable HDF5 file, or a damaged one ({type(exc).__name__}: "
                         f"{str(exc)[:300]}).") from None


def _link_ok(h5py, parent, name: str, source: str) -> None:
    link = parent.get(name, default=None, getclass=True, getlink=True)
    if link in (h5py.ExternalLink, h5py.SoftLink):
        raise ValueError(f"{source}: refusing an HDF5 {link.__name__} at {parent.name}/{name}.")


def get_group(h5py, root, path: str, source: str):
    """The group at `path` (slash-separated), or None when some part is missing."""
    current = root
    for part in [p for p in path.split("/") if p]:
        if part not in current:
            return None
        _link_ok(h5py, current, part, source)
        current = current[part]
        if not isinstance(current, h5py.Group):
            raise ValueError(f"{source}: expected a group at {current.name}, found a dataset.")
    return current


def read_dataset(h5py, group, name: str, source: str) -> np.ndarray:
    """The dataset `name` of `group` as a NumPy array of numbers, after the safety checks."""
    if name not in group:
        raise ValueError(f"{source}: {group.name} has no dataset {name!r}.")
    _link_ok(h5py, group, name, source)
    ds = group[name]
    where = f"{source}: {ds.name}"
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{where} is a group, expected a dataset.")
    if ds.external or ds.is_virtual:
        raise ValueError(f"{where} is an external/virtual dataset; refusing data stored outside the file.")
    declared = math.prod(ds.shape) * ds.dtype.itemsize
    if declared > _BOMB_FLOOR_BYTES and declared > _MAX_EXPANSION * ds.id.get_storage_size():
        raise ValueError(f"{where} declares {declared} bytes but stores {ds.id.get_storage_size()}; refusing it.")
    kind = ds.dtype.kind
    if ds.attrs.get("dtype") == "bfloat16":
        raise ValueError(f"{where} holds bfloat16 weights; fusedlstm loads float16/32/64 weights only.")
    if kind not in "fiu":
        raise ValueError(f"{where} has dtype {ds.dtype}, expected numbers.")
    return np.asarray(ds[()])


def attr_strings(obj, name: str):
    """A list-of-strings attribute, joining Keras's chunked `name0`, `name1`... form; [] when absent."""
    def decode(values):
        return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]

    if name in obj.attrs:
        value = obj.attrs[name]
        if isinstance(value, (bytes, str)):
            return decode([value])
        return decode(list(np.asarray(value).reshape(-1)))
    out, chunk = [], 0
    while f"{name}{chunk}" in obj.attrs:
        out += decode(list(np.asarray(obj.attrs[f"{name}{chunk}"]).reshape(-1)))
        chunk += 1
    return out
