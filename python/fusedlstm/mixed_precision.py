"""keras.mixed_precision: the global dtype policy and the policy class under their legacy names.

    import fusedlstm as keras
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras.Sequential([..., keras.layers.Dense(10, activation="softmax", dtype="float32")])

Keras's LossScaleOptimizer is not here: it exists for float16, whose narrow exponent
underflows small gradients; bfloat16 has float32's exponent range and needs no loss scaling.
"""

from .dtype_policies import DTypePolicy, dtype_policy, set_dtype_policy

# Keras 3 keeps the Keras 2 names as aliases.
Policy = DTypePolicy
global_policy = dtype_policy
set_global_policy = set_dtype_policy

__all__ = ["DTypePolicy", "Policy", "dtype_policy", "global_policy", "set_dtype_policy", "set_global_policy"]
