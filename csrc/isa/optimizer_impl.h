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
// c1, c2 are the complements 1-β formed by the caller in double).
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

// SGD without Nesterov (torch_sgd.py): u = μ·u - lr·g; w += u; μ = 0: w -= lr·g.
template <class T>
void sgd(size_t n, T* __restrict w, const T* __restrict g, T* __restrict u, T lr, T momentum) {
  if (momentum == T(0)) {
    for (size_t i = 0; i < n; ++i) w[i] -= lr * g[i];
  } else {
    for (size_t i = 0; i < n; ++i) {
      const T ui = momentum * u[i] - lr * g[i];
      u[i] = ui;
      w[i] += ui;
    }
  }
}

// ============================================================================
// Optimizers (issue 25): Keras 3.15.1's BaseOptimizer steps around a rule and
// the rules of its PyTorch backend, over a run inside one variable.
//
// Each line follows the order of the torch _foreach_ calls it transcribes
// (keras/src/backend/torch/optimizers/torch_<rule>.py), so the float32
// roundings are Keras's; torch fuses `x + α·y` into an FMA in its vector
// loops, which we do not (-ffp-contract=off keeps every ISA level bitwise
// equal), a difference of at most one rounding per update. NaN handling
// follows torch: maximum and clip propagate NaN, sign(NaN) is 0.
// ============================================================================

template <class T>
inline T nan_max(T a, T b) {  // torch.maximum: NaN if either is NaN
  return (a < b || b != b) ? b : a;
}

template <class T>
void opt_accumulate(size_t n, T* __restrict acc, const T* __restrict g) {
  for (size_t i = 0; i < n; ++i) acc[i] += g[i];
}

template <class T>
void opt_average(size_t n, T* __restrict acc, const T* __restrict g, T steps) {
  for (size_t i = 0; i < n; ++i) acc[i] = (g[i] + acc[i]) / steps;
}

template <class T>
void opt_clip(size_t n, const T* __restrict g, T* __restrict out, Clip mode, T a, T b) {
  switch (mode) {
    case Clip::norm:  // _clip_by_norm: values·clipnorm / max(l2norm, clipnorm)
      for (size_t i = 0; i < n; ++i) out[i] = (g[i] * a) / b;
      break;
    case Clip::scale:  // clip_by_global_norm: v·scale
      for (size_t i = 0; i < n; ++i) out[i] = g[i] * a;
      break;
    case Clip::value:  // ops.clip(g, -v, v); NaN stays NaN
      for (size_t i = 0; i < n; ++i) {
        const T x = g[i];
        out[i] = x < -a ? -a : (x > a ? a : x);
      }
      break;
    default:
      for (size_t i = 0; i < n; ++i) out[i] = g[i];
  }
}

// Keras's Nesterov SGD (torch_sgd.py: two _foreach_add_ on w, the gradient's first).
template <class T>
void sgd_nesterov(size_t n, T* __restrict w, const T* __restrict g, T* __restrict u, T lr, T momentum) {
  for (size_t i = 0; i < n; ++i) {
    const T ui = momentum * u[i] - lr * g[i];
    u[i] = ui;
    w[i] = (w[i] - lr * g[i]) + momentum * ui;
  }
}

template <class T>
void opt_scale(size_t n, T* __restrict w, T f) {
  for (size_t i = 0; i < n; ++i) w[i] *= f;
}

template <class T>
void opt_ema(size_t n, T* __restrict avg, const T* __restrict w, T m, T c) {
  for (size_t i = 0; i < n; ++i) avg[i] = m * avg[i] + c * w[i];
}

template <class T>
void adam_amsgrad(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v,
                  T* __restrict vhat, const AdamArgs<T>& a) {
  const T alpha = a.alpha, b1 = a.beta1, b2 = a.beta2, eps = a.eps, c1 = a.c1, c2 = a.c2;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = b1 * m[i] + c1 * gi;
    const T vi = b2 * v[i] + c2 * (gi * gi);
    const T vh = nan_max(vhat[i], vi);
    m[i] = mi;
    v[i] = vi;
    vhat[i] = vh;
    w[i] -= (mi * alpha) / (std::sqrt(vh) + eps);
  }
}

template <class T>
void nadam(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v,
           const NadamArgs<T>& a) {
  const T lr = a.lr, b1 = a.beta1, b2 = a.beta2, eps = a.eps, c1 = a.c1, c2 = a.c2;
  const T u_next = a.u_next, d_next = a.d_next, c_g = a.c_g, d_now = a.d_now, d_v = a.d_v;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = b1 * m[i] + c1 * gi;
    const T vi = b2 * v[i] + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    const T m_hat = (mi * u_next) / d_next + (gi * c_g) / d_now;
    const T v_hat = vi / d_v;
    w[i] -= (m_hat * lr) / (std::sqrt(v_hat) + eps);
  }
}

