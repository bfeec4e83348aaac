// precision.cpp — the per-product choice between float32 and bfloat16 (precision.h).
#include "precision.h"

#include "common.h"
#include "dispatch.h"

namespace fusedlstm {

Precision parse_precision(const char* fn, const std::string& name) {
  if (name == "float32") return Precision::float32;
  if (name == "bfloat16") return Precision::bfloat16;
  throw std::invalid_argument(str(fn, ": precision must be 'float32' or 'bfloat16', got '", name, "'"));
}

// The size rule. bfloat16 pays once the products dominate the cost of rounding
// and packing the operands; measured on Zen 4 (EPYC 9004, 1 and 2 threads, all
// M, N, K in {1, 4, 16, 64, 100, 256, 512}, plain and packed-B products, our
// float32 GEMM against the avx512bf16 level):
//  * K < 16: the float GEMM reads a small A in place where bfloat16 must convert
//    and pack it, and K = 1..4 leaves the k-pairs (half) empty: bfloat16 was up
//    to 5x slower (256x16x1: 0.4 against 2.6 µs);
//  * M·N·K < 32768 (a time step of batch 1-4, say): sub-microsecond products
//    where converting the operands costs what the faster products save; packed
//    products with M <= 4 and N <= 16 took up to 2x longer;
//  * above both bounds bfloat16 was the faster in every case, 1.15x (thin
//    products such as 256x4x16) to 2x (square ones).
// The rule looks at the shape only, never at the level or the CPU, so a model
// gets the same numbers everywhere (the portable level is never faster than
// float32: it is there for the numbers, not the speed).
constexpr int kBf16MinK = 16;
constexpr double kBf16MinMNK = 32768;

bool bf16_pays(int M, int N, int K) {
  return K >= kBf16MinK && double(M) * double(N) * double(K) >= kBf16MinMNK;
}

const char* bf16_rule() { return "bfloat16 products where K >= 16 and M*N*K >= 32768, float32 below"; }

const GemmOps& gemm_for(Precision p, int M, int N, int K) {
  if (p == Precision::bfloat16 && bf16_pays(M, N, K)) return gemm_ops_bf16();
  return gemm_ops_f32();
}

}  // namespace fusedlstm
