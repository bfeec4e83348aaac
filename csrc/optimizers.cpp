// optimizers.cpp — in-place optimizer steps (see optimizers.h).
//
// The buffer is cut into fixed blocks (a multiple of any SIMD width) so the
// elements a kernel's vector body or scalar tail handles are the same for every
// thread count: results never depend on it.
#include "optimizers.h"

#include <algorithm>
#include <cmath>

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

template <class Real>
void adam_update(size_t n, Real* w, const Real* g, Real* m, Real* v, long long step, double lr, double beta1,
                 double beta2, double eps, int nt) {
  // Keras 3 Adam (keras/src/backend/torch/optimizers/torch_adam.py), in the
  // variable's dtype: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t).
  const Real t = Real(step);
  const Real b1p = std::pow(Real(beta1), t), b2p = std::pow(Real(beta2), t);
  const Real alpha = Real(lr) * std::sqrt(Real(1) - b2p) / (Real(1) - b1p);
  // 1 - β is Python arithmetic in Keras (double, then rounded to the dtype).
  const Real c1 = Real(1.0 - beta1), c2 = Real(1.0 - beta2);
  const KernelOps<Real>& k = ops<Real>();
  for_blocks(n, nt, [&](size_t i, size_t len) {
    k.adam(len, w + i, g + i, m + i, v + i, alpha, Real(beta1), Real(beta2), Real(eps), c1, c2);
  });
}

template <class Real>
void sgd_update(size_t n, Real* w, const Real* g, Real* u, double lr, double momentum, bool nesterov, int nt) {
  const KernelOps<Real>& k = ops<Real>();
  for_blocks(n, nt, [&](size_t i, size_t len) {
    k.sgd(len, w + i, g + i, u ? u + i : nullptr, Real(lr), Real(momentum), nesterov);
  });
}

template <class Real>
void rmsprop_update(size_t n, Real* w, const Real* g, Real* s, double lr, double rho, double eps, int nt) {
  const Real c = Real(1.0 - rho);  // as Keras: 1 - ρ in double, then the dtype
  const KernelOps<Real>& k = ops<Real>();
  for_blocks(n, nt, [&](size_t i, size_t len) {
    k.rmsprop(len, w + i, g + i, s + i, Real(lr), Real(rho), Real(eps), c);
  });
}

#define FUSEDLSTM_INSTANTIATE(Real)                                                                          \
  template void adam_update<Real>(size_t, Real*, const Real*, Real*, Real*, long long, double, double, double, \
                                  double, int);                                                              \
  template void sgd_update<Real>(size_t, Real*, const Real*, Real*, double, double, bool, int);              \
  template void rmsprop_update<Real>(size_t, Real*, const Real*, Real*, double, double, double, int);
FUSEDLSTM_INSTANTIATE(float)
FUSEDLSTM_INSTANTIATE(double)
#undef FUSEDLSTM_INSTANTIATE

}  // namespace fusedlstm