template <class T>
void adamax(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict u,
            const AdamaxArgs<T>& a) {
  const T lr = a.lr, b1 = a.beta1, b2 = a.beta2, eps = a.eps, c1 = a.c1, d = a.d;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = b1 * m[i] + c1 * gi;
    const T ui = nan_max(b2 * u[i], std::fabs(gi));
    m[i] = mi;
    u[i] = ui;
    w[i] -= (mi * lr) / ((ui + eps) * d);
  }
}

template <class T>
void adagrad(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, const AdagradArgs<T>& a) {
  const T lr = a.lr, eps = a.eps;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T si = s[i] + gi * gi;
    s[i] = si;
    w[i] -= (gi * lr) / std::sqrt(si + eps);
  }
}

template <class T>
void adadelta(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, T* __restrict d,
              const AdadeltaArgs<T>& a) {
  const T lr = a.lr, rho = a.rho, eps = a.eps, c = a.c;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T si = rho * s[i] + c * (gi * gi);
    const T delta = -((std::sqrt(d[i] + eps) * gi) / std::sqrt(si + eps));
    s[i] = si;
    d[i] = rho * d[i] + c * (delta * delta);
    w[i] += lr * delta;
  }
}

template <class T>
void lion(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, const LionArgs<T>& a) {
  const T lr = a.lr, b1 = a.beta1, b2 = a.beta2, c1 = a.c1, c2 = a.c2;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T c = b1 * m[i] + c1 * gi;
    const T sign = c > T(0) ? T(1) : (c < T(0) ? T(-1) : T(0));
    w[i] -= sign * lr;
    m[i] = b2 * m[i] + c2 * gi;
  }
}

// s^p: sqrt for the default p = 1/2 (vectorisable, and what pow gives), pow otherwise.
template <class T, bool kSqrt>
void ftrl_loop(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, T* __restrict z,
               const FtrlArgs<T>& a) {
  const T lr = a.lr, p = a.power, l1 = a.l1, two_l2 = a.two_l2, two_l2s = a.two_shrinkage;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i], wi = w[i], si = s[i];
    const T g_use = gi + two_l2s * wi;
    const T s_new = si + gi * gi;
    const T p_new = kSqrt ? std::sqrt(s_new) : std::pow(s_new, p);
    const T p_old = kSqrt ? std::sqrt(si) : std::pow(si, p);
    const T zi = z[i] + (g_use - ((p_new - p_old) / lr) * wi);
    const T q = p_new / lr + two_l2;
    const T z_clip = zi < -l1 ? -l1 : (zi > l1 ? l1 : zi);
    z[i] = zi;
    w[i] = (z_clip - zi) / q;
    s[i] = s_new;
  }
}

template <class T>
void ftrl(size_t n, T* w, const T* g, T* s, T* z, const FtrlArgs<T>& a) {
  if (a.power == T(0.5))
    ftrl_loop<T, true>(n, w, g, s, z, a);
  else
    ftrl_loop<T, false>(n, w, g, s, z, a);
}

template <class T, bool kMomentum, bool kCentred>
void rmsprop_loop(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, T* __restrict mom,
                  T* __restrict mg, const RmspropArgs<T>& a) {
  const T lr = a.lr, rho = a.rho, eps = a.eps, c = a.c, mu = a.momentum;
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T si = rho * s[i] + c * (gi * gi);
    s[i] = si;
    T den = si + eps;
    if (kCentred) {
      const T mgi = rho * mg[i] + c * gi;
      mg[i] = mgi;
      den = den - mgi * mgi;
    }
    const T inc = (gi * lr) / std::sqrt(den);
    if (kMomentum) {
      const T mi = mu * mom[i] + inc;
      mom[i] = mi;
      w[i] -= mi;
    } else {
      w[i] -= inc;
    }
  }
}

template <class T>
void rmsprop_full(size_t n, T* w, const T* g, T* s, T* mom, T* mg, const RmspropArgs<T>& a) {
  if (mom && mg)
    rmsprop_loop<T, true, true>(n, w, g, s, mom, mg, a);
  else if (mom)
    rmsprop_loop<T, true, false>(n, w, g, s, mom, mg, a);
  else if (mg)
    rmsprop_loop<T, false, true>(n, w, g, s, mom, mg, a);
  else
    rmsprop_loop<T, false, false>(n, w, g, s, mom, mg, a);
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
