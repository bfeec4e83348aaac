"""The optimizers of keras.optimizers, each a rule of optimizer_steps.FlatStep with Keras 3.15.1's
arguments, defaults and checks.

Every class takes, besides its own hyperparameters, the options of
fusedlstm.optimizers.base (weight_decay, clipnorm, clipvalue, global_clipnorm,
use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor,
gradient_accumulation_steps, name). The update formulas are in
csrc/isa/optimizer_impl.h and reference.KerasOptimizer; in short (t = step,
lr = learning rate, g = gradient):

    Adam      m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  w -= m·α/(√v + ε),
              α = lr·√(1-β2^t)/(1-β1^t);  amsgrad: √max(v̂, v) instead of √v
    AdamW     Adam with weight_decay (0.004 by default)
    Nadam     Adam with Nesterov momentum (Dozat's u_t = β1·(1 - 0.5·0.96^t))
    Adamax    u = max(β2·u, |g|);  w -= lr·m/((u + ε)(1-β1^t))
    Adagrad   s += g²;  w -= lr·g/√(s + ε)
    Adadelta  Δ = -√(d + ε)·g/√(s + ε) with s, d running means of g², Δ²;  w += lr·Δ
    Lion      w -= lr·sign(β1·m + (1-β1)·g);  m = β2·m + (1-β2)·g
    Ftrl      follow-the-regularized-leader (McMahan et al.)
    RMSprop   s = ρs + (1-ρ)g²;  w -= lr·g/√(s + ε)  (centered: s - ḡ²; momentum: a velocity)
    SGD       u = μu - lr·g;  w += u  (nesterov: w = (w - lr·g) + μu)
"""

import math
import numbers

from .. import registry as _registry
from .base import Optimizer, positive, unit_interval

__all__ = ["Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Lion", "Ftrl", "RMSprop", "SGD"]


def _flag(name, value):
    if not isinstance(value, bool) and value not in (0, 1):
        raise TypeError(f"Received an invalid value for argument `{name}`, expected a bool, got {value!r}.")
    return bool(value)


def _betas(beta_1, beta_2, epsilon=None):
    h = {"beta_1": unit_interval("beta_1", beta_1), "beta_2": unit_interval("beta_2", beta_2)}
    if epsilon is not None:
        h["epsilon"] = positive("epsilon", epsilon)
    return h


@_registry.register("optimizers", aliases=("adam",))
class Adam(Optimizer):
    """Adam (Kingma & Ba); `amsgrad` uses the running maximum of the second moment."""

    _rule = "adam"
    _keras_groups = (("m", "v"), ("vhat",))

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        hyper = dict(_betas(beta_1, beta_2, epsilon), amsgrad=_flag("amsgrad", amsgrad))
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("adamw",))
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): weight_decay=0.004 by default."""

    def __init__(self, learning_rate=None, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if weight_decay is None:  # Keras's message
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, **kwargs)


@_registry.register("optimizers", aliases=("nadam",))
class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016), as Keras 3 computes it."""

    _rule = "nadam"
    _keras_groups = (("m", "v"),)

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, _hyper=_betas(beta_1, beta_2, epsilon), **kwargs)


@_registry.register("optimizers", aliases=("adamax",))
class Adamax(Optimizer):
    """Adam with the infinity norm (Kingma & Ba, section 7)."""

    _rule = "adamax"
    _keras_groups = (("m", "u"),)

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, _hyper=_betas(beta_1, beta_2, epsilon), **kwargs)


@_registry.register("optimizers", aliases=("adagrad",))
class Adagrad(Optimizer):
    """Per-parameter rates from the accumulated squared gradients (Duchi et al.)."""

    _rule = "adagrad"
    _keras_groups = (("accumulator",),)

    def __init__(self, learning_rate=None, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        hyper = {"initial_accumulator_value": positive("initial_accumulator_value", initial_accumulator_value,
                                                       allow_zero=True),
                 "epsilon": positive("epsilon", epsilon)}
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("adadelta",))
class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012); Keras's default learning rate is 0.001."""

    _rule = "adadelta"
    _keras_groups = (("accumulated_grad", "accumulated_delta_var"),)

    def __init__(self, learning_rate=None, rho=0.95, epsilon=1e-7, **kwargs):
        hyper = {"rho": unit_interval("rho", rho), "epsilon": positive("epsilon", epsilon)}
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("lion",))
class Lion(Optimizer):
    """Lion (Chen et al. 2023): the sign of an interpolated momentum."""

    _rule = "lion"
    _keras_groups = (("m",),)

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.99, **kwargs):
        if isinstance(beta_1, numbers.Real) and not isinstance(beta_1, bool) and (beta_1 <= 0 or beta_1 > 1):
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to "
                             f"SignSGD. Received: beta_1={beta_1}.")  # Keras's message
        hyper = {"beta_1": unit_interval("beta_1", beta_1, closed=True, open_low=True),
                 "beta_2": unit_interval("beta_2", beta_2, closed=True)}
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("ftrl",))
class Ftrl(Optimizer):
    """Follow-the-regularized-leader (McMahan et al. 2013) with L1, L2 and L2-shrinkage terms."""

    _rule = "ftrl"
    _keras_groups = (("accumulator", "linear"),)

    def __init__(self, learning_rate=None, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        values = {"learning_rate_power": learning_rate_power, "initial_accumulator_value": initial_accumulator_value,
                  "l1_regularization_strength": l1_regularization_strength,
                  "l2_regularization_strength": l2_regularization_strength,
                  "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength, "beta": beta}
        hyper = {}
        for name, v in values.items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise TypeError(f"Received an invalid value for argument `{name}`, expected a float, got {v!r}.")
            if name == "learning_rate_power" and v > 0:  # Keras's messages
                raise ValueError(f"`learning_rate_power` needs to be negative or zero. Received: "
                                 f"learning_rate_power={v}.")
            if name != "learning_rate_power" and v < 0:
                raise ValueError(f"`{name}` needs to be positive or zero. Received: {name}={v}.")
            hyper[name] = float(v)
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("rmsprop",))
class RMSprop(Optimizer):
    """RMSprop (Hinton); `centered` divides by the variance estimate, `momentum` adds a velocity."""

    _rule = "rmsprop"
    _keras_groups = (("velocity",), ("momentum_buf",), ("average_grad",))

    def __init__(self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        hyper = {"rho": unit_interval("rho", rho), "momentum": unit_interval("momentum", momentum),
                 "epsilon": positive("epsilon", epsilon), "centered": _flag("centered", centered)}
        super().__init__(learning_rate, _hyper=hyper, **kwargs)


@_registry.register("optimizers", aliases=("sgd",))
class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum; Keras's default learning rate 0.01."""

    _rule = "sgd"
    _default_lr = 0.01
    _keras_groups = (("u",),)

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, **kwargs):
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum} "
                             f"(of type {type(momentum)}).")
        hyper = {"momentum": float(momentum), "nesterov": _flag("nesterov", nesterov)}
        super().__init__(learning_rate, _hyper=hyper, **kwargs)
