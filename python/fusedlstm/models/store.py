"""One flat buffer for a model's trainable weights, one for their gradients.

Claiming rebinds every trainable `Variable.value` to a view into `flat` (values
copied) and `Variable.grad` to a view into `grad`, so layers keep reading their
weights through the variable while the optimizer sees one contiguous vector and
updates it with a single kernel call. Trainable weights come first in model order
(Keras's get_weights order); non-trainable ones keep their own arrays and lose
their gradient view.

A layer may belong to several models (an encoder inside a seq2seq model and its
inference model). Whichever model trains last holds the variables; the global
generation counter tells the others, in one integer compare per step, that they
must re-claim before their next step.
"""

import numpy as np

_GEN = [0]


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
            v.value = seg.reshape(v.value.shape)
            v.grad = self.grad[a:b].reshape(v.value.shape)
            v._gstamp = -1
            v._owner = self
            self.segments.append((a, b))
            a = b
        bump_generation()

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
