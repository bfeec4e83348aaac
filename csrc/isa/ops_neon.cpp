// ops_neon.cpp — the float kernels for AArch64 Advanced SIMD (8x12 GEMM tile,
// FMLA by element). ASIMD is in every AArch64 CPU, so no target flags; still
// reached only through dispatch.cpp, which checks the CPU reports it.
#define FUSEDLSTM_ISA_NS neon
#include "isa/simd_neon.h"
#include "isa/ops_impl.h"

namespace fusedlstm {

namespace {
constexpr KernelOps<float> kNeonF32 = neon::make_table<neon::VF, neon::GemmShape>("neon");
}  // namespace

const KernelOps<float>* ops_neon_f32() { return &kNeonF32; }

}  // namespace fusedlstm
