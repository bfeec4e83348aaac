// impl_common.h — small helpers every kernel part of ops_impl.h uses.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cstddef>
#include <cstdint>

#include "isa/ops.h"

namespace fusedlstm {

// 64-byte aligned scratch for packed GEMM operands (throws std::bad_alloc);
// free takes the size that was asked for. Recycled per thread (ops_generic.cpp).
void* isa_scratch_alloc(size_t bytes);
void isa_scratch_free(void* p, size_t bytes) noexcept;

namespace FUSEDLSTM_ISA_NS {

inline int imin(int a, int b) { return a < b ? a : b; }
inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Packing buffer of one GEMM call (or thread chunk). Small ones live on the
// stack: a time step of a small LSTM must not pay for malloc.
template <class T, int kInline>
class Scratch {
 public:
  explicit Scratch(size_t n)
      : n_(n), p_(n <= (size_t)kInline ? small_ : static_cast<T*>(isa_scratch_alloc(n * sizeof(T)))) {}
  ~Scratch() {
    if (p_ != small_) isa_scratch_free(p_, n_ * sizeof(T));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }

 private:
  alignas(64) T small_[kInline];
  size_t n_;
  T* p_;
};

// Loads/stores of n <= L lanes: full vectors take the plain path.
template <class V>
inline V load_n(const typename V::T* p, int n) {
  return n == V::L ? V::load(p) : V::load_partial(p, n);
}
template <class V>
inline void store_n(V x, typename V::T* p, int n) {
  if (n == V::L)
    x.store(p);
  else
    x.store_partial(p, n);
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
