// simple_rnn_cell_impl.h — the SimpleRNN cell (Keras 3 SimpleRNNCell), forward and backward,
// one time step over B rows.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cstddef>

#include "isa/impl_common.h"
#include "isa/math_impl.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// Z holds x·W + b + a·U:  h = a(Z), written to h and over Z (the backward's input).
template <class V>
void rnn_cell_forward(int B, int H, typename V::T* Z, int ldz, typename V::T* h, int ldh, Act act) {
  using T = typename V::T;
  for (int b = 0; b < B; ++b) {
    T* zr = Z + (size_t)b * ldz;
    T* hr = h + (size_t)b * ldh;
    row_vectors<V>(H, [&](int j, int n) { return load_n<V>(zr + j, n); }, [&](int j, int n, V z) {
      const V y = activate(act, z);
      store_n(y, zr + j, n);
      store_n(y, hr + j, n);
    });
  }
}

// dZ = dh ⊙ a'(h), the derivative taken from the output h.
template <class V>
void rnn_cell_backward(int B, int H, const typename V::T* hout, int ldo, const typename V::T* dh, int lddh,
                       typename V::T* dZ, int lddz, Act act) {
  using T = typename V::T;
  struct In {
    V y, dh;
  };
  for (int b = 0; b < B; ++b) {
    const T* yr = hout + (size_t)b * ldo;
    const T* d = dh + (size_t)b * lddh;
    T* dz = dZ + (size_t)b * lddz;
    row_vectors<V>(H, [&](int j, int n) { return In{load_n<V>(yr + j, n), load_n<V>(d + j, n)}; },
                   [&](int j, int n, In v) { store_n(v.dh * activate_grad(act, v.y), dz + j, n); });
  }
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
