// optimizers.h — in-place optimizer steps over one flat parameter buffer
// (Keras 3 formulas, PyTorch backend order of operations; see isa/ops.h).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fusedlstm {

// ============================================================================
// Keras 3.15.1 optimizer steps (issue 25): BaseOptimizer.apply's work on the
// flat buffer in one call — gradient accumulation, clipping, weight decay, the
// rule, EMA — as its PyTorch backend does it (see isa/ops.h).
//
// The flat buffer holds the model's variables back to back; `offsets` gives
// their boundaries (variable k is [offsets[k], offsets[k+1])), because
// clipnorm and the weight-decay exclusions are per variable in Keras. Every
// run a kernel sees lies inside one variable, and the runs are fixed by the
// offsets alone, so results never depend on the thread count.
// ============================================================================

// What every rule's step shares (defaults: none of it).
template <class Real>
struct StepOptions {
  const int64_t* offsets = nullptr;  // (nvars + 1,): 0 = offsets[0] <= ... <= offsets[nvars] = n; null: one variable
  size_t nvars = 1;
  // Weight decay before the rule (TorchOptimizer._apply_weight_decay): w *= decay_factor,
  // decay_factor = 1 - wd·lr formed by the caller in Real, for variables whose
  // decay_mask byte is nonzero (decay_mask null: all).
  bool decay = false;
  Real decay_factor = 1;
  const uint8_t* decay_mask = nullptr;
  // Clipping of the gradient (BaseOptimizer._clip_gradients): at most one is > 0.
  double clipnorm = 0, global_clipnorm = 0, clipvalue = 0;
  // Gradient accumulation, update step: g ← (g + acc)/acc_steps, then acc = 0.
  Real* acc = nullptr;
  int acc_steps = 0;
  // After the rule: ema = m·ema + (1 - m)·w over the whole buffer (m = ema_momentum as
  // Keras forms it for this step: 0 on the first); then w = ema when ema_overwrite.
  Real* ema = nullptr;
  Real ema_momentum = 0;
  bool ema_overwrite = false;
};

// Per-rule hyperparameters: the user's values (double, rounded as Keras rounds
// them) and the per-step scalars the caller computes as Keras does, in the
// variables' dtype (named after Keras's variables in torch_<rule>.py).
struct AdamStep { double alpha, beta_1, beta_2, epsilon; };  // alpha = lr·sqrt(1-β2^t)/(1-β1^t)
struct NadamStep {
  double lr, beta_1, beta_2, epsilon;
  double u_t, u_t_1;                  // β1·(1 - 0.5·0.96^t), the same at t+1
  double u_product_t, u_product_t_1;  // Π_t (the stored product times u_t), Π_t·u_{t+1}
  double beta_2_power;                // β2^t
};
struct AdamaxStep { double lr, beta_1, beta_2, epsilon, beta_1_power; };
struct AdagradStep { double lr, epsilon; };
struct AdadeltaStep { double lr, rho, epsilon; };
struct LionStep { double lr, beta_1, beta_2; };
struct FtrlStep {
  double lr, learning_rate_power, l1_regularization_strength, l2_regularization_strength,
      l2_shrinkage_regularization_strength, beta;
};
struct RmspropStep { double lr, rho, momentum, epsilon; };
struct SgdStep { double lr, momentum; bool nesterov; };

// One step each. The state buffers have n elements; the optional ones are null
// when unused (vhat: Adam without amsgrad; mom: RMSprop with momentum 0; mg:
// RMSprop not centred; u: SGD with momentum 0).
template <class Real>
void adam_step(size_t n, Real* w, const Real* g, Real* m, Real* v, Real* vhat, const AdamStep& h,
               const StepOptions<Real>& o, int nthreads);
template <class Real>
void nadam_step(size_t n, Real* w, const Real* g, Real* m, Real* v, const NadamStep& h, const StepOptions<Real>& o,
                int nthreads);
template <class Real>
void adamax_step(size_t n, Real* w, const Real* g, Real* m, Real* u, const AdamaxStep& h,
                 const StepOptions<Real>& o, int nthreads);
template <class Real>
void adagrad_step(size_t n, Real* w, const Real* g, Real* s, const AdagradStep& h, const StepOptions<Real>& o,
                  int nthreads);
template <class Real>
void adadelta_step(size_t n, Real* w, const Real* g, Real* s, Real* d, const AdadeltaStep& h,
                   const StepOptions<Real>& o, int nthreads);
template <class Real>
void lion_step(size_t n, Real* w, const Real* g, Real* m, const LionStep& h, const StepOptions<Real>& o,
               int nthreads);
template <class Real>
void ftrl_step(size_t n, Real* w, const Real* g, Real* s, Real* z, const FtrlStep& h, const StepOptions<Real>& o,
               int nthreads);
template <class Real>
void rmsprop_step(size_t n, Real* w, const Real* g, Real* s, Real* mom, Real* mg, const RmspropStep& h,
                  const StepOptions<Real>& o, int nthreads);
template <class Real>
void sgd_step(size_t n, Real* w, const Real* g, Real* u, const SgdStep& h, const StepOptions<Real>& o, int nthreads);

// A gradient-accumulation step that does not update (Keras's non-update steps):
// acc += g, then the EMA part of `o` (offsets, decay, clipping ignored).
template <class Real>
void accumulate_step(size_t n, Real* w, const Real* g, Real* acc, const StepOptions<Real>& o, int nthreads);

}  // namespace fusedlstm
