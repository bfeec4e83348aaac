"""Keras 3.15.1's optimizer step over one flat buffer: per-step scalars and the one `_core` call.

`FlatStep` is what `keras.optimizers.Optimizer.apply` does on its PyTorch backend
(keras/src/optimizers/base_optimizer.py, keras/src/backend/torch/optimizers/),
transcribed for a model whose trainable variables lie back to back in one buffer:

    on a gradient-accumulation step that does not update:    acc += g
    else:  g = (g + acc)/steps (accumulating);  clip g (clipnorm per variable,
           global_clipnorm, or clipvalue);  w *= 1 - weight_decay·lr (variables not
           excluded);  the rule (Adam, Nadam, ...);  acc = 0
    then:  ema = m·ema + (1 - m)·w (m = 0 on the first step);  every
           ema_overwrite_frequency steps w = ema
    iterations += 1

Each step is one `_core.<rule>_step` call (or `_core.accumulate_step`). The scalars
Keras computes per step in the variables' dtype — Adam's alpha, Nadam's momentum
products, powers of β — are computed here the same way (NumPy scalars of that
dtype: 0-d float32 tensors in Keras round exactly like them), so the kernels get
the very numbers Keras uses. Hyperparameters go to `_core` as the user's Python
floats: where Keras does Python arithmetic on them (1 - β1) the kernels do it in
double and round once, as Keras does.

This module owns the arithmetic only: argument validation with Keras's messages,
learning-rate schedules, configs and saving belong to the optimizer classes that
wrap a FlatStep (fusedlstm.optimizers). `learning_rate` is passed to every step as
its current value (a schedule evaluated at `iterations`, the raw count, as Keras
evaluates it).

>>> import numpy as np
>>> w = np.ones(3, np.float32); g = np.full(3, 0.5, np.float32)
>>> opt = FlatStep("sgd", 3, momentum=0.0)
>>> opt.apply(w, g, learning_rate=0.1); w.tolist(), opt.iterations
([0.949999988079071, 0.949999988079071, 0.949999988079071], 1)
"""

import numpy as np

from . import _core

__all__ = ["RULES", "DEFAULTS", "FlatStep", "adam_alpha", "nadam_scalars", "beta_power", "learning_rate_value",
           "weight_decay_factor", "ema_step_momentum"]

# Rule -> (its _core step, the state buffers in the order the step takes them).
# Optional buffers (None unless the hyperparameters ask for them) are marked "?".
RULES = {
    "adam": (_core.adam_step, ("m", "v", "vhat?")),
    "nadam": (_core.nadam_step, ("m", "v")),
    "adamax": (_core.adamax_step, ("m", "u")),
    "adagrad": (_core.adagrad_step, ("accumulator",)),
    "adadelta": (_core.adadelta_step, ("accumulated_grad", "accumulated_delta_var")),
    "lion": (_core.lion_step, ("m",)),
    "ftrl": (_core.ftrl_step, ("accumulator", "linear")),
    "rmsprop": (_core.rmsprop_step, ("velocity", "momentum_buf?", "average_grad?")),
    "sgd": (_core.sgd_step, ("u?",)),
}

