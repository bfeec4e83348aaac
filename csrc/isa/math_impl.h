// math_impl.h — exp, sigmoid, tanh and the activations of the cells, over a SIMD vector.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cmath>

#include "isa/impl_common.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// ============================================================================
// Elementary functions
//
// exp: Cephes expf — x = n·ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
// a degree-6 polynomial for e^r, then scaling by 2^n built in the exponent
// bits. Relative error ~1e-7 on [-87.3, 88]. The input is clamped to 88 (so
// exp never returns inf: sigmoid(-100) is 1/(1 + 1.6e38) ~ 0, not 1/inf) and
// returns 0 below -87.3 (where the result would be denormal).
// tanh: Cephes tanhf — an odd polynomial below |x| = 0.625, where
// 1 - 2/(e^{2|x|} + 1) would lose relative accuracy, that formula above.
// ============================================================================

template <class V>
inline V vexp(V x) {
  if constexpr (V::kLibmMath) {
    return V::exp(x);
  } else {
    const V hi = V::set1(88.0f), lo = V::set1(-87.3f);
    const V xc = V::min(hi, V::max(lo, x));
    const V n = V::round(xc * V::set1(1.44269504088896341f));
    V r = V::fnmadd(n, V::set1(0.693359375f), xc);
    r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
    V p = V::set1(1.9875691500e-4f);
    p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
    p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
    p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
    p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
    p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
    p = V::fmadd(p, r * r, r + V::set1(1.0f));
    return V::select(V::lt(x, lo), V::zero(), p * V::pow2i(n));
  }
}

template <class V>
inline V vsigmoid(V x) {
  const V one = V::set1(typename V::T(1));
  return one / (one + vexp(V::zero() - x));
}

template <class V>
inline V vtanh(V x) {
  if constexpr (V::kLibmMath) {
    return V::tanh(x);
  } else {
    const V one = V::set1(1.0f);
    const V ax = V::abs(x);
    const V e = vexp(ax + ax);
    const V big = V::copysign(one - V::set1(2.0f) / (e + one), x);
    const V s = x * x;
    V p = V::set1(-5.70498872745e-3f);
    p = V::fmadd(p, s, V::set1(2.06390887954e-2f));
    p = V::fmadd(p, s, V::set1(-5.37397155531e-2f));
    p = V::fmadd(p, s, V::set1(1.33314422036e-1f));
    p = V::fmadd(p, s, V::set1(-3.33332819422e-1f));
    const V small = V::fmadd(p * s, x, x);
    return V::select(V::lt(ax, V::set1(0.625f)), small, big);
  }
}

// In min/max the variable goes second: the x86 instructions return the second
// operand when either is NaN, so NaN propagates as it does in Keras.
template <class V>
inline V activate(Act a, V x) {
  using T = typename V::T;
  switch (a) {
    case Act::tanh: return vtanh(x);
    case Act::sigmoid: return vsigmoid(x);
    case Act::hard_sigmoid:
      return V::min(V::set1(T(6)), V::max(V::zero(), x + V::set1(T(3)))) / V::set1(T(6));
    case Act::hard_sigmoid_k2:
      return V::min(V::set1(T(1)), V::max(V::zero(), V::set1(T(0.2)) * x + V::set1(T(0.5))));
    case Act::relu: return V::max(V::zero(), x);
    case Act::linear: return x;
  }
  return x;
}

// Derivative of an activation at the point where it output y.
template <class V>
inline V activate_grad(Act a, V y) {
  using T = typename V::T;
  const V one = V::set1(T(1));
  switch (a) {
    case Act::tanh: return one - y * y;
    case Act::sigmoid: return y * (one - y);
    case Act::hard_sigmoid:
      return V::select(V::mand(V::gt(y, V::zero()), V::lt(y, one)), V::set1(T(1) / T(6)), V::zero());
    case Act::hard_sigmoid_k2:
      return V::select(V::mand(V::gt(y, V::zero()), V::lt(y, one)), V::set1(T(0.2)), V::zero());
    case Act::relu: return V::select(V::gt(y, V::zero()), one, V::zero());
    case Act::linear: return one;
  }
  return one;
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
