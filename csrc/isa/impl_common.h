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

// Loops over the H units of a row in vectors. When H is not a multiple of the
// vector width, the last vector is not a masked one but a full vector ending at
// H, overlapping the one before: with masked loads and stores the cell of a
// 25-unit LSTM took 1.7x as long on Zen 5 (327 vs 197 cycles a row, AVX-512,
// measured in isolation). The cell kernels read the overlapping vector's
// inputs before any store (they update gates and state gradients in place), so
// the overlap is written twice with the same values.
template <class V>
inline int full_vectors_end(int H) {
  return H >= V::L && H % V::L ? H - H % V::L : H;  // [0, end) in full vectors; then the tail
}

// Runs step(j, n, load(j, n)) over the vectors of one row of H units, in the
// order above: `load` reads a vector's inputs, `step` computes and stores. The
// tail vector's inputs are loaded before any store of the row, so kernels that
// update a buffer in place stay correct where the tail overlaps.
template <class V, class Load, class Step>
inline void row_vectors(int H, Load load, Step step) {
  const int jend = full_vectors_end<V>(H);
  if (jend == H) {
    for (int j = 0; j < H; j += V::L) {
      const int n = imin(V::L, H - j);
      step(j, n, load(j, n));
    }
    return;
  }
  const int jt = H - V::L;
  const auto tail = load(jt, V::L);
  for (int j = 0; j < jend; j += V::L) step(j, V::L, load(j, V::L));
  step(jt, V::L, tail);
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
