// optimizers.cpp — in-place optimizer steps (see optimizers.h).
//
// The buffer is cut into fixed blocks (a multiple of any SIMD width) so the
// elements a kernel's vector body or scalar tail handles are the same for every
// thread count: results never depend on it.
#include "optimizers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"
#include "isa/ops.h"

namespace fusedlstm {
namespace {

constexpr size_t kBlock = size_t(1) << 16;

template <class F> void for_blocks(size_t n, int nt, F&& f) {
  const int nblocks = as_int("optimizer update", "number of 64Ki-element blocks", (n + kBlock - 1) / kBlock);
  FpModeGuard fp_guard;
  parallel_rows(nblocks, n, nt, [&](int b0, int b1) {
    const size_t i0 = size_t(b0) * kBlock, i1 = std::min(n, size_t(b1) * kBlock);
    f(i0, i1 - i0);
  });
}

}  // namespace

// ============================================================================
// Keras 3.15.1 optimizer steps (issue 25)
//
// The driver below is BaseOptimizer._backend_apply_gradients over the flat
// buffer. The buffer is cut into runs: each variable into pieces of at most
// kBlock elements, starting at the variable's first element. Passes:
//   1. (accumulation with a norm to take) acc = (g + acc)/steps, in place;
//   2. (clipnorm, global_clipnorm) the sum of squares of each run in double,
//      then of each variable in run order: the same sums for any thread count;
//   3. per run, in chunks of kChunk elements that stay in L1: clip the gradient
//      into a stack buffer, scale w by the weight decay, apply the rule, zero
//      the accumulator, update the EMA and maybe overwrite w with it.
// Keras does each of these over all variables before the next; every one is
// elementwise (the norms are taken first), so doing them chunk by chunk gives
// the same values with one pass over memory instead of five.
// ============================================================================

namespace {

constexpr size_t kChunk = 2048;

struct Run {
  size_t begin, len, var;
};

std::vector<Run> make_runs(size_t n, const int64_t* offsets, size_t nvars) {
  std::vector<Run> runs;
  if (!offsets) nvars = 1;
  for (size_t k = 0; k < nvars; ++k) {
    const size_t a = offsets ? size_t(offsets[k]) : 0, b = offsets ? size_t(offsets[k + 1]) : n;
    for (size_t i = a; i < b; i += kBlock) runs.push_back({i, std::min(kBlock, b - i), k});
  }
  return runs;
}

// Σ x², four double accumulators in a fixed order (the same on every ISA level).
template <class Real> double sum_squares(const Real* x, size_t n) {
  double s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += double(x[i + j]) * double(x[i + j]);
  for (; i < n; ++i) s[0] += double(x[i]) * double(x[i]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

template <class Real> Real nan_max(Real a, Real b) { return (a < b || b != b) ? b : a; }  // torch.maximum
template <class Real> Real nan_min(Real a, Real b) { return (b < a || b != b) ? b : a; }  // torch.minimum

// A Python float given to a keras.ops function: its torch backend converts it to a
// float32 (floatx) tensor, and ops.maximum/minimum with one return float32 — the same
// as Real for float variables, a float32-rounded constant for float64 ones.
inline float keras_const(double x) { return float(x); }

// Calls f(run) for every run, the runs split over threads in contiguous ranges.
template <class F> void for_runs(const std::vector<Run>& runs, size_t n, int nt, F&& f) {
  const int nruns = as_int("optimizer step", "number of runs (variables and 64Ki-element blocks)", runs.size());
  parallel_rows(nruns, n, nt, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) f(size_t(r));
  });
}

// rule(i, len, g): the rule's kernel over elements [i, i + len) with the prepared gradient g.
template <class Real, class Rule>
void drive(size_t n, Real* w, const Real* g, const StepOptions<Real>& o, int nt, Rule&& rule) {
  const KernelOps<Real>& k = ops<Real>();
  FpModeGuard fp_guard;
  const std::vector<Run> runs = make_runs(n, o.offsets, o.nvars);
  const size_t nvars = o.offsets ? o.nvars : 1;
  const bool norms = o.clipnorm > 0 || o.global_clipnorm > 0;
  const Real steps = Real(o.acc_steps);

  const Real* src = o.acc ? o.acc : g;
  bool averaged = false;
  if (o.acc && norms) {
    for_runs(runs, n, nt, [&](size_t r) { k.opt_average(runs[r].len, o.acc + runs[r].begin, g + runs[r].begin, steps); });
    averaged = true;
  }

  Clip mode = Clip::none;
  Real a = 0;
  std::vector<Real> b(nvars, Real(1));  // per variable (clipnorm's divisor)
  if (norms) {
    std::vector<double> run_ss(runs.size());
    for_runs(runs, n, nt, [&](size_t r) { run_ss[r] = sum_squares(src + runs[r].begin, runs[r].len); });
    std::vector<double> var_ss(nvars, 0.0);
    for (size_t r = 0; r < runs.size(); ++r) var_ss[runs[r].var] += run_ss[r];
    if (o.clipnorm > 0) {
      // _clip_by_norm: ops.multiply(values, clipnorm) / ops.maximum(l2norm, clipnorm) (float32)
      mode = Clip::norm;
      const float c = keras_const(o.clipnorm);
      a = Real(c);
      for (size_t v = 0; v < nvars; ++v) b[v] = Real(nan_max(float(Real(std::sqrt(var_ss[v]))), c));
    } else {
      // clip_by_global_norm: scale = c·ops.minimum(1/norm, 1/c) + (norm - norm), the product
      // in float32 (ops.minimum's type); NaN when the norm is not finite.
      double total = 0;
      for (double x : var_ss) total += x;
      const Real norm = Real(std::sqrt(total));
      const float c = keras_const(o.global_clipnorm);
      mode = Clip::scale;
      a = Real(c * nan_min(float(Real(1) / norm), keras_const(1.0 / o.global_clipnorm))) + (norm - norm);
    }
  } else if (o.clipvalue > 0) {
    mode = Clip::value;  // ops.clip(g, -v, v)
    a = Real(keras_const(o.clipvalue));
  }

  const Real ema_c = Real(1) - o.ema_momentum;  // ops.subtract(1, momentum), in the dtype
  for_runs(runs, n, nt, [&](size_t r) {
    alignas(64) Real buf[kChunk];
    const Run& run = runs[r];
    const bool decay = o.decay && (!o.decay_mask || o.decay_mask[run.var]);
    for (size_t i = run.begin, end = run.begin + run.len; i < end; i += kChunk) {
      const size_t len = std::min(kChunk, end - i);
      if (o.acc && !averaged) k.opt_average(len, o.acc + i, g + i, steps);
      const Real* gc = src + i;
      if (mode != Clip::none) {
        k.opt_clip(len, gc, buf, mode, a, b[run.var]);
        gc = buf;
      }
      if (decay) k.opt_scale(len, w + i, o.decay_factor);
      rule(i, len, gc);
      // Keras resets the accumulators with acc *= 0 (a NaN would stay); zeros are what it means.
      if (o.acc) std::memset(o.acc + i, 0, len * sizeof(Real));
      if (o.ema) {
        k.opt_ema(len, o.ema + i, w + i, o.ema_momentum, ema_c);
        if (o.ema_overwrite) std::memcpy(w + i, o.ema + i, len * sizeof(Real));
      }
    }
  });
}

}  // namespace

template <class Real>
void adam_step(size_t n, Real* w, const Real* g, Real* m, Real* v, Real* vhat, const AdamStep& h,
               const StepOptions<Real>& o, int nt) {
  const AdamArgs<Real> a{Real(h.alpha), Real(h.beta_1), Real(h.beta_2), Real(h.epsilon), Real(1.0 - h.beta_1),
                         Real(1.0 - h.beta_2)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) {
    if (vhat)
      k.adam_amsgrad(len, w + i, gc, m + i, v + i, vhat + i, a);
    else
      k.adam(len, w + i, gc, m + i, v + i, a.alpha, a.beta1, a.beta2, a.eps, a.c1, a.c2);
  });
}

