"""Learning-rate schedules (keras.optimizers.schedules), computed as Keras 3.15.1 computes them.

A schedule is a callable `schedule(step) -> learning rate`; passed as any
optimizer's `learning_rate`, it is evaluated before every update at the
optimizer's raw update count (Keras's `optimizer._iterations`: with gradient
accumulation that is every call, not every update). As in Keras, the value is
a float32 scalar and each operation rounds to float32 in Keras's order (the
step cast to float32, then `step / decay_steps`, ...), so the rates are Keras's
to the last bit. One exception: the cosine schedules call cos (and
CosineDecayRestarts log). Keras's torch backend evaluates those with SLEEF's
vector routines (error up to 1 ulp); here they are correctly rounded, so 1-3% of
the steps get a rate that differs from Keras's by at most 7.5e-8 of the peak rate
(tests/test_schedules.py measures it).

>>> s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
>>> float(s(0)), float(s(10)), float(s(20))
(0.10000000149011612, 0.05000000074505806, 0.02500000037252903)
>>> float(PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])(7))
0.5
"""

import math
import numbers

import numpy as np

from .. import registry as _registry

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize", "get"]

_f32 = np.float32
_MODULE = "keras.optimizers.schedules"


def _real(cls, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{cls}: received an invalid value for argument `{name}`, expected a finite float"
                        f"{' or None' if allow_none else ''}, got {value!r}.")
    return value


def _positive_steps(cls, name, value):
    _real(cls, name, value)
    if value <= 0:  # Keras's message
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    return value


def _step(step):
    """The step as Keras casts it: ops.cast(step, float32)."""
    s = np.asarray(getattr(step, "value", step))
    if s.shape != () or s.dtype.kind not in "iuf" or (s.dtype.kind == "f" and not np.isfinite(s)):
        raise ValueError(f"A learning-rate schedule takes a scalar step count, got {step!r}.")
    return _f32(s)


def _cos(x):
    # Correctly rounded (Keras-torch: SLEEF's cosf, within 1 ulp of it).
    return _f32(math.cos(float(x)))


class LearningRateSchedule:
    """Base class: subclasses implement `__call__(step)` and `get_config()`.

    Subclass it for a schedule of your own (register it with
    fusedlstm.saving.register_keras_serializable to save models that use it).
    """

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
                                  "in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            cfg = self.get_config()
        except NotImplementedError:
            return f"<{type(self).__name__}>"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


