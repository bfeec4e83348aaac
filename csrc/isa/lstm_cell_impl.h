// lstm_cell_impl.h — the fused LSTM cell, forward and backward, one time step over B rows.
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

// ============================================================================
// LSTM cell, one time step (formulas in ops.h)
// ============================================================================

// full_vectors_end (impl_common.h): full vectors, then an overlapping tail vector.
template <class V>
void lstm_cell_forward(int B, int H, typename V::T* G, int ldg, const typename V::T* c_prev, int ldcp,
                       typename V::T* c, int ldc, typename V::T* h, int ldh, typename V::T* actc,
                       int ldac, Act act, Act rec_act) {
  using T = typename V::T;
  const int jend = full_vectors_end<V>(H);
  for (int b = 0; b < B; ++b) {
    T* g = G + (size_t)b * ldg;
    const T* cp = c_prev + (size_t)b * ldcp;
    T* cr = c + (size_t)b * ldc;
    T* hr = h + (size_t)b * ldh;
    T* ar = actc ? actc + (size_t)b * ldac : nullptr;
    // One vector at j (n lanes) from its pre-activations.
    auto step = [&](int j, int n, V zi, V zf, V zg, V zo, V cpv) {
      const V i = activate(rec_act, zi), f = activate(rec_act, zf);
      const V gg = activate(act, zg), o = activate(rec_act, zo);
      const V cn = f * cpv + i * gg;
      const V a = activate(act, cn);
      if (ar) {  // training: the backward reads the activated gates and a(c)
        store_n(i, g + j, n);
        store_n(f, g + H + j, n);
        store_n(gg, g + 2 * H + j, n);
        store_n(o, g + 3 * H + j, n);
        store_n(a, ar + j, n);
      }
      store_n(cn, cr + j, n);
      store_n(o * a, hr + j, n);
    };
    const int jt = H - V::L;  // the overlapping tail vector, when jend < H
    V ti{}, tf{}, tg{}, to{}, tc{};
    if (jend < H)
      ti = V::load(g + jt), tf = V::load(g + H + jt), tg = V::load(g + 2 * H + jt), to = V::load(g + 3 * H + jt),
      tc = V::load(cp + jt);
    for (int j = 0; j < jend; j += V::L) {
      const int n = imin(V::L, H - j);
      step(j, n, load_n<V>(g + j, n), load_n<V>(g + H + j, n), load_n<V>(g + 2 * H + j, n),
           load_n<V>(g + 3 * H + j, n), load_n<V>(cp + j, n));
    }
    if (jend < H) step(jt, V::L, ti, tf, tg, to, tc);
  }
}

template <class V>
void lstm_cell_backward(int B, int H, const typename V::T* gates, int ldg, const typename V::T* c_prev,
                        int ldcp, const typename V::T* actc, int ldac, const typename V::T* dh, int lddh,
                        typename V::T* dc, int lddc, typename V::T* dZ, int lddz, Act act, Act rec_act) {
  using T = typename V::T;
  const int jend = full_vectors_end<V>(H);  // and an overlapping tail vector (see above)
  for (int b = 0; b < B; ++b) {
    const T* g = gates + (size_t)b * ldg;
    const T* cp = c_prev + (size_t)b * ldcp;
    const T* ar = actc + (size_t)b * ldac;
    const T* dhr = dh + (size_t)b * lddh;
    T* dcr = dc + (size_t)b * lddc;
    T* dz = dZ + (size_t)b * lddz;
    auto step = [&](int j, int n, V dcin) {
      const V i = load_n<V>(g + j, n), f = load_n<V>(g + H + j, n);
      const V gg = load_n<V>(g + 2 * H + j, n), o = load_n<V>(g + 3 * H + j, n);
      const V a = load_n<V>(ar + j, n), d = load_n<V>(dhr + j, n);
      const V dct = dcin + d * o * activate_grad(act, a);
      const V cpv = load_n<V>(cp + j, n);
      store_n(dct * gg * activate_grad(rec_act, i), dz + j, n);
      store_n(dct * cpv * activate_grad(rec_act, f), dz + H + j, n);
      store_n(dct * i * activate_grad(act, gg), dz + 2 * H + j, n);
      store_n(d * a * activate_grad(rec_act, o), dz + 3 * H + j, n);
      store_n(dct * f, dcr + j, n);
    };
    const int jt = H - V::L;
    const V tdc = jend < H ? V::load(dcr + jt) : V::zero();  // dc is updated in place: read first
    for (int j = 0; j < jend; j += V::L) {
      const int n = imin(V::L, H - j);
      step(j, n, load_n<V>(dcr + j, n));
    }
    if (jend < H) step(jt, V::L, tdc);
  }
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
