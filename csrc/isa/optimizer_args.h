// optimizer_args.h — the scalars of the optimizer kernels in ops.h ("optimizers
// (issue 25)"), one plain struct per update rule.
//
// Every field is already rounded to T by the driver (optimizers.cpp) the way
// Keras 3.15.1's PyTorch backend forms it, which is one of two ways:
//   * Python arithmetic on the user's floats (1 - self.beta_1 is a double,
//     then torch rounds it to float as the alpha of _foreach_add_): the driver
//     computes it in double and rounds once;
//   * tensor arithmetic in the variable's dtype (ops.power(ops.cast(β1, dtype),
//     t), 1 - u_product_t, ...): the caller or the driver computes it in T.
// A third case: a Python float that Keras passes to a keras.ops function becomes a
// float32 tensor there (its "floatx"), so for float64 variables it is a
// float32-rounded constant ("through float32" below).
// The comment on each field says which.
#pragma once

namespace fusedlstm {

// How a run of gradient values is clipped before the rule (keras BaseOptimizer._clip_gradients):
//   norm : g·a / b    (clipnorm: a = clipnorm, b = max(‖g_var‖, clipnorm), both in T)
//   scale: g·a        (global_clipnorm: a = the global scale factor)
//   value: clip(g, -a, a)
enum class Clip : int { none = 0, norm = 1, scale = 2, value = 3 };

template <class T> struct AdamArgs {
  T alpha;           // lr·sqrt(1 - β2^t)/(1 - β1^t), in T (caller)
  T beta1, beta2;    // β1, β2 rounded to T
  T eps;             // ε rounded to T
  T c1, c2;          // 1 - β1, 1 - β2 in double, rounded to T
};

template <class T> struct NadamArgs {
  T lr, beta1, beta2, eps, c1, c2;  // as AdamArgs; lr the learning rate in T
  T u_next;          // u_{t+1} = β1·(1 - 0.5·0.96^(t+1)), in T (caller)
  T d_next;          // 1 - Π_{t+1} (Π: product of the u's up to that step), in T
  T c_g;             // 1 - u_t, in T
  T d_now;           // 1 - Π_t, in T
  T d_v;             // 1 - β2^t, in T
};

template <class T> struct AdamaxArgs {
  T lr, beta1, beta2, eps, c1;
  T d;               // 1 - β1^t, in T (β1^t from the caller)
};

template <class T> struct AdagradArgs {
  T lr, eps;
};

template <class T> struct AdadeltaArgs {
  T lr, rho, eps;
  T c;               // 1 - ρ in double, rounded to T
};

template <class T> struct LionArgs {
  T lr, beta1, beta2, c1, c2;
};

template <class T> struct FtrlArgs {
  T lr;
  T power;           // -learning_rate_power (0.5 by default: then sqrt), through float32
  T l1;              // l1_regularization_strength, through float32
  T two_l2;          // 2·(l2 + β/(2·lr)), all in T
  T two_shrinkage;   // 2·l2_shrinkage_regularization_strength in double, through float32
};

template <class T> struct RmspropArgs {
  T lr, rho, eps;
  T c;               // 1 - ρ in double, rounded to T
  T momentum;        // μ (used when the momentum buffer is given)
};

}  // namespace fusedlstm
