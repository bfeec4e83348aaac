"""Adam, SGD and RMSprop over one flat weight buffer: one `_core.*_update` call per step.

A model's trainable weights live in one contiguous float32 buffer and their
gradients in another (fusedlstm.variables.ParamStore), so an update is a single
kernel call however many layers the model has. Formulas are Keras 3's (PyTorch
backend order of operations, which decides the last bits; see csrc/isa/ops.h and
reference.py):

    Adam:    m = β1·m + (1 - β1)·g;  v = β2·v + (1 - β2)·g²
             w -= (m · α) / (sqrt(v) + ε),  α = lr·sqrt(1 - β2^t)/(1 - β1^t)
    SGD:     u = μu - lr·g;  w += u   (nesterov: w += μu - lr·g)
    RMSprop: s = ρs + (1 - ρ)g²;  w -= lr·g / sqrt(s + ε)

Gradient clipping follows keras.src.optimizers.base_optimizer: clipnorm rescales
each variable's gradient to norm ≤ clipnorm (g·c / max(‖g‖, c)), global_clipnorm
rescales all of them together, clipvalue clips elementwise; at most one of the
three may be set.

Keras 2 spellings: `lr=` is accepted for `learning_rate`, and `decay=` applies the
Keras 2 time decay lr / (1 + decay · iterations) (Keras 3 ignores it with a warning).

`get(identifier)` resolves a name ('adam'), a config dict ({"class_name": "Adam",
"config": {...}}) or an instance: compile(), load_model and the Keras-file reader all
call it. Each class registers itself in fusedlstm.registry under its class name.
"""

import math
import numbers

import numpy as np

from . import _core
from . import registry as _registry

__all__ = ["Optimizer", "Adam", "SGD", "RMSprop", "get", "serialize", "deserialize"]


def _positive(name, value, allow_zero=False):
    expected = f"a {'non-negative' if allow_zero else 'positive'} float"
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    return float(value)


def _decay_rate(name, value):
    """A moving-average coefficient (beta_1, beta_2, rho): a float in [0, 1)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected a float in [0, 1), got {value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a float in [0, 1), got {value!r}.")
    return float(value)


class Optimizer:
    """Base class. Subclasses implement _slots(n) and _update(w, g, lr)."""

    _default_lr = 0.001

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, lr=None, decay=0.0, **kwargs):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if lr is not None:
            if learning_rate is not None:
                raise ValueError("Pass either `learning_rate` or its Keras 2 alias `lr`, not both.")
            learning_rate = lr
        if learning_rate is None:
            learning_rate = self._default_lr
        for arg, val in (("weight_decay", weight_decay), ("loss_scale_factor", loss_scale_factor),
                         ("gradient_accumulation_steps", gradient_accumulation_steps),
                         ("ema_overwrite_frequency", ema_overwrite_frequency)):
            if val is not None:
                raise NotImplementedError(f"{type(self).__name__}: argument `{arg}` is not supported by fusedlstm.")
        if use_ema:
            raise NotImplementedError(f"{type(self).__name__}: `use_ema=True` is not supported by fusedlstm.")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _positive("clipvalue", clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else _positive("global_clipnorm", global_clipnorm)
        self.decay = _positive("decay", decay, allow_zero=True)
        self.name = name or type(self).__name__.lower()
        self.learning_rate = learning_rate
        self.iterations = 0
        self._size = None

    # --- learning rate ------------------------------------------------------------------

    @property
    def learning_rate(self):
        """The learning rate as a float (the schedule's value at the current step for a schedule)."""
        lr = self._lr
        if callable(lr):
            lr = float(lr(self.iterations))
        return float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value) and not isinstance(value, numbers.Real):
            self._lr = value
            return
        v = getattr(value, "value", value)  # a Keras-style variable wrapper
        if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
            v = v.item()
        self._lr = _positive("learning_rate", v.item() if isinstance(v, np.generic) else v, allow_zero=True)

    # Keras 2 name.
    lr = learning_rate

    def _step_lr(self):
        lr = self.learning_rate
        if self.decay:
            lr = lr / (1.0 + self.decay * self.iterations)
        return lr

    # --- update ---------------------------------------------------------------------------

    def build(self, size):
        """Allocate the slot buffers for a flat parameter vector of `size` floats."""
        if self._size != size:
            self._size = size
            self._alloc(size)

    @property
    def built(self):
        """Whether the slot buffers exist (after the first update or build())."""
        return self._size is not None

    def _alloc(self, size):
        pass

    def _clip(self, g, segments):
        if self.clipnorm:
            c = self.clipnorm
            for a, b in segments:
                seg = g[a:b]
                n = math.sqrt(float(np.dot(seg, seg)))
                if n > c:
                    seg *= c / n
        elif self.global_clipnorm:
            c = self.global_clipnorm
            n = math.sqrt(float(np.dot(g, g)))
            if not math.isfinite(n):
                g[...] = np.nan
            elif n > c:
                g *= c / n
        elif self.clipvalue:
            np.clip(g, -self.clipvalue, self.clipvalue, out=g)

    def apply_flat(self, w, g, segments=()):
        """One update of the flat weights w from the flat gradient g (clipped in place)."""
        self.build(w.size)
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            self._clip(g, segments)
        lr = self._step_lr()
        self.iterations += 1
        self._update(w, g, lr)

    def _update(self, w, g, lr):
        raise NotImplementedError

    # --- state and config ------------------------------------------------------------------

    def _slot_arrays(self):
        return []

    def _n_slots(self):
        """How many flat state arrays _alloc creates (what a saved state must hold)."""
        return 0

    def get_state(self):
        """{"iterations", "slots": copies of the flat state arrays (Adam: m, v),
        "learning_rate": the float rate, None for a schedule}."""
        lr = None if callable(self._lr) else float(self._lr)
        return {"iterations": self.iterations, "slots": [s.copy() for s in self._slot_arrays()],
                "learning_rate": lr}

    def check_state(self, state, size):
        """Raise ValueError unless `state` (get_state's form) fits this optimizer over `size` weights."""
        slots = list(state.get("slots") or [])
        n = self._n_slots()
        if len(slots) != n or any(np.shape(s) != (size,) or np.asarray(s).dtype.kind != "f" for s in slots):
            raise ValueError(
                f"the optimizer state does not fit this model's {type(self).__name__}: expected {n} float "
                f"slot array(s) of shape ({size},), the file has "
                f"{[(np.shape(s), str(np.asarray(s).dtype)) for s in slots]}.")

    def set_state(self, state, size):
        """Take get_state()'s form for a flat parameter vector of `size` floats (checked first:
        a state that does not fit raises ValueError and changes nothing). A "learning_rate"
        entry replaces a constant rate (a schedule keeps its own)."""
        self.check_state(state, size)
        self.build(size)
        self.iterations = int(state["iterations"])
        for dst, src in zip(self._slot_arrays(), state["slots"] or []):
            dst[...] = src
        lr = state.get("learning_rate")
        if lr is not None and not callable(self._lr):
            self.learning_rate = lr

    def get_config(self):
        lr = self._lr
        if callable(lr):
            raise NotImplementedError("Saving an optimizer whose learning rate is a schedule is not supported.")
        return {"name": self.name, "learning_rate": lr, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
                "decay": self.decay}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_registry.register("optimizers", aliases=("adam",))
