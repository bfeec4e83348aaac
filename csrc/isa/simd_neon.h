// simd_neon.h — 4-lane float vector over AArch64 Advanced SIMD (NEON) for ops_impl.h.
//
// Include only from ops_neon.cpp, after defining FUSEDLSTM_ISA_NS: everything
// lands in that ISA's namespace. ASIMD is part of the AArch64 base
// architecture, so no target flags are needed; what makes this a level of its
// own is the 8x12 GEMM tile for the 32 vector registers and FMLA by element,
// against the scalar generic table the portable build compiles to off x86.
//
// NaN: FMAX/FMIN return NaN when either operand is NaN (x86's MAXPS returns
// the second operand). math_impl.h asks only that a NaN argument propagate,
// which holds for both; a softmax row with a NaN is all NaN here, as in the
// float64 reference, where x86 may keep the other entries finite.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

struct VF {
  using T = float;
  static constexpr int L = 4;
  static constexpr bool kLibmMath = false;  // the polynomial exp/tanh of math_impl.h
  using Mask = uint32x4_t;
  float32x4_t v;

  static VF load(const float* p) { return {vld1q_f32(p)}; }
  // n < 4 lanes (row tails) by 64- and 32-bit lane moves, zeros above: a copy
  // loop through the stack would become a memcpy call, and a call in the GEMM
  // epilogue makes the register allocator spill accumulators inside the k loop.
  static VF load_partial(const float* p, int n) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    if (n >= 2) {
      const float32x4_t lo = vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
      return {n == 3 ? vld1q_lane_f32(p + 2, lo, 2) : lo};
    }
    return {n == 1 ? vld1q_lane_f32(p, z, 0) : z};
  }
  void store(float* p) const { vst1q_f32(p, v); }
  void store_partial(float* p, int n) const {
    if (n >= 2) {
      vst1_f32(p, vget_low_f32(v));
      if (n == 3) vst1q_lane_f32(p + 2, v, 2);
    } else if (n == 1) {
      vst1q_lane_f32(p, v, 0);
    }
  }
  static VF set1(float x) { return {vdupq_n_f32(x)}; }
  static VF zero() { return {vdupq_n_f32(0.0f)}; }

  friend VF operator+(VF a, VF b) { return {vaddq_f32(a.v, b.v)}; }
  friend VF operator-(VF a, VF b) { return {vsubq_f32(a.v, b.v)}; }
  friend VF operator*(VF a, VF b) { return {vmulq_f32(a.v, b.v)}; }
  friend VF operator/(VF a, VF b) { return {vdivq_f32(a.v, b.v)}; }
  static VF fmadd(VF a, VF b, VF c) { return {vfmaq_f32(c.v, a.v, b.v)}; }   // a*b + c, one rounding
  static VF fnmadd(VF a, VF b, VF c) { return {vfmsq_f32(c.v, a.v, b.v)}; }  // c - a*b
  // c + a[lane]*b: FMLA by element, the GEMM micro-kernel's broadcast for free.
  template <int lane>
  static VF fmadd_lane(VF a, VF b, VF c) { return {vfmaq_laneq_f32(c.v, b.v, a.v, lane)}; }
  static VF max(VF a, VF b) { return {vmaxq_f32(a.v, b.v)}; }
  static VF min(VF a, VF b) { return {vminq_f32(a.v, b.v)}; }
  static VF abs(VF a) { return {vabsq_f32(a.v)}; }
  // x with the sign of s
  static VF copysign(VF x, VF s) {
    return {vbslq_f32(vdupq_n_u32(0x80000000u), s.v, x.v)};
  }
  static VF round(VF a) { return {vrndnq_f32(a.v)}; }  // nearest, ties to even (FRINTN)
  // 2^n for integral n in [-126, 127]
  static VF pow2i(VF n) {
    const int32x4_t e = vaddq_s32(vcvtq_s32_f32(n.v), vdupq_n_s32(127));
    return {vreinterpretq_f32_s32(vshlq_n_s32(e, 23))};
  }
  static Mask lt(VF a, VF b) { return vcltq_f32(a.v, b.v); }
  static Mask gt(VF a, VF b) { return vcgtq_f32(a.v, b.v); }
  static Mask mand(Mask a, Mask b) { return vandq_u32(a, b); }
  static VF select(Mask m, VF a, VF b) { return {vbslq_f32(m, a.v, b.v)}; }  // m ? a : b
  // In-place transpose of the 4x4 tile in r[0..3]: 32-bit then 64-bit TRN1/TRN2.
  static void transpose(VF* r) {
    const float32x4_t t0 = vtrn1q_f32(r[0].v, r[1].v), t1 = vtrn2q_f32(r[0].v, r[1].v);
    const float32x4_t t2 = vtrn1q_f32(r[2].v, r[3].v), t3 = vtrn2q_f32(r[2].v, r[3].v);
    auto d = [](float32x4_t x) { return vreinterpretq_f64_f32(x); };
    r[0].v = vreinterpretq_f32_f64(vtrn1q_f64(d(t0), d(t2)));
    r[1].v = vreinterpretq_f32_f64(vtrn1q_f64(d(t1), d(t3)));
    r[2].v = vreinterpretq_f32_f64(vtrn2q_f64(d(t0), d(t2)));
    r[3].v = vreinterpretq_f32_f64(vtrn2q_f64(d(t1), d(t3)));
  }
  static float hmax(VF a) { return vmaxvq_f32(a.v); }
  static float hsum(VF a) { return vaddvq_f32(a.v); }
};

// GEMM register tile and cache blocking (see gemm_impl.h).
struct GemmShape {
  // 8x12: 24 accumulators + 3 B vectors + 2 vectors of A (8 rows, FMLA by
  // element) of the 32 registers: 24 FMAs per 5 loads, the BLIS armv8a tile.
  static constexpr int MR = 8;     // rows of C per micro-tile
  static constexpr int NV = 3;     // vectors of C per row: NR = 12 columns
  static constexpr int KC = 256;   // depth of a packed block: A micro-panel 8 KB, B panel 12 KB in L1
  static constexpr int NC = 384;   // columns of a packed B block: 384 KB, within a 512 KB+ L2
  static constexpr int MC = 1008;  // rows of a packed A block
  // A is always packed: read in place, each of the 8 rows needs a scalar load
  // and a register of its own per k (no broadcast memory operand on AArch64),
  // and GCC then spills accumulators; packed, two vector loads feed FMLA by element.
  static constexpr size_t kDirectA = 0;
};

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