# Keras's defaults, per rule (AdamW is "adam" with a weight_decay, 0.004 by default in Keras).
DEFAULTS = {
    "adam": dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
    "nadam": dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "adamax": dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "adagrad": dict(initial_accumulator_value=0.1, epsilon=1e-7),
    "adadelta": dict(rho=0.95, epsilon=1e-7),
    "lion": dict(beta_1=0.9, beta_2=0.99),
    "ftrl": dict(learning_rate_power=-0.5, initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0, beta=0.0),
    "rmsprop": dict(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "sgd": dict(momentum=0.0, nesterov=False),
}


# ---------------------------------------------------------------------------
# Per-step scalars, in the variables' dtype as Keras forms them
# ---------------------------------------------------------------------------

def beta_power(beta, local_step, dtype=np.float32):
    """ops.power(ops.cast(β, dtype), ops.cast(iterations + 1, dtype))."""
    dt = np.dtype(dtype).type
    return dt(beta) ** dt(local_step)


def adam_alpha(lr, beta_1, beta_2, local_step, dtype=np.float32):
    """torch_adam.py: alpha = lr·sqrt(1 - β2^t)/(1 - β1^t), every operation in `dtype`.

    In float32 1 - 0.999^t cancels: alpha is up to ~1e-5 (relative) off its exact
    value for small t, as in Keras; it is part of the formula Keras users get.
    """
    dt = np.dtype(dtype).type
    one = dt(1)
    return dt(lr) * np.sqrt(one - beta_power(beta_2, local_step, dtype)) / (one - beta_power(beta_1, local_step,
                                                                                              dtype))


def nadam_scalars(beta_1, beta_2, local_step, u_product, dtype=np.float32):
    """torch_nadam.py's per-step scalars; u_product is the stored product Π_{t-1} (1 at first).

    Returns the keyword arguments of `_core.nadam_step` other than lr and the
    hyperparameters: u_t, u_t_1, u_product_t (the new stored product), u_product_t_1,
    beta_2_power.
    """
    dt = np.dtype(dtype).type
    t, t1 = dt(local_step), dt(local_step + 1)
    decay, b1 = dt(0.96), dt(beta_1)
    u_t = b1 * (dt(1.0) - dt(0.5) * decay ** t)
    u_t_1 = b1 * (dt(1.0) - dt(0.5) * decay ** t1)
    u_product_t = dt(u_product) * u_t
    u_product_t_1 = u_product_t * u_t_1
    return dict(u_t=u_t, u_t_1=u_t_1, u_product_t=u_product_t, u_product_t_1=u_product_t_1,
                beta_2_power=beta_power(beta_2, local_step, dtype))


def learning_rate_value(lr):
    """The learning rate as Keras holds it: a float32 Variable (floatx), whatever the
    variables' dtype; a schedule's value is a float32 tensor too."""
    return np.float32(lr)


def weight_decay_factor(weight_decay, lr):
    """TorchOptimizer._apply_weight_decay multiplies the variables by 1 - wd·lr, formed on
    the float32 learning rate (so in float32 for float64 variables too)."""
    return np.float32(1) - np.float32(weight_decay) * learning_rate_value(lr)


def ema_step_momentum(ema_momentum, iterations, dtype=np.float32):
    """_update_model_variables_moving_average: momentum = ops.multiply(cast(iterations != 0),
    ema_momentum), where keras.ops turns the Python float into a float32 tensor."""
    dt = np.dtype(dtype).type
    return dt(iterations != 0) * dt(np.float32(ema_momentum))


# ---------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------

class FlatStep:
    """Keras 3.15.1's Optimizer.apply over one flat buffer of `size` values.

    Args:
        rule: "adam" (AdamW: "adam" with weight_decay), "nadam", "adamax", "adagrad",
            "adadelta", "lion", "ftrl", "rmsprop" or "sgd".
        size: length of the flat weight buffer.
        dtype: its dtype (float32 or float64).
        segments: (nvars + 1,) offsets of the variables in the buffer (variable k is
            [segments[k], segments[k+1])); None: one variable. Needed for clipnorm
            and weight-decay exclusions, which Keras applies per variable.
        decay_mask: (nvars,) bools, False for variables excluded from weight decay
            (Keras's exclude_from_weight_decay); None: all decay.
        weight_decay, clipnorm, global_clipnorm, clipvalue, use_ema, ema_momentum,
        ema_overwrite_frequency, gradient_accumulation_steps: as in Keras (validated
            by the caller; a clip value <= 0 or None means no clipping, as in Keras).
        **hyper: the rule's hyperparameters (DEFAULTS lists them and Keras's values).

    State: `slots` (name -> array), `iterations` (Keras's `_iterations`, counted on
    every apply), `u_product` (Nadam), `accumulator` and `ema` buffers when used.
    """

    def __init__(self, rule, size, dtype=np.float32, *, segments=None, decay_mask=None, weight_decay=None,
                 clipnorm=None, global_clipnorm=None, clipvalue=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, gradient_accumulation_steps=None, **hyper):
        if rule not in RULES:
            raise ValueError(f"Unknown optimizer rule {rule!r}; expected one of {sorted(RULES)}.")
        unknown = set(hyper) - set(DEFAULTS[rule])
        if unknown:
            raise TypeError(f"{rule}: unexpected hyperparameter(s) {sorted(unknown)}; "
                            f"expected some of {sorted(DEFAULTS[rule])}.")
        self.rule = rule
        self.hyper = {**DEFAULTS[rule], **hyper}
        self.dtype = np.dtype(dtype)
        self.size = int(size)
        self.segments = None if segments is None else np.asarray(segments, np.int64)
        self.decay_mask = None if decay_mask is None else np.asarray(decay_mask, bool)
        self.weight_decay = weight_decay
        # Keras tests `if self.clipnorm and self.clipnorm > 0`: 0 and negatives mean off.
        self.clip = {k: (v if v is not None and v > 0 else None)
                     for k, v in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm),
                                  ("clipvalue", clipvalue))}
        self.use_ema = bool(use_ema)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.accumulation_steps = gradient_accumulation_steps or 0
        self.iterations = 0
        self.u_product = self.dtype.type(1.0)
        self.slots = self._make_slots()
        self.accumulator = np.zeros(self.size, self.dtype) if self.accumulation_steps else None
        self.ema = np.zeros(self.size, self.dtype) if self.use_ema else None

    def _make_slots(self):
        h, n, dt = self.hyper, self.size, self.dtype
        used = {"vhat": h.get("amsgrad", False), "momentum_buf": h.get("momentum", 0) > 0,
                "average_grad": h.get("centered", False), "u": h.get("momentum", 0) != 0}
        slots = {}
        for name in RULES[self.rule][1]:
            optional = name.endswith("?")
            name = name.rstrip("?")
            if optional and not used[name]:
                slots[name] = None
            elif name == "accumulator":  # Adagrad, Ftrl: Constant(initial_accumulator_value)
                slots[name] = np.full(n, h["initial_accumulator_value"], dt)
            else:
                slots[name] = np.zeros(n, dt)
        return slots

    @property
    def step_iterations(self):
        """Keras's `optimizer.iterations`: updates made (raw count // accumulation steps)."""
        return self.iterations // self.accumulation_steps if self.accumulation_steps else self.iterations

    def _ema_kwargs(self):
        if not self.use_ema:
            return {}
        it = self.step_iterations
        overwrite = bool(self.ema_overwrite_frequency) and (it + 1) % self.ema_overwrite_frequency == 0
        return dict(ema=self.ema, ema_momentum=float(ema_step_momentum(self.ema_momentum, it, self.dtype)),
                    ema_overwrite=overwrite)

    def apply(self, w, g, learning_rate):
        """One Keras apply() of the flat gradient g to the flat weights w (both updated in place:
        w always, g never); learning_rate is its value at this step."""
        steps = self.accumulation_steps
        if steps and (self.iterations + 1) % steps != 0:
            _core.accumulate_step(w, g, self.accumulator, **self._ema_kwargs())
            self.iterations += 1
            return
        common = dict(segments=self.segments, **self.clip, **self._ema_kwargs())
        if steps:
            common.update(gradient_accumulator=self.accumulator, accumulation_steps=steps)
        if self.weight_decay is not None:
            common.update(decay=float(weight_decay_factor(self.weight_decay, learning_rate)),
                          decay_mask=self.decay_mask)
        fn, names = RULES[self.rule]
        state = [self.slots[n.rstrip("?")] for n in names]
        kwargs = self._rule_kwargs(learning_rate)
        fn(w, g, *state, **kwargs, **common)
        if self.rule == "nadam":  # the stored product moves on only once the step is done
            self.u_product = self.dtype.type(kwargs["u_product_t"])
        self.iterations += 1

    def _rule_kwargs(self, lr):
        h, dt, t = self.hyper, self.dtype, self.step_iterations + 1
        lr = float(dt.type(learning_rate_value(lr)))  # ops.cast(learning_rate, variable.dtype)
        if self.rule == "adam":
            return dict(alpha=float(adam_alpha(lr, h["beta_1"], h["beta_2"], t, dt)), beta_1=h["beta_1"],
                        beta_2=h["beta_2"], epsilon=h["epsilon"])
        if self.rule == "nadam":
            s = nadam_scalars(h["beta_1"], h["beta_2"], t, self.u_product, dt)
            return dict(lr=lr, beta_1=h["beta_1"], beta_2=h["beta_2"], epsilon=h["epsilon"],
                        **{k: float(v) for k, v in s.items()})
        if self.rule == "adamax":
            return dict(lr=lr, beta_1=h["beta_1"], beta_2=h["beta_2"], epsilon=h["epsilon"],
                        beta_1_power=float(beta_power(h["beta_1"], t, dt)))
        drop = {"initial_accumulator_value", "centered", "amsgrad"}
        return dict(lr=lr, **{k: v for k, v in h.items() if k not in drop})

    def finalize(self, w):
        """Keras's finalize_variable_values: with use_ema, w takes the moving average."""
        if self.use_ema:
            w[...] = self.ema
