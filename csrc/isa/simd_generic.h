// simd_generic.h — the vectors of the portable build: 4-lane SSE2 floats on
// x86-64 (its baseline, so no flags are needed), and one-lane scalars for
// double and for other architectures (there the compiler's own
// auto-vectorisation is all we ask for).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// One lane of T; exp/tanh come from libm (exact enough for the float64 oracle).
template <class TT>
struct VScalar {
  using T = TT;
  static constexpr int L = 1;
  static constexpr bool kLibmMath = true;
  using Mask = bool;
  T v;

  static VScalar load(const T* p) { return {*p}; }
  static VScalar load_partial(const T* p, int) { return {*p}; }
  void store(T* p) const { *p = v; }
  void store_partial(T* p, int) const { *p = v; }
  static VScalar set1(T x) { return {x}; }
  static VScalar zero() { return {T(0)}; }
  friend VScalar operator+(VScalar a, VScalar b) { return {a.v + b.v}; }
  friend VScalar operator-(VScalar a, VScalar b) { return {a.v - b.v}; }
  friend VScalar operator*(VScalar a, VScalar b) { return {a.v * b.v}; }
  friend VScalar operator/(VScalar a, VScalar b) { return {a.v / b.v}; }
  static VScalar fmadd(VScalar a, VScalar b, VScalar c) { return {a.v * b.v + c.v}; }
  static VScalar fnmadd(VScalar a, VScalar b, VScalar c) { return {c.v - a.v * b.v}; }
  static VScalar max(VScalar a, VScalar b) { return {a.v > b.v ? a.v : b.v}; }
  static VScalar min(VScalar a, VScalar b) { return {a.v < b.v ? a.v : b.v}; }
  static Mask lt(VScalar a, VScalar b) { return a.v < b.v; }
  static Mask gt(VScalar a, VScalar b) { return a.v > b.v; }
  static Mask mand(Mask a, Mask b) { return a && b; }
  static VScalar select(Mask m, VScalar a, VScalar b) { return m ? a : b; }
  static T hmax(VScalar a) { return a.v; }
  static T hsum(VScalar a) { return a.v; }
  static void transpose(VScalar*) {}  // a 1x1 tile
  static VScalar exp(VScalar a) { return {std::exp(a.v)}; }
  static VScalar tanh(VScalar a) { return {std::tanh(a.v)}; }
};

#if defined(__SSE2__)
struct VF {
  using T = float;
  static constexpr int L = 4;
  static constexpr bool kLibmMath = false;
  using Mask = __m128;
  __m128 v;

  static VF load(const float* p) { return {_mm_loadu_ps(p)}; }
  static VF load_partial(const float* p, int n) {
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    for (int i = 0; i < n; ++i) t[i] = p[i];
    return {_mm_loadu_ps(t)};
  }
  void store(float* p) const { _mm_storeu_ps(p, v); }
  void store_partial(float* p, int n) const {
    float t[4];
    _mm_storeu_ps(t, v);
    for (int i = 0; i < n; ++i) p[i] = t[i];
  }
  static VF set1(float x) { return {_mm_set1_ps(x)}; }
  static VF zero() { return {_mm_setzero_ps()}; }
  friend VF operator+(VF a, VF b) { return {_mm_add_ps(a.v, b.v)}; }
  friend VF operator-(VF a, VF b) { return {_mm_sub_ps(a.v, b.v)}; }
  friend VF operator*(VF a, VF b) { return {_mm_mul_ps(a.v, b.v)}; }
  friend VF operator/(VF a, VF b) { return {_mm_div_ps(a.v, b.v)}; }
  // No FMA in the x86-64 baseline: two roundings.
  static VF fmadd(VF a, VF b, VF c) { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
  static VF fnmadd(VF a, VF b, VF c) { return {_mm_sub_ps(c.v, _mm_mul_ps(a.v, b.v))}; }
  static VF max(VF a, VF b) { return {_mm_max_ps(a.v, b.v)}; }
  static VF min(VF a, VF b) { return {_mm_min_ps(a.v, b.v)}; }
  static VF abs(VF a) { return {_mm_andnot_ps(_mm_set1_ps(-0.0f), a.v)}; }
  static VF copysign(VF x, VF s) {
    const __m128 m = _mm_set1_ps(-0.0f);
    return {_mm_or_ps(_mm_andnot_ps(m, x.v), _mm_and_ps(m, s.v))};
  }
  // Nearest integer through cvtps (round-to-nearest mode); |a| < 2^31 here.
  static VF round(VF a) { return {_mm_cvtepi32_ps(_mm_cvtps_epi32(a.v))}; }
  static VF pow2i(VF n) {
    const __m128i e = _mm_add_epi32(_mm_cvtps_epi32(n.v), _mm_set1_epi32(127));
    return {_mm_castsi128_ps(_mm_slli_epi32(e, 23))};
  }
  static Mask lt(VF a, VF b) { return _mm_cmplt_ps(a.v, b.v); }
  static Mask gt(VF a, VF b) { return _mm_cmpgt_ps(a.v, b.v); }
  static Mask mand(Mask a, Mask b) { return _mm_and_ps(a, b); }
  static VF select(Mask m, VF a, VF b) { return {_mm_or_ps(_mm_and_ps(m, a.v), _mm_andnot_ps(m, b.v))}; }
  // In-place transpose of the 4x4 tile in r[0..3].
  static void transpose(VF* r) { _MM_TRANSPOSE4_PS(r[0].v, r[1].v, r[2].v, r[3].v); }
  static float hmax(VF a) {
    __m128 x = _mm_max_ps(a.v, _mm_movehl_ps(a.v, a.v));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static float hsum(VF a) {
    __m128 x = _mm_add_ps(a.v, _mm_movehl_ps(a.v, a.v));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
};

struct GemmShape {
  static constexpr int MR = 4;  // 4x8: 8 accumulators, 2 B vectors, 1 broadcast, temporaries
  static constexpr int NV = 2;
  static constexpr int KC = 256;
  static constexpr int NC = 256;
  static constexpr int MC = 1024;
};
#else
using VF = VScalar<float>;
struct GemmShape {
  static constexpr int MR = 4;
  static constexpr int NV = 4;
  static constexpr int KC = 256;
  static constexpr int NC = 256;
  static constexpr int MC = 1024;
};
#endif

using VD = VScalar<double>;
struct GemmShapeD {
  static constexpr int MR = 4;
  static constexpr int NV = 4;
  static constexpr int KC = 256;
  static constexpr int NC = 256;
  static constexpr int MC = 1024;
};

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
