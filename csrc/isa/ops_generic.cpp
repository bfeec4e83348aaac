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

// Packing buffers are recycled per thread: a fresh multi-megabyte allocation
// is a fresh mmap, and faulting its pages in costs a quarter of a medium GEMM
// (128x256x1024). Per-thread, so concurrent calls never share one; bounded, so
// an idle thread holds at most kCacheTotal.
namespace {

constexpr size_t kCacheTotal = size_t(64) << 20;

struct ScratchCache {
  struct Block {
    void* p = nullptr;
    size_t n = 0;
  };
  Block blocks[4];
  ~ScratchCache() {
    for (Block& b : blocks) std::free(b.p);
  }
};

thread_local ScratchCache t_scratch;

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

void* isa_scratch_alloc(size_t bytes) {
  bytes = round64(bytes);
  ScratchCache::Block* best = nullptr;
  for (ScratchCache::Block& b : t_scratch.blocks)
    if (b.p && b.n >= bytes && (!best || b.n < best->n)) best = &b;
  if (best) {
    void* p = best->p;
    best->p = nullptr;
    best->n = 0;
    return p;
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

void isa_scratch_free(void* p, size_t bytes) noexcept {
  if (!p) return;
  bytes = round64(bytes);
  size_t held = bytes;
  ScratchCache::Block* slot = nullptr;  // an empty slot, else the smallest block
  for (ScratchCache::Block& b : t_scratch.blocks) {
    held += b.n;
    if (!slot || (slot->p && (!b.p || b.n < slot->n))) slot = &b;
  }
  if (slot->p && slot->n >= bytes) {
    std::free(p);
    return;
  }
  held -= slot->n;
  std::free(slot->p);
  slot->p = nullptr;
  slot->n = 0;
  if (held > kCacheTotal) {
    std::free(p);
    return;
  }
  slot->p = p;
  slot->n = bytes;
}

namespace {
constexpr KernelOps<float> kGenericF32 = generic::make_table<generic::VF, generic::GemmShape>("generic");
constexpr KernelOps<double> kGenericF64 = generic::make_table<generic::VD, generic::GemmShapeD>("generic");
}  // namespace

const KernelOps<float>* ops_generic_f32() { return &kGenericF32; }
const KernelOps<double>* ops_generic_f64() { return &kGenericF64; }

}  // namespace fusedlstm
