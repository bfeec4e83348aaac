"""The optimizer base class: Keras 3.15.1's arguments, learning rate, state and config around one FlatStep.

A model's trainable weights live in one contiguous buffer and their gradients in
another (fusedlstm.variables.ParamStore), so an update is a single `_core` call
however many layers the model has: `optimizer_steps.FlatStep` computes Keras's
per-step scalars and makes it. This class holds what Keras's BaseOptimizer holds
around the rule — argument checks, the learning rate (a float, a
LearningRateSchedule evaluated at every update, or a no-argument callable),
exclude_from_weight_decay, the EMA of the weights, gradient accumulation — and
the state as data (get_state/set_state) for files, checkpoints and MPI.

The options act as in Keras (keras/src/optimizers/base_optimizer.py):
  clipnorm         each variable's gradient rescaled to norm <= clipnorm
  global_clipnorm  all gradients rescaled together; clipvalue clips elementwise
                   (at most one of the three)
  weight_decay     w *= 1 - weight_decay·lr before the rule (AdamW-style, decoupled),
                   except variables excluded by exclude_from_weight_decay
  use_ema          ema = m·ema + (1 - m)·w after every update (m = 0 at the first);
                   ema_overwrite_frequency N copies ema into the weights every N
                   updates, and fit copies it at its end (finalize_variable_values)
  gradient_accumulation_steps N
                   N calls per update: the first N - 1 add the gradient up, the Nth
                   updates with the mean; `iterations` counts updates, a schedule
                   sees every call (Keras's `_iterations`)
  loss_scale_factor
                   Keras multiplies the loss by it and divides the gradients by it
                   again (for float16); our gradients are float32 and never scaled,
                   so it is accepted, saved, and changes nothing (scale_loss applies it).

Keras 2 spellings: `lr=` for `learning_rate`, and `decay=` applies Keras 2's time decay
lr / (1 + decay·iterations) (Keras 3 ignores it with a warning).
"""

import math
import numbers
import re

import numpy as np

from .. import registry as _registry
from ..optimizer_steps import FlatStep
from . import schedules as _schedules

__all__ = ["Optimizer"]

# Our names of the state buffers besides the rule's slots, in get_state()["slots"] order.
ACCUMULATOR, EMA = "gradient_accumulator", "ema"


# --- argument checks ---------------------------------------------------------------------------

def _number(name, value, expected):
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    return float(value)


def positive(name, value, allow_zero=False):
    expected = f"a {'non-negative' if allow_zero else 'positive'} float"
    v = _number(name, value, expected)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    return v


def unit_interval(name, value, closed=False, open_low=False):
    """A coefficient in [0, 1) ((0, 1] / [0, 1] with the flags)."""
    lo, hi = ("(" if open_low else "["), ("]" if closed else ")")
    expected = f"a float in {lo}0, 1{hi}"
    v = _number(name, value, expected)
    if v < 0 or (open_low and v == 0) or v > 1 or (v == 1 and not closed):
        raise ValueError(f"Received an invalid value for argument `{name}`, expected {expected}, got {value!r}.")
    return v


def _optional_int(name, value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected an integer or None, "
                        f"got {value!r}.")
    return int(value)


def _is_schedule_like(value):
    return callable(value) and not isinstance(value, (numbers.Real, np.ndarray))


