// ops_avx2.cpp — the float kernels for AVX2 + FMA (6x16 GEMM tile). Built with
// -mavx2 -mfma; reached only through dispatch.cpp after cpuid/xgetbv checks.
#define FUSEDLSTM_ISA_NS avx2
#include "isa/simd_avx2.h"
#include "isa/ops_impl.h"

namespace fusedlstm {

namespace {
constexpr KernelOps<float> kAvx2F32 = avx2::make_table<avx2::VF, avx2::GemmShape>("avx2");
}  // namespace

const KernelOps<float>* ops_avx2_f32() { return &kAvx2F32; }

}  // namespace fusedlstm