template <class Real>
void nadam_step(size_t n, Real* w, const Real* g, Real* m, Real* v, const NadamStep& h, const StepOptions<Real>& o,
                int nt) {
  // torch_nadam.py: 1 - u_t, 1 - β2^t are tensor arithmetic; 1 - convert_to_numpy(Π) is
  // NumPy's in the same dtype: all in Real.
  const Real u_t = Real(h.u_t), one = Real(1);
  const NadamArgs<Real> a{Real(h.lr), Real(h.beta_1), Real(h.beta_2), Real(h.epsilon), Real(1.0 - h.beta_1),
                          Real(1.0 - h.beta_2), Real(h.u_t_1), one - Real(h.u_product_t_1), one - u_t,
                          one - Real(h.u_product_t), one - Real(h.beta_2_power)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.nadam(len, w + i, gc, m + i, v + i, a); });
}

template <class Real>
void adamax_step(size_t n, Real* w, const Real* g, Real* m, Real* u, const AdamaxStep& h,
                 const StepOptions<Real>& o, int nt) {
  const AdamaxArgs<Real> a{Real(h.lr), Real(h.beta_1), Real(h.beta_2), Real(h.epsilon), Real(1.0 - h.beta_1),
                           Real(1) - Real(h.beta_1_power)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.adamax(len, w + i, gc, m + i, u + i, a); });
}

template <class Real>
void adagrad_step(size_t n, Real* w, const Real* g, Real* s, const AdagradStep& h, const StepOptions<Real>& o,
                  int nt) {
  const AdagradArgs<Real> a{Real(h.lr), Real(h.epsilon)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.adagrad(len, w + i, gc, s + i, a); });
}

template <class Real>
void adadelta_step(size_t n, Real* w, const Real* g, Real* s, Real* d, const AdadeltaStep& h,
                   const StepOptions<Real>& o, int nt) {
  const AdadeltaArgs<Real> a{Real(h.lr), Real(h.rho), Real(h.epsilon), Real(1.0 - h.rho)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.adadelta(len, w + i, gc, s + i, d + i, a); });
}

