"""Weights and the flat parameter store that holds them while a model trains.

A `Variable` is one weight: `.value` is the NumPy array the kernels read, `.grad` its
gradient view. Layers create them (Layer.add_weight) and read `var.value` on every
call, never caching the array, which is what lets several models share a layer.

A model that trains claims its trainable variables into a `ParamStore`: one flat
buffer for the values, one for the gradients. Claiming rebinds every trainable
`Variable.value` to a view into `flat` (values copied) and `Variable.grad` to a view
into `grad`, so layers keep reading their weights through the variable while the
optimizer sees one contiguous vector and updates it with a single kernel call.
Trainable weights come first in model order (Keras's get_weights order); non-trainable
ones keep their own arrays and lose their gradient view.

A layer may belong to several models (an encoder inside a seq2seq model and its
inference model). Whichever model trains last holds the variables; the global
generation counter tells the others, in one integer compare per step, that they
must re-claim before their next step. Setting a layer's `trainable` bumps it too.

This module sits below the layers: layers create variables and bump the generation,
models claim them into stores; neither needs the other for that.

Writes. `.value` is read-only (writing into it raises NumPy's "assignment destination
is read-only"); values change only through `assign` (and the library's own `_write`),
a re-claim, or an optimizer update of the store's flat buffer, and each of these
counts one write (`write_version`). That is what lets a layer keep weights packed for
the inference kernels (layers/recurrent.py) and know, in one integer compare per
call, that they are still the weights it packed.
"""

import numpy as np

__all__ = ["Variable", "ParamStore", "bump_generation", "generation", "note_write", "write_version"]

class Variable:
    """One weight: `.value` is the NumPy array the kernels read; `.grad` its gradient view.

    Mirrors the parts of keras.Variable notebooks touch: name, path, shape,
    trainable, regularizer, constraint, numpy(), assign().
    """

    __slots__ = ("name", "path", "_value", "grad", "trainable", "regularizer", "constraint", "_gstamp", "_owner",
                 "__weakref__")

    def __init__(self, name, value, trainable=True, path=None, regularizer=None, constraint=None):
        self.name = name
        self.path = path or name
        self.value = value
        self.grad = None
        self.trainable = trainable
        # Penalty added to the training loss, and function applied after each optimizer
        # update (fusedlstm.regularizers / fusedlstm.constraints objects; None: none).
        self.regularizer = regularizer
        self.constraint = constraint
        self._gstamp = -1
        self._owner = None  # the parameter store whose buffer holds .value, if any

    @property
    def value(self):
        """The live array the kernels read (read-only: write with `assign`)."""
        return self._value

    @value.setter
    def value(self, array):
        # A copy: the caller's array stays the caller's, so writing it cannot change the weight.
        # The array is no longer in a store's flat buffer: models re-claim before training.
        self._value = _read_only(np.array(array, copy=True))
        self._owner = None
        bump_generation()
        note_write()

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return str(self.value.dtype)

    def numpy(self):
        return self.value.copy()

    def assign(self, value):
        arr = np.asarray(value)
        if arr.shape != self.value.shape:
            raise ValueError(
                f"Cannot assign a value of shape {arr.shape} to variable {self.path!r} of "
                f"shape {self.value.shape}.")
        self._write(arr)

    def _write(self, value):
        """Copy `value` (broadcast to the shape) into the live array: the library's one way in."""
        live = self.value
        live.flags.writeable = True
        try:
            live[...] = value
        finally:
            live.flags.writeable = False
        note_write()

    def __array__(self, dtype=None, copy=None):
        return np.array(self.value, dtype=dtype, copy=True)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def _read_only(a):
    """A read-only view of the array `a` whose memory `Variable._write` can still write."""
    if not a.flags.writeable:  # read-only memory: ours is a copy
        a = a.copy()
    v = a.view()
    v.flags.writeable = False
    return v


_GEN = [0]
_WRITES = [0]


def note_write():
    """Some weight's values may have changed (every write path calls this once)."""
    _WRITES[0] += 1


def write_version():
    """Changes whenever any weight may have been written (see the module docstring)."""
    return _WRITES[0]


def bump_generation():
    """Invalidate every model's claim check (called on re-claims and `trainable` changes)."""
    _GEN[0] += 1


def generation():
    return _GEN[0]


class ParamStore:
    __slots__ = ("variables", "flat", "grad", "segments", "size")

    def __init__(self, variables, dtype):
        self.variables = list(variables)
        sizes = [v.value.size for v in self.variables]
        self.size = int(sum(sizes))
        self.flat = np.empty(self.size, dtype=dtype)
        self.grad = np.zeros(self.size, dtype=dtype)
        self.segments = []
        a = 0
        for v, n in zip(self.variables, sizes):
            b = a + n
            seg = self.flat[a:b]
            seg[...] = v.value.reshape(-1)
            v._value = _read_only(seg.reshape(v.value.shape))
            v.grad = self.grad[a:b].reshape(v.value.shape)
            v._gstamp = -1
            v._owner = self
            self.segments.append((a, b))
            a = b
        bump_generation()
        note_write()

    def holds(self, variable):
        """Whether `variable`'s value lives in this store's flat buffer now."""
        return variable._owner is self

    def holds_all(self):
        return all(v._owner is self for v in self.variables)

    def zero_untouched(self, stamp):
        """Zero the gradient of variables no layer wrote in the step `stamp` (not on the loss path)."""
        for v in self.variables:
            if v._gstamp != stamp:
                v.grad[...] = 0

    def reserve_tail(self, n):
        """The gradient buffer with `n` spare float slots after the gradients.

        Data-parallel training (fusedlstm.distributed) packs each step's loss sums and
        counts behind the gradients so that one in-place Allreduce carries both. The
        first call with a new `n` moves the gradients (and every variable's grad view)
        into a longer buffer; later calls return that buffer as it is.
        """
        full = self.grad if self.grad.base is None else self.grad.base
        if full.size == self.size + n:
            return full
        buf = np.zeros(self.size + n, dtype=self.grad.dtype)
        buf[:self.size] = self.grad
        self.grad = buf[:self.size]
        for v, (a, b) in zip(self.variables, self.segments):
            v.grad = self.grad[a:b].reshape(v.value.shape)
        return buf
