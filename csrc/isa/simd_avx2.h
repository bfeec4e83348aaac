// simd_avx2.h — 8-lane float vector over AVX2 + FMA for ops_impl.h.
//
// Include only from ops_avx2.cpp (compiled with -mavx2 -mfma), after defining
// FUSEDLSTM_ISA_NS: everything lands in that ISA's namespace.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

struct VF {
  using T = float;
  static constexpr int L = 8;
  static constexpr bool kLibmMath = false;
  using Mask = __m256;
  __m256 v;

  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static VF load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static VF load_partial(const float* p, int n) { return {_mm256_maskload_ps(p, tail_mask(n))}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static VF set1(float x) { return {_mm256_set1_ps(x)}; }
  static VF zero() { return {_mm256_setzero_ps()}; }

  friend VF operator+(VF a, VF b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend VF operator-(VF a, VF b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend VF operator*(VF a, VF b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend VF operator/(VF a, VF b) { return {_mm256_div_ps(a.v, b.v)}; }
  static VF fmadd(VF a, VF b, VF c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static VF fnmadd(VF a, VF b, VF c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
  static VF max(VF a, VF b) { return {_mm256_max_ps(a.v, b.v)}; }
  static VF min(VF a, VF b) { return {_mm256_min_ps(a.v, b.v)}; }
  static VF abs(VF a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
  static VF copysign(VF x, VF s) {
    const __m256 m = _mm256_set1_ps(-0.0f);
    return {_mm256_or_ps(_mm256_andnot_ps(m, x.v), _mm256_and_ps(m, s.v))};
  }
  static VF round(VF a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static VF pow2i(VF n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
  }
  static Mask lt(VF a, VF b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
  static Mask gt(VF a, VF b) { return _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ); }
  static Mask mand(Mask a, Mask b) { return _mm256_and_ps(a, b); }
  static VF select(Mask m, VF a, VF b) { return {_mm256_blendv_ps(b.v, a.v, m)}; }
  // In-place transpose of the 8x8 tile in r[0..7]: 4x4 blocks within each
  // 128-bit lane by 32- then 64-bit unpacks, then the lanes of rows 0-3 and 4-7 joined.
  static void transpose(VF* r) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i].v, r[i + 1].v);
      t[i + 1] = _mm256_unpackhi_ps(r[i].v, r[i + 1].v);
    }
    for (int g = 0; g < 8; g += 4) {
      const __m256d a = _mm256_castps_pd(t[g]), b = _mm256_castps_pd(t[g + 1]);
      const __m256d c = _mm256_castps_pd(t[g + 2]), d = _mm256_castps_pd(t[g + 3]);
      u[g] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
      u[g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
      u[g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
      u[g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; ++c) {
      r[c].v = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c].v = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  }
  static float hmax(VF a) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static float hsum(VF a) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
};

struct GemmShape {
  static constexpr int MR = 6;      // 6x16 tile: 12 accumulators + 2 B vectors + 1 broadcast
  static constexpr int NV = 2;
  static constexpr int KC = 256;
  static constexpr int NC = 256;    // B block 256 KB: fits the L2 of AVX2-era cores
  static constexpr int MC = 1020;
};

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
