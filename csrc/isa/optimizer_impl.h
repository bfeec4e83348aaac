// optimizer_impl.h — optimizer updates over one flat parameter buffer.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cmath>
#include <cstddef>

#include "isa/impl_common.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// ============================================================================
// Optimizer updates over one flat buffer (Keras 3 formulas; see ops.h, where
// c1, c2, c are the complements 1-β, 1-ρ formed by the caller in double).
// Plain loops: with -ffp-contract=off the compiler vectorises them without
// fusing, so every ISA level gives the same bits.
// ============================================================================

template <class T>
void adam(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v, T alpha,
          T beta1, T beta2, T eps, T c1, T c2) {
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = beta1 * m[i] + c1 * gi;
    const T vi = beta2 * v[i] + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    w[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

template <class T>
void sgd(size_t n, T* __restrict w, const T* __restrict g, T* __restrict u, T lr, T momentum, bool nesterov) {
  if (momentum == T(0)) {
    for (size_t i = 0; i < n; ++i) w[i] -= lr * g[i];
  } else if (nesterov) {
    for (size_t i = 0; i < n; ++i) {
      const T ui = momentum * u[i] - lr * g[i];
      u[i] = ui;
      w[i] += momentum * ui - lr * g[i];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const T ui = momentum * u[i] - lr * g[i];
      u[i] = ui;
      w[i] += ui;
    }
  }
}

template <class T>
void rmsprop(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, T lr, T rho, T eps, T c) {
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T si = rho * s[i] + c * (gi * gi);
    s[i] = si;
    w[i] -= (lr * gi) / std::sqrt(si + eps);
  }
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