template <class Real>
void lion_step(size_t n, Real* w, const Real* g, Real* m, const LionStep& h, const StepOptions<Real>& o, int nt) {
  const LionArgs<Real> a{Real(h.lr), Real(h.beta_1), Real(h.beta_2), Real(1.0 - h.beta_1), Real(1.0 - h.beta_2)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.lion(len, w + i, gc, m + i, a); });
}

template <class Real>
void ftrl_step(size_t n, Real* w, const Real* g, Real* s, Real* z, const FtrlStep& h, const StepOptions<Real>& o,
               int nt) {
  // ftrl.py: l2_reg = l2 + β/(2.0·lr) and 2·l2_reg are tensor arithmetic (Real); the
  // shrinkage 2·l2s, the power -learning_rate_power and l1 go through keras.ops.
  const Real lr = Real(h.lr);
  const Real l2_reg = Real(h.l2_regularization_strength) + Real(h.beta) / (Real(2) * lr);
  const FtrlArgs<Real> a{lr, Real(keras_const(-h.learning_rate_power)),
                         Real(keras_const(h.l1_regularization_strength)), Real(2) * l2_reg,
                         Real(keras_const(2.0 * h.l2_shrinkage_regularization_strength))};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) { k.ftrl(len, w + i, gc, s + i, z + i, a); });
}

template <class Real>
void rmsprop_step(size_t n, Real* w, const Real* g, Real* s, Real* mom, Real* mg, const RmspropStep& h,
                  const StepOptions<Real>& o, int nt) {
  const RmspropArgs<Real> a{Real(h.lr), Real(h.rho), Real(h.epsilon), Real(1.0 - h.rho), Real(h.momentum)};
  const KernelOps<Real>& k = ops<Real>();
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) {
    k.rmsprop_full(len, w + i, gc, s + i, mom ? mom + i : nullptr, mg ? mg + i : nullptr, a);
  });
}

template <class Real>
void sgd_step(size_t n, Real* w, const Real* g, Real* u, const SgdStep& h, const StepOptions<Real>& o, int nt) {
  const KernelOps<Real>& k = ops<Real>();
  const Real lr = Real(h.lr), mu = Real(h.momentum);
  drive(n, w, g, o, nt, [&](size_t i, size_t len, const Real* gc) {
    if (u && h.nesterov)
      k.sgd_nesterov(len, w + i, gc, u + i, lr, mu);
    else
      k.sgd(len, w + i, gc, u ? u + i : nullptr, lr, mu);
  });
}

template <class Real>
void accumulate_step(size_t n, Real* w, const Real* g, Real* acc, const StepOptions<Real>& o, int nt) {
  const KernelOps<Real>& k = ops<Real>();
  const Real ema_c = Real(1) - o.ema_momentum;
  for_blocks(n, nt, [&](size_t i, size_t len) {
    k.opt_accumulate(len, acc + i, g + i);
    if (o.ema) {
      k.opt_ema(len, o.ema + i, w + i, o.ema_momentum, ema_c);
      if (o.ema_overwrite) std::memcpy(w + i, o.ema + i, len * sizeof(Real));
    }
  });
}

#define FUSEDLSTM_INSTANTIATE(Real)                                                                          \
  template void adam_step<Real>(size_t, Real*, const Real*, Real*, Real*, Real*, const AdamStep&,             \
                                const StepOptions<Real>&, int);                                              \
  template void nadam_step<Real>(size_t, Real*, const Real*, Real*, Real*, const NadamStep&,                  \
                                 const StepOptions<Real>&, int);                                             \
  template void adamax_step<Real>(size_t, Real*, const Real*, Real*, Real*, const AdamaxStep&,                \
                                  const StepOptions<Real>&, int);                                            \
  template void adagrad_step<Real>(size_t, Real*, const Real*, Real*, const AdagradStep&,                     \
                                   const StepOptions<Real>&, int);                                           \
  template void adadelta_step<Real>(size_t, Real*, const Real*, Real*, Real*, const AdadeltaStep&,            \
                                    const StepOptions<Real>&, int);                                          \
  template void lion_step<Real>(size_t, Real*, const Real*, Real*, const LionStep&, const StepOptions<Real>&, \
                                int);                                                                        \
  template void ftrl_step<Real>(size_t, Real*, const Real*, Real*, Real*, const FtrlStep&,                    \
                                const StepOptions<Real>&, int);                                              \
  template void rmsprop_step<Real>(size_t, Real*, const Real*, Real*, Real*, Real*, const RmspropStep&,       \
                                   const StepOptions<Real>&, int);                                           \
  template void sgd_step<Real>(size_t, Real*, const Real*, Real*, const SgdStep&, const StepOptions<Real>&, int); \
  template void accumulate_step<Real>(size_t, Real*, const Real*, Real*, const StepOptions<Real>&, int);
FUSEDLSTM_INSTANTIATE(float)
FUSEDLSTM_INSTANTIATE(double)
#undef FUSEDLSTM_INSTANTIATE

}  // namespace fusedlstm
