// ops_avx512.cpp — the float kernels for AVX-512 F/DQ/BW/VL (12x32 GEMM tile).
// Built with -mavx512f ...; reached only through dispatch.cpp after
// cpuid/xgetbv checks.
#define FUSEDLSTM_ISA_NS avx512
#include "isa/simd_avx512.h"
#include "isa/ops_impl.h"

namespace fusedlstm {

namespace {
constexpr KernelOps<float> kAvx512F32 = avx512::make_table<avx512::VF, avx512::GemmShape>("avx512");
}  // namespace

const KernelOps<float>* ops_avx512_f32() { return &kAvx512F32; }

}  // namespace fusedlstm
