// gemm_ops.h — a matrix product at one precision: the float32 GEMM of the
// chosen KernelOps table, or a bfloat16 level. Callers hold a `const GemmOps&`
// (precision.h picks it) and never need to know which one they got.
//
// The functions have the signatures and the semantics of the GEMM entries of
// KernelOps<float> (isa/ops.h): C(M,N) = beta*C + op(A)·op(B), beta in {0, 1},
// float32 in and out, any sizes and leading dimensions, threads split M or N
// (never K) so a result is bitwise the same for every thread count. A bfloat16
// level rounds both operands to bfloat16 (isa/bf16_impl.h: nearest-even, NaN
// kept, subnormals read as zero) and sums the exact products in float32.
//
// Packed B: packed_b_size(K, N) counts floats (the caller allocates that many,
// 64-byte aligned); pack_b writes op(B) in the level's own layout into them,
// for that level's gemm_packed only. The float32 and portable levels store
// floats (panels of NR columns); avx512bf16 stores pairs of bfloat16 (rows k
// and k+1 of a column) in each 32-bit word, half the size.
//
// Levels (best last): "portable" everywhere (the float GEMM of the ISA in use,
// operands rounded as they are packed: the oracle of the others), then
// "avx512bf16" (VDPBF16PS, isa/bf16_avx512.cpp). An AMX level (TDPBF16PS) would
// be one more table here and one more entry in dispatch.cpp's list, behind its
// cpuid bits (AMX-TILE, AMX-BF16), XCR0 bits 17-18 and Linux's
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); it is not built because
// no machine we test on has AMX.
#pragma once
#include <cstddef>

namespace fusedlstm {

struct GemmOps {
  const char* name;  // "float32", "portable", "avx512bf16"
  void (*gemm)(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc, int nthreads);
  size_t (*packed_b_size)(int K, int N);
  void (*pack_b)(bool tb, int K, int N, const float* B, int ldb, float* packed);
  void (*gemm_packed)(bool ta, int M, int N, int K, const float* A, int lda, const float* packed, float beta,
                      float* C, int ldc, int nthreads);
};

// The AVX512-BF16 level; null when the file was not built (non-x86, or a
// compiler without -mavx512bf16). Usable only where dispatch.cpp says so.
const GemmOps* gemm_ops_avx512bf16();

}  // namespace fusedlstm