@_registry.register("schedules")
class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate · decay_rate^(step / decay_steps) (the exponent floored with staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _real("ExponentialDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _real("ExponentialDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / _f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f32(self.initial_learning_rate) * (_f32(self.decay_rate) ** p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@_registry.register("schedules")
class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
    values[-1] after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:  # Keras's message
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}.")
        for i, b in enumerate(boundaries):
            _real("PiecewiseConstantDecay", f"boundaries[{i}]", b)
        for i, v in enumerate(values):
            _real("PiecewiseConstantDecay", f"values[{i}]", v)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: `boundaries` must be strictly increasing, got {boundaries}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        # Keras compares the int step with the boundaries cast to the step's dtype and sums
        # value·[step in range] in float32: exactly the value of the range the step is in.
        s = np.asarray(getattr(step, "value", step))
        if s.shape != () or s.dtype.kind not in "iuf":
            raise ValueError(f"A learning-rate schedule takes a scalar step count, got {step!r}.")
        bounds = np.asarray(self.boundaries).astype(s.dtype) if s.dtype.kind in "iu" else \
            np.asarray(self.boundaries, dtype=s.dtype)
        return _f32(self.values[int(np.searchsorted(bounds, s, side="left"))])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@_registry.register("schedules")
class PolynomialDecay(LearningRateSchedule):
    """(initial - end)·(1 - step/decay_steps)^power + end, the step capped at decay_steps; with
    cycle, decay_steps grows to the next multiple of itself past the step instead."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = _real("PolynomialDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("PolynomialDecay", "decay_steps", decay_steps)
        self.end_learning_rate = _real("PolynomialDecay", "end_learning_rate", end_learning_rate)
        self.power = _real("PolynomialDecay", "power", power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        s = _step(step)
        decay_steps = _f32(self.decay_steps)
        if self.cycle:
            multiplier = _f32(1.0) if s == 0 else np.ceil(s / _f32(self.decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            s = min(s, decay_steps)
        p = s / decay_steps
        initial, end = _f32(self.initial_learning_rate), _f32(self.end_learning_rate)
        return (initial - end) * ((_f32(1) - p) ** _f32(self.power)) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


@_registry.register("schedules")
class InverseTimeDecay(LearningRateSchedule):
    """initial_learning_rate / (1 + decay_rate · step / decay_steps) (the ratio floored with staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = _real("InverseTimeDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("InverseTimeDecay", "decay_steps", decay_steps)
        self.decay_rate = _real("InverseTimeDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / _f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f32(self.initial_learning_rate) / (_f32(1) + _f32(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@_registry.register("schedules")
class CosineDecay(LearningRateSchedule):
    """Cosine decay from the initial rate (or, after a linear warmup of warmup_steps from the
    initial rate to warmup_target, from warmup_target) to alpha times it over decay_steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _real("CosineDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("CosineDecay", "decay_steps", decay_steps)
        self.alpha = _real("CosineDecay", "alpha", alpha)
        self.name = name
        self.warmup_target = _real("CosineDecay", "warmup_target", warmup_target, allow_none=True)
        self.warmup_steps = _real("CosineDecay", "warmup_steps", warmup_steps)
        if warmup_steps < 0:
            raise ValueError(f"CosineDecay: `warmup_steps` must be >= 0, got {warmup_steps!r}.")

    def _decay(self, step, decay_steps, decay_from):
        fraction = step / decay_steps
        cosine = _f32(0.5) * (_f32(1.0) + _cos(_f32(math.pi) * fraction))
        return decay_from * (_f32(1 - self.alpha) * cosine + _f32(self.alpha))

    def __call__(self, step):
        initial = _f32(self.initial_learning_rate)
        decay_steps = _f32(self.decay_steps)
        s = _step(step)
        if self.warmup_target is None:
            return self._decay(min(s, decay_steps), decay_steps, initial)
        target, warmup_steps = _f32(self.warmup_target), _f32(self.warmup_steps)
        s = min(s, decay_steps + warmup_steps)
        if s < warmup_steps:
            return (target - initial) * (s / warmup_steps) + initial
        return self._decay(s - warmup_steps, decay_steps, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


@_registry.register("schedules")
class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine decay over first_decay_steps, restarting with periods t_mul times longer
    and peaks m_mul times lower each time."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = _real("CosineDecayRestarts", "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _positive_steps("CosineDecayRestarts", "first_decay_steps", first_decay_steps)
        self._t_mul = _real("CosineDecayRestarts", "t_mul", t_mul)
        self._m_mul = _real("CosineDecayRestarts", "m_mul", m_mul)
        if t_mul <= 0:
            raise ValueError(f"CosineDecayRestarts: `t_mul` must be > 0, got {t_mul!r}.")
        self.alpha = _real("CosineDecayRestarts", "alpha", alpha)
        self.name = name

    def __call__(self, step):
        fraction = _step(step) / _f32(self.first_decay_steps)
        t_mul, m_mul, alpha = _f32(self._t_mul), _f32(self._m_mul), _f32(self.alpha)
        if t_mul == 1.0:
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(_f32(math.log(float(_f32(1.0) - fraction * (_f32(1.0) - t_mul))))
                                 / _f32(math.log(float(t_mul))))
            sum_r = (_f32(1.0) - t_mul ** i_restart) / (_f32(1.0) - t_mul)
            fraction = (fraction - sum_r) / (t_mul ** i_restart)
        m_fac = m_mul ** i_restart
        cosine = _f32(0.5) * m_fac * (_f32(1.0) + _cos(_f32(math.pi) * fraction))
        return _f32(self.initial_learning_rate) * ((_f32(1) - alpha) * cosine + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


def serialize(learning_rate_schedule):
    """Keras's form: {"module", "class_name", "config", "registered_name"}."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(f"Expected a LearningRateSchedule, got {learning_rate_schedule!r}.")
    name = _registry.registered_name(learning_rate_schedule)
    custom = ">" in name
    return {"module": None if custom else _MODULE, "class_name": name,
            "config": learning_rate_schedule.get_config(), "registered_name": name if custom else None}


def deserialize(config, custom_objects=None):
    """A schedule from serialize()'s form (Keras's, or {"class_name", "config"})."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A serialized learning-rate schedule must be a dict with 'class_name' and 'config', "
                         f"got {config!r}.")
    name = config.get("registered_name") or config["class_name"]
    obj = _registry.deserialize_keras_object(dict(config, class_name=name), custom_objects, kind="schedules")
    if not isinstance(obj, LearningRateSchedule):
        raise TypeError(f"{name!r} is not a LearningRateSchedule.")
    return obj


def get(identifier):
    """A schedule from an instance or serialize()'s form."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret learning-rate schedule identifier: {identifier!r}")