class Optimizer:
    """Base of the optimizers (keras.optimizers.Optimizer's public surface).

    A subclass names its rule (optimizer_steps.RULES) in `_rule`, its default learning
    rate in `_default_lr`, passes its hyperparameters to __init__ (checked there, in
    get_config order) and describes Keras's optimizer variables in `_keras_groups`
    (see keras_variable_groups).
    """

    _rule = None
    _default_lr = 0.001
    # Keras's per-variable optimizer variables, in the order Keras creates them: groups
    # of our slot names, each group interleaved over the variables (Adam: momentum and
    # velocity of the first variable, of the second, ...; then velocity_hat of each).
    _keras_groups = ()

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, lr=None, decay=0.0, _hyper=None, **kwargs):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if lr is not None:
            if learning_rate is not None:
                raise ValueError("Pass either `learning_rate` or its Keras 2 alias `lr`, not both.")
            learning_rate = lr
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.clipnorm = None if clipnorm is None else positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else positive("clipvalue", clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else positive("global_clipnorm", global_clipnorm)
        self.weight_decay = None if weight_decay is None else positive("weight_decay", weight_decay, allow_zero=True)
        self.loss_scale_factor = None if loss_scale_factor is None else positive("loss_scale_factor",
                                                                                 loss_scale_factor)
        steps = _optional_int("gradient_accumulation_steps", gradient_accumulation_steps)
        if steps and steps < 2:  # Keras's message
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                             f"gradient_accumulation_steps={gradient_accumulation_steps}")
        self.gradient_accumulation_steps = steps or None
        if not isinstance(use_ema, (bool, np.bool_)):
            raise TypeError(f"Received an invalid value for argument `use_ema`, expected a bool, got {use_ema!r}.")
        self.use_ema = bool(use_ema)
        if self.use_ema:  # Keras checks these only with use_ema
            if isinstance(ema_momentum, (bool, str)) or not isinstance(ema_momentum, numbers.Real) \
                    or not 0 <= ema_momentum <= 1:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (isinstance(ema_overwrite_frequency, bool) or not isinstance(
                    ema_overwrite_frequency, numbers.Integral) or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency}")
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.decay = positive("decay", decay, allow_zero=True)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Received an invalid value for argument `name`, expected a string, got {name!r}.")
        self.name = name or _snake(type(self).__name__)
        self._hyper = dict(_hyper or {})
        self._lr = None
        self.learning_rate = self._default_lr if learning_rate is None else learning_rate
        self._step = None  # the FlatStep, made by build()
        self._iterations = 0  # Keras's _iterations: apply calls (kept here until build)
        self._built_key = self._built_list = None
        self._variables = None
        self._exclude_ids, self._exclude_pattern = set(), None

    # --- learning rate ------------------------------------------------------------------------

    @property
    def learning_rate(self):
        """The learning rate now (a schedule's value at the current step) as a float."""
        return float(self._lr_value())

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, _schedules.LearningRateSchedule) or _is_schedule_like(value):
            self._lr = value
            return
        if self._lr is not None and not isinstance(self._lr, float):
            # Keras's message (it raises the same for a schedule; a callable cannot be assigned to either).
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning "
                "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
                f"argument. (Its learning rate is {self._lr!r}.)")
        v = getattr(value, "value", value)  # a Keras-style variable wrapper
        if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
            v = v.item()
        self._lr = positive("learning_rate", v.item() if isinstance(v, np.generic) else v, allow_zero=True)

    # Keras 2 name.
    lr = learning_rate

    def _lr_value(self):
        """The rate Keras uses for the next update: a schedule at the raw step count, as float32."""
        lr = self._lr
        if isinstance(lr, _schedules.LearningRateSchedule):
            return np.float32(lr(self._iterations))
        if callable(lr):
            return np.float32(lr())
        return lr

    def _step_lr(self):
        lr = self._lr_value()
        if self.decay:  # Keras 2's time decay, in double as Keras 2's Python code formed it
            lr = float(lr) / (1.0 + self.decay * self._iterations)
        return lr

    def scale_loss(self, loss):
        """The loss times loss_scale_factor (Keras's scale_loss), or the loss as it is."""
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    # --- step counts -------------------------------------------------------------------------

    @property
    def iterations(self):
        """Updates made: calls to apply, divided by gradient_accumulation_steps (as Keras's)."""
        it = self._step.iterations if self._step is not None else self._iterations
        return it // self.gradient_accumulation_steps if self.gradient_accumulation_steps else it

    @property
    def built(self):
        """Whether the state buffers exist (after build(), set_state() or the first update)."""
        return self._step is not None

    # --- weight decay exclusions --------------------------------------------------------------

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leave variables out of weight decay: those in `var_list`, and those whose name
        contains (re.search) any string of `var_names` (e.g. ["bias"])."""
        self._exclude_ids = {id(v) for v in var_list} if var_list else set()
        if var_names:
            names = list(var_names) if not isinstance(var_names, str) else [var_names]
            if not all(isinstance(n, str) for n in names):
                raise TypeError(f"Received an invalid value for argument `var_names`, expected a list of strings, "
                                f"got {var_names!r}.")
            self._exclude_pattern = re.compile("|".join(set(names)))
        else:
            self._exclude_pattern = None
        if self._step is not None and self._variables is not None:
            self._step.decay_mask = self._decay_mask(self._variables)

    def _use_weight_decay(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        return not (self._exclude_pattern is not None and self._exclude_pattern.search(variable.name) is not None)

    def _decay_mask(self, variables):
        if variables is None or self.weight_decay is None:
            return None
        mask = np.array([self._use_weight_decay(v) for v in variables], dtype=bool)
        return None if mask.all() else mask

    # --- building and updating ----------------------------------------------------------------

    def build(self, var_list, dtype=None):
        """Create the state for `var_list` (the model's trainable Variables in flat-buffer order,
        or the length of a flat buffer). Building again for the same variables keeps the state;
        for others (another size or dtype) the state starts afresh and `iterations` is kept."""
        if var_list is self._built_list and self._step is not None:
            return
        if isinstance(var_list, numbers.Integral):
            sizes, variables = [int(var_list)], None
            dt = np.dtype(dtype or (self._step.dtype if self._step is not None else np.float32))
        else:
            variables = list(var_list)
            sizes = [int(np.prod(v.shape)) for v in variables]
            dts = {np.dtype(v.dtype) for v in variables}
            if len(dts) > 1:
                raise ValueError(f"{type(self).__name__}: the variables mix dtypes {sorted(map(str, dts))}.")
            dt = np.dtype(dtype or (dts.pop() if dts else np.float32))
        segments = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        size = int(segments[-1])
        step = self._step
        if step is None or step.size != size or step.dtype != dt:
            iterations = self._step.iterations if step is not None else self._iterations
            step = FlatStep(self._rule, size, dt, segments=None, weight_decay=self.weight_decay,
                            clipnorm=self.clipnorm, global_clipnorm=self.global_clipnorm, clipvalue=self.clipvalue,
                            use_ema=self.use_ema, ema_momentum=self.ema_momentum,
                            ema_overwrite_frequency=self.ema_overwrite_frequency,
                            gradient_accumulation_steps=self.gradient_accumulation_steps, **self._hyper)
            step.iterations = iterations
            self._step = step
        if variables is not None or step.segments is None:
            step.segments = segments if len(sizes) > 1 else None
            self._variables = variables
            step.decay_mask = self._decay_mask(variables)
        self._built_list = var_list if variables is not None else None

    def apply_flat(self, w, g, segments=()):
        """One update of the flat weights `w` from the flat gradient `g` (which is only read).

        `segments`: the variables' (begin, end) in the buffer when the optimizer was not
        built for them (per-variable clipnorm needs them); the trainer builds it first.
        """
        if self._step is None or self._step.size != w.size or self._step.dtype != w.dtype:
            self.build(w.size, w.dtype)
            if len(segments) > 1 and self._variables is None:
                self._step.segments = np.array([a for a, _ in segments] + [segments[-1][1]], np.int64)
        lr = self._step_lr()
        self._step.apply(w, g, lr)
        self._iterations = self._step.iterations

    def apply_gradients(self, grads_and_vars):
        """Keras's apply_gradients(zip(grads, variables)): one update of those variables."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self.iterations

    def apply(self, grads, trainable_variables=None):
        """One update of `trainable_variables` (default: the variables the optimizer was built
        with) from `grads`, arrays in the same order (Keras's apply)."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if self._variables is None:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be built on "
                                 "a list of variables. Call `optimizer.build(trainable_variables)` first. ")
            variables = self._variables
        else:
            variables = list(trainable_variables)
            if self._variables is not None and [id(v) for v in variables] != [id(v) for v in self._variables]:
                raise ValueError(
                    f"Unknown variable(s): this optimizer was built for {len(self._variables)} other variables. "
                    "It can only be called for the variables it was originally built with. When working with a "
                    "new set of variables, you should recreate a new optimizer instance.")
        if len(grads) != len(variables):
            raise ValueError(f"Received {len(grads)} gradients for {len(variables)} variables.")
        if any(g is None for g in grads):
            raise ValueError("fusedlstm optimizers update all their variables together: every gradient must be an "
                             "array (got None for "
                             f"{[getattr(v, 'path', v) for g, v in zip(grads, variables) if g is None]}).")
        self.build(variables)
        dt = self._step.dtype
        for g, v in zip(grads, variables):
            if np.shape(g) != tuple(v.shape):
                raise ValueError(f"The gradient of {getattr(v, 'path', v)} has shape {np.shape(g)}, the variable "
                                 f"{tuple(v.shape)}.")
        w = np.concatenate([np.asarray(v.value, dt).reshape(-1) for v in variables]) if variables else np.zeros(0, dt)
        g = np.concatenate([np.asarray(a, dt).reshape(-1) for a in grads])
        self.apply_flat(w, g)
        for v, (a, b) in zip(variables, zip(self._step_segments()[:-1], self._step_segments()[1:])):
            v._write(w[a:b].reshape(v.value.shape))

    def _step_segments(self):
        s = self._step.segments
        return [0, self._step.size] if s is None else [int(x) for x in s]

    def finalize_variable_values(self, var_list=None):
        """With use_ema, the variables take the moving average (fit does this at its end)."""
        if not self.use_ema or self._step is None:
            return
        variables = self._variables if var_list is None else list(var_list)
        if variables is None:
            raise ValueError("finalize_variable_values: pass the variables the optimizer was built with.")
        ema, seg = self._step.ema, self._step_segments()
        if len(variables) != len(seg) - 1 or sum(int(np.prod(v.shape)) for v in variables) != self._step.size:
            raise ValueError(
                f"The length of model variables ({len(variables)}) to override does not match the length of model "
                f"variables stored in the optimizer ({len(seg) - 1}). Please check if the optimizer was called on "
                "your model.")
        for v, a, b in zip(variables, seg[:-1], seg[1:]):
            v._write(ema[a:b].reshape(v.value.shape))

    # --- state as data -----------------------------------------------------------------------

    def slot_names(self):
        """Names of the flat state buffers, in get_state()["slots"] order: the rule's slots in use,
        then the gradient accumulator and the EMA when those options are on."""
        names = []
        probe = self._step if self._step is not None else FlatStep(
            self._rule, 0, np.float32, gradient_accumulation_steps=self.gradient_accumulation_steps,
            use_ema=self.use_ema, **self._hyper)
        names = [k for k, a in probe.slots.items() if a is not None]
        if self.gradient_accumulation_steps:
            names.append(ACCUMULATOR)
        if self.use_ema:
            names.append(EMA)
        return names

    def _n_slots(self):
        """How many flat state arrays the optimizer keeps (what a saved state must hold)."""
        return len(self.slot_names())

    def _state_arrays(self):
        s = self._step
        out = [a for a in s.slots.values() if a is not None]
        if s.accumulator is not None:
            out.append(s.accumulator)
        if s.ema is not None:
            out.append(s.ema)
        return out

    def get_state(self):
        """{"iterations": calls to apply so far (Keras's _iterations), "learning_rate": the float
        rate (None for a schedule or callable), "slots": copies of the flat state buffers
        (slot_names() order; [] before build), and for Nadam "u_product"}."""
        st = {"iterations": self._step.iterations if self._step is not None else self._iterations,
              "learning_rate": self._lr if isinstance(self._lr, float) else None,
              "slots": [a.copy() for a in self._state_arrays()] if self._step is not None else []}
        if self._rule == "nadam":
            st["u_product"] = float(self._step.u_product) if self._step is not None else 1.0
        return st

    def check_state(self, state, size):
        """Raise ValueError unless `state` (get_state's form) fits this optimizer over `size`
        weights (or over the variables `size`)."""
        n = size if isinstance(size, numbers.Integral) else int(sum(np.prod(v.shape) for v in size))
        slots = list(state.get("slots") or [])
        names = self.slot_names()
        it = state.get("iterations", 0)
        if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 0:
            raise ValueError(f"the optimizer state's iteration count must be a non-negative integer, got {it!r}.")
        fresh = not slots and it == 0  # saved before the first update: the buffers start afresh
        bad = any(np.shape(s) != (n,) or np.asarray(s).dtype.kind != "f" for s in slots)
        if bad or (not fresh and len(slots) != len(names)):
            raise ValueError(
                f"the optimizer state does not fit this model's {type(self).__name__}: expected "
                f"{len(names)} float slot array(s) ({', '.join(names) or 'none'}) of shape ({n},), the file has "
                f"{[(np.shape(s), str(np.asarray(s).dtype)) for s in slots]}.")
        u = state.get("u_product")
        if u is not None and (isinstance(u, bool) or not isinstance(u, numbers.Real) or not math.isfinite(u)):
            raise ValueError(f"the optimizer state's u_product must be a finite float, got {u!r}.")

    def set_state(self, state, size):
        """Take get_state()'s form for `size` weights (or the variables `size`): checked first
        (a state that does not fit raises ValueError and changes nothing). A "learning_rate"
        entry replaces a float rate (a schedule keeps its own). Empty slots (a state saved
        before the first update, iterations 0) leave fresh buffers."""
        self.check_state(state, size)
        if not state.get("slots"):
            self._step = self._built_list = None  # fresh buffers
        self.build(size)
        self._step.iterations = self._iterations = int(state.get("iterations", 0))
        arrays = self._state_arrays()
        for dst, src in zip(arrays, state.get("slots") or []):
            dst[...] = src
        if self._rule == "nadam":
            self._step.u_product = self._step.dtype.type(state.get("u_product", 1.0))
        lr = state.get("learning_rate")
        if lr is not None and isinstance(self._lr, float):
            self.learning_rate = lr

    # --- config ------------------------------------------------------------------------------

    def _serialized_lr(self):
        lr = self._lr
        if isinstance(lr, float):
            return lr
        if isinstance(lr, _schedules.LearningRateSchedule):
            return _schedules.serialize(lr)
        try:
            return _registry.serialize_keras_object(lr)
        except NotImplementedError:
            raise NotImplementedError(
                f"Cannot save the config of {type(self).__name__}: its learning rate is the callable {lr!r}. "
                "Use a keras.optimizers.schedules.LearningRateSchedule (or register the function with "
                "fusedlstm.saving.register_keras_serializable).") from None

    def get_config(self):
        """Keras 3.15.1's config (every constructor argument), plus Keras 2's `decay` when set."""
        config = {
            "name": self.name, "learning_rate": self._serialized_lr(), "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
            "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency, "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
        config.update(self._hyper)
        if self.decay:
            config["decay"] = self.decay
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = _schedules.deserialize(lr, custom_objects)
        elif isinstance(lr, str):
            config["learning_rate"] = _registry.deserialize_keras_object(lr, custom_objects)
        return cls(**config)

    # --- Keras's optimizer variables ---------------------------------------------------------

    def keras_variable_groups(self):
        """Keras's optimizer variables after `iterations` and `learning_rate`, as groups of our
        state names, each interleaved over the trainable variables: the EMA, the gradient
        accumulators, then the rule's (Keras's BaseOptimizer.build, then the subclass's)."""
        groups = []
        if self.use_ema:
            groups.append((EMA,))
        if self.gradient_accumulation_steps:
            groups.append((ACCUMULATOR,))
        used = set(self.slot_names())
        for group in self._keras_groups:
            if all(name in used for name in group):
                groups.append(group)
        return groups

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._lr!r}>"


def _snake(name):
    """The default `name`: the class name in lower case ("adam", "rmsprop"), what our files
    have always held (Keras's auto_name gives "rm_sprop"; the name changes nothing)."""
    return name.lower()
