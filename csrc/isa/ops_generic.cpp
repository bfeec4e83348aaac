// ops_generic.cpp — the portable kernel tables: SSE2 floats on x86-64 (its
// baseline), scalar elsewhere, and the float64 table (scalar, libm exp/tanh)
// that the float64 tests and finite differences use. Also the scratch
// allocator the ISA files share: it lives here, in code built without ISA
// flags, so none of them carries its own copy.
#include <cstdlib>
#include <new>

#define FUSEDLSTM_ISA_NS generic
#include "isa/simd_generic.h"
#include "isa/ops_impl.h"

namespace fusedlstm {

void* isa_scratch_alloc(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}

void isa_scratch_free(void* p) noexcept { std::free(p); }

namespace {
constexpr KernelOps<float> kGenericF32 = generic::make_table<generic::VF, generic::GemmShape>("generic");
constexpr KernelOps<double> kGenericF64 = generic::make_table<generic::VD, generic::GemmShapeD>("generic");
}  // namespace

const KernelOps<float>* ops_generic_f32() { return &kGenericF32; }
const KernelOps<double>* ops_generic_f64() { return &kGenericF64; }

}  // namespace fusedlstm