class Adam(Optimizer):
    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if amsgrad:
            raise NotImplementedError("Adam: `amsgrad=True` is not supported by fusedlstm.")
        self.beta_1 = _decay_rate("beta_1", beta_1)
        self.beta_2 = _decay_rate("beta_2", beta_2)
        self.epsilon = _positive("epsilon", epsilon)
        self._m = self._v = None

    def _alloc(self, size):
        self._m = np.zeros(size, np.float32)
        self._v = np.zeros(size, np.float32)

    def _slot_arrays(self):
        return [self._m, self._v] if self._m is not None else []

    def _n_slots(self):
        return 2

    def _update(self, w, g, lr):
        _core.adam_update(w, g, self._m, self._v, step=self.iterations, lr=lr,
                          beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return cfg


@_registry.register("optimizers", aliases=("sgd",))
class SGD(Optimizer):
    _default_lr = 0.01

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum} (of type {type(momentum)}).")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._u = None

    def _alloc(self, size):
        self._u = np.zeros(size, np.float32) if self.momentum else None

    def _slot_arrays(self):
        return [self._u] if self._u is not None else []

    def _n_slots(self):
        return 1 if self.momentum else 0

    def _update(self, w, g, lr):
        _core.sgd_update(w, g, self._u, lr=lr, momentum=self.momentum, nesterov=self.nesterov)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(momentum=self.momentum, nesterov=self.nesterov)
        return cfg


@_registry.register("optimizers", aliases=("rmsprop",))
class RMSprop(Optimizer):
    def __init__(self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if momentum:
            raise NotImplementedError("RMSprop: `momentum` other than 0 is not supported by fusedlstm.")
        if centered:
            raise NotImplementedError("RMSprop: `centered=True` is not supported by fusedlstm.")
        self.rho = _decay_rate("rho", rho)
        self.epsilon = _positive("epsilon", epsilon)
        self._s = None

    def _alloc(self, size):
        self._s = np.zeros(size, np.float32)

    def _slot_arrays(self):
        return [self._s] if self._s is not None else []

    def _n_slots(self):
        return 1

    def _update(self, w, g, lr):
        _core.rmsprop_update(w, g, self._s, lr=lr, rho=self.rho, epsilon=self.epsilon)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rho=self.rho, epsilon=self.epsilon)
        return cfg


_KERAS_ONLY = ("adamw", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "adafactor", "lamb", "muon")


def __getattr__(name):
    if name.lower() in _KERAS_ONLY:
        raise NotImplementedError(f"keras.optimizers.{name} is not implemented by fusedlstm; use Adam, SGD or RMSprop.")
    raise AttributeError(f"module 'fusedlstm.optimizers' has no attribute {name!r}")


def get(identifier):
    """An Optimizer from a name ('adam', 'sgd', 'rmsprop'), a {"class_name", "config"} dict
    (serialize's form) or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _registry.lookup("optimizers", identifier.lower())
        if cls is None:
            if identifier.lower() in _KERAS_ONLY:
                raise NotImplementedError(f"Optimizer {identifier!r} is not implemented by fusedlstm; use 'adam', 'sgd' or 'rmsprop'.")
            raise ValueError(
                f"Could not interpret optimizer identifier: {identifier!r} (argument `optimizer`, expected "
                "'adam', 'sgd', 'rmsprop' or a fusedlstm.optimizers.Optimizer).")
        return cls()
    raise TypeError(
        f"Could not interpret optimizer identifier: {identifier!r} (expected 'adam', 'sgd', "
        "'rmsprop' or a fusedlstm.optimizers.Optimizer).")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    cls = {"Adam": Adam, "SGD": SGD, "RMSprop": RMSprop}.get(config.get("class_name"))
    if cls is None:
        raise NotImplementedError(f"Optimizer class {config.get('class_name')!r} is not supported.")
    return cls.from_config(dict(config.get("config", {})))
