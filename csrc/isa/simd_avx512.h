// simd_avx512.h — 16-lane float vector over AVX-512F/DQ for ops_impl.h.
//
// Include only from ops_avx512.cpp (compiled with -mavx512f ...), after
// defining FUSEDLSTM_ISA_NS: everything lands in that ISA's namespace.
#pragma once
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own
// `__m512 __Y = __Y;` placeholders (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstddef>
#include <cstdint>

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

struct VF {
  using T = float;
  static constexpr int L = 16;
  static constexpr bool kLibmMath = false;  // use the polynomial exp
  using Mask = __mmask16;
  __m512 v;

  static VF load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static VF load_partial(const float* p, int n) {
    return {_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p)};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
  static VF set1(float x) { return {_mm512_set1_ps(x)}; }
  static VF zero() { return {_mm512_setzero_ps()}; }

  friend VF operator+(VF a, VF b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend VF operator-(VF a, VF b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend VF operator*(VF a, VF b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend VF operator/(VF a, VF b) { return {_mm512_div_ps(a.v, b.v)}; }
  static VF fmadd(VF a, VF b, VF c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }   // a*b + c
  static VF fnmadd(VF a, VF b, VF c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; } // c - a*b
  static VF max(VF a, VF b) { return {_mm512_max_ps(a.v, b.v)}; }
  static VF min(VF a, VF b) { return {_mm512_min_ps(a.v, b.v)}; }
  static VF abs(VF a) { return {_mm512_abs_ps(a.v)}; }
  // x with the sign of s
  static VF copysign(VF x, VF s) {
    const __m512i m = _mm512_set1_epi32(int(0x80000000u));
    return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(s.v), _mm512_castps_si512(x.v), m, 0xe4))};
  }
  static VF round(VF a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  // 2^n for integral n in [-126, 127]
  static VF pow2i(VF n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
  }
  static Mask lt(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
  static Mask gt(VF a, VF b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ); }
  static Mask mand(Mask a, Mask b) { return Mask(a & b); }
  static VF select(Mask m, VF a, VF b) { return {_mm512_mask_blend_ps(m, b.v, a.v)}; }  // m ? a : b
  // In-place transpose of the 16x16 tile held in r[0..15] (r[i] = row i): 4x4
  // blocks within each 128-bit lane by 32- then 64-bit unpacks, then the lanes
  // of four rows gathered by two rounds of 128-bit lane shuffles.
  static void transpose(VF* r) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i].v, r[i + 1].v);
      t[i + 1] = _mm512_unpackhi_ps(r[i].v, r[i + 1].v);
    }
    for (int g = 0; g < 16; g += 4) {  // u[g + c] lane L: column 4L + c of rows g..g+3
      const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
      const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
      u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; ++c) {
      const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
      const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
      const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
      r[c].v = _mm512_shuffle_f32x4(v0, v2, 0x88);
      r[4 + c].v = _mm512_shuffle_f32x4(v1, v3, 0x88);
      r[8 + c].v = _mm512_shuffle_f32x4(v0, v2, 0xdd);
      r[12 + c].v = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
  }
  static float hmax(VF a) { return _mm512_reduce_max_ps(a.v); }
  static float hsum(VF a) { return _mm512_reduce_add_ps(a.v); }
};

// GEMM register tile and cache blocking (see ops_impl.h, "GEMM").
struct GemmShape {
  // 12x32: 24 accumulators + 2 B vectors + 1 broadcast of the 32 registers.
  // 8x32, 8x48, 6x64 and 14x32 measured within noise of it on Zen 5; 32
  // columns divide the usual 4H, and a short last row panel goes to a kernel
  // instantiated for that many rows.
  static constexpr int MR = 12;    // rows of C per micro-tile (broadcasts of A)
  static constexpr int NV = 2;     // vectors of C per row: NR = 32 columns
  static constexpr int KC = 384;   // depth of a packed block: A micro-panel 18 KB in L1
  static constexpr int NC = 480;   // columns of a packed B block: 720 KB in L2
  static constexpr int MC = 1008;  // rows of a packed A block
};

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
