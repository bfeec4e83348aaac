// bf16_impl.h — rounding float32 to bfloat16, the one definition every level shares.
// Part of isa/ops_impl.h (and of isa/bf16_avx512.cpp): compiled once per
// instruction set, inside that ISA's namespace.
//
// bfloat16 is the upper half of a float32: 1 sign, 8 exponent, 7 mantissa bits.
// The rounding is that of VCVTNEPS2BF16 (the instruction the AVX512-BF16 level
// packs with), so that every level multiplies the same bfloat16 values:
//   NaN         -> NaN, made quiet (bit 6 of the half set), sign and top payload kept
//   subnormal   -> ±0 (the instruction ignores MXCSR and always reads them as zero)
//   otherwise   -> round to nearest, ties to even; overflow gives ±Inf
// A product of two bfloat16 values (8-bit significands) is exact in float32, so
// the levels differ only in the order of the float32 sums.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS first; bf16_impl.h is compiled once per instruction set"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// The bfloat16 nearest x, as its 16 bits.
inline uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t mag = u & 0x7fffffffu;
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  const uint32_t zero = (u >> 16) & 0x8000u;
  // Branch-free selects: the loops below vectorise.
  uint32_t r = mag > 0x7f800000u ? nan : rounded;
  r = (u & 0x7f800000u) == 0 ? zero : r;
  return r;
}

// x rounded to bfloat16, as a float (the low 16 bits zero).
inline float bf16_round(float x) {
  const uint32_t u = bf16_bits(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// p[0..n) rounded in place.
inline void bf16_round_n(float* p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = bf16_round(p[i]);
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
