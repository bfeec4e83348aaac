// gru_cell_impl.h — the fused GRU cell (Keras 3 GRUCell), forward and backward, one time step over B rows.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
//
// Gate order along 3H: z (update), r (reset), h (candidate). Rows are vectorised
// with row_vectors (impl_common.h): full vectors, then an overlapping tail.
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
// reset_after=True: one product per step (formulas in ops.h)
// ============================================================================

// z = ra(Z_z + (R_z + b_z))   r = ra(Z_r + (R_r + b_r))   rh = R_h + b_h
// hh = a(Z_h + r ⊙ rh)        h = z ⊙ h_prev + (1 - z) ⊙ hh
template <class V>
void gru_cell_forward(int B, int H, typename V::T* Z, int ldz, const typename V::T* R, int ldr,
                      const typename V::T* b_rec, const typename V::T* h_prev, int ldhp, typename V::T* h, int ldh,
                      typename V::T* rh, int ldrh, Act act, Act rec_act) {
  using T = typename V::T;
  struct In {
    V xz, xr, xh, rz, rr, rh, hp;
  };
  const V one = V::set1(T(1));
  for (int b = 0; b < B; ++b) {
    T* zr = Z + (size_t)b * ldz;
    const T* rr = R + (size_t)b * ldr;
    const T* hp = h_prev + (size_t)b * ldhp;
    T* hr = h + (size_t)b * ldh;
    T* rho = rh ? rh + (size_t)b * ldrh : nullptr;
    auto load = [&](int j, int n) {
      In v{load_n<V>(zr + j, n),     load_n<V>(zr + H + j, n), load_n<V>(zr + 2 * H + j, n),
           load_n<V>(rr + j, n),     load_n<V>(rr + H + j, n), load_n<V>(rr + 2 * H + j, n),
           load_n<V>(hp + j, n)};
      if (b_rec) {
        v.rz = v.rz + load_n<V>(b_rec + j, n);
        v.rr = v.rr + load_n<V>(b_rec + H + j, n);
        v.rh = v.rh + load_n<V>(b_rec + 2 * H + j, n);
      }
      return v;
    };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      const V z = activate(rec_act, v.xz + v.rz);
      const V r = activate(rec_act, v.xr + v.rr);
      const V hh = activate(act, v.xh + r * v.rh);
      store_n(z, zr + j, n);
      store_n(r, zr + H + j, n);
      store_n(hh, zr + 2 * H + j, n);
      store_n(z * v.hp + (one - z) * hh, hr + j, n);
      if (rho) store_n(v.rh, rho + j, n);
    });
  }
}

// gz = dh ⊙ (h_prev - hh) ⊙ ra'(z)    gh = dh ⊙ (1 - z) ⊙ a'(hh)    gr = gh ⊙ rh ⊙ ra'(r)
// dZ = (gz, gr, gh)   dZr = (gz, gr, gh ⊙ r)   dh_prev = dh ⊙ z
template <class V>
void gru_cell_backward(int B, int H, const typename V::T* gates, int ldg, const typename V::T* rh, int ldrh,
                       const typename V::T* h_prev, int ldhp, const typename V::T* dh, int lddh, typename V::T* dZ,
                       int lddz, typename V::T* dZr, int lddzr, typename V::T* dh_prev, int lddhp, Act act,
                       Act rec_act) {
  using T = typename V::T;
  struct In {
    V z, r, hh, rh, hp, dh;
  };
  const V one = V::set1(T(1));
  for (int b = 0; b < B; ++b) {
    const T* g = gates + (size_t)b * ldg;
    const T* rhr = rh + (size_t)b * ldrh;
    const T* hp = h_prev + (size_t)b * ldhp;
    const T* d = dh + (size_t)b * lddh;
    T* dz = dZ + (size_t)b * lddz;
    T* dzr = dZr + (size_t)b * lddzr;
    T* dhp = dh_prev + (size_t)b * lddhp;
    auto load = [&](int j, int n) {
      return In{load_n<V>(g + j, n),   load_n<V>(g + H + j, n), load_n<V>(g + 2 * H + j, n),
                load_n<V>(rhr + j, n), load_n<V>(hp + j, n),    load_n<V>(d + j, n)};
    };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      const V gz = v.dh * (v.hp - v.hh) * activate_grad(rec_act, v.z);
      const V gh = v.dh * (one - v.z) * activate_grad(act, v.hh);
      const V gr = gh * v.rh * activate_grad(rec_act, v.r);
      store_n(gz, dz + j, n);
      store_n(gr, dz + H + j, n);
      store_n(gh, dz + 2 * H + j, n);
      store_n(gz, dzr + j, n);
      store_n(gr, dzr + H + j, n);
      store_n(gh * v.r, dzr + 2 * H + j, n);
      store_n(v.dh * v.z, dhp + j, n);
    });
  }
}

// ============================================================================
// reset_after=False: two products per step, a kernel after each (formulas in ops.h)
// ============================================================================

// Z_z, Z_r hold x·W + b + a·U (their blocks): z = ra(Z_z), r = ra(Z_r) in place; q = r ⊙ a.
template <class V>
void gru_gates_forward(int B, int H, typename V::T* Z, int ldz, const typename V::T* a, int lda, typename V::T* q,
                       int ldq, Act rec_act) {
  using T = typename V::T;
  struct In {
    V xz, xr, a;
  };
  for (int b = 0; b < B; ++b) {
    T* zr = Z + (size_t)b * ldz;
    const T* ar = a + (size_t)b * lda;
    T* qr = q + (size_t)b * ldq;
    auto load = [&](int j, int n) { return In{load_n<V>(zr + j, n), load_n<V>(zr + H + j, n), load_n<V>(ar + j, n)}; };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      const V r = activate(rec_act, v.xr);
      store_n(activate(rec_act, v.xz), zr + j, n);
      store_n(r, zr + H + j, n);
      store_n(r * v.a, qr + j, n);
    });
  }
}

// Z_h holds x·W_h + b_h + q·U_h: hh = a(Z_h) in place; h = z ⊙ h_prev + (1 - z) ⊙ hh.
template <class V>
void gru_output_forward(int B, int H, typename V::T* Z, int ldz, const typename V::T* h_prev, int ldhp,
                        typename V::T* h, int ldh, Act act) {
  using T = typename V::T;
  struct In {
    V z, xh, hp;
  };
  const V one = V::set1(T(1));
  for (int b = 0; b < B; ++b) {
    T* zr = Z + (size_t)b * ldz;
    const T* hp = h_prev + (size_t)b * ldhp;
    T* hr = h + (size_t)b * ldh;
    auto load = [&](int j, int n) {
      return In{load_n<V>(zr + j, n), load_n<V>(zr + 2 * H + j, n), load_n<V>(hp + j, n)};
    };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      const V hh = activate(act, v.xh);
      store_n(hh, zr + 2 * H + j, n);
      store_n(v.z * v.hp + (one - v.z) * hh, hr + j, n);
    });
  }
}

// gz = dh ⊙ (h_prev - hh) ⊙ ra'(z) -> dZ_z    gh = dh ⊙ (1 - z) ⊙ a'(hh) -> dZ_h    dh_prev = dh ⊙ z
template <class V>
void gru_output_backward(int B, int H, const typename V::T* gates, int ldg, const typename V::T* h_prev, int ldhp,
                         const typename V::T* dh, int lddh, typename V::T* dZ, int lddz, typename V::T* dh_prev,
                         int lddhp, Act act, Act rec_act) {
  using T = typename V::T;
  struct In {
    V z, hh, hp, dh;
  };
  const V one = V::set1(T(1));
  for (int b = 0; b < B; ++b) {
    const T* g = gates + (size_t)b * ldg;
    const T* hp = h_prev + (size_t)b * ldhp;
    const T* d = dh + (size_t)b * lddh;
    T* dz = dZ + (size_t)b * lddz;
    T* dhp = dh_prev + (size_t)b * lddhp;
    auto load = [&](int j, int n) {
      return In{load_n<V>(g + j, n), load_n<V>(g + 2 * H + j, n), load_n<V>(hp + j, n), load_n<V>(d + j, n)};
    };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      store_n(v.dh * (v.hp - v.hh) * activate_grad(rec_act, v.z), dz + j, n);
      store_n(v.dh * (one - v.z) * activate_grad(act, v.hh), dz + 2 * H + j, n);
      store_n(v.dh * v.z, dhp + j, n);
    });
  }
}

// Backward of q = r ⊙ a given dq = dZ_h·U_h^T: gr = dq ⊙ a ⊙ ra'(r) -> dZ_r; dq ⊙ r -> dq (in place).
template <class V>
void gru_gates_backward(int B, int H, const typename V::T* gates, int ldg, const typename V::T* a, int lda,
                        typename V::T* dq, int lddq, typename V::T* dZ, int lddz, Act rec_act) {
  using T = typename V::T;
  struct In {
    V r, a, dq;
  };
  for (int b = 0; b < B; ++b) {
    const T* g = gates + (size_t)b * ldg;
    const T* ar = a + (size_t)b * lda;
    T* dqr = dq + (size_t)b * lddq;
    T* dz = dZ + (size_t)b * lddz;
    auto load = [&](int j, int n) { return In{load_n<V>(g + H + j, n), load_n<V>(ar + j, n), load_n<V>(dqr + j, n)}; };
    row_vectors<V>(H, load, [&](int j, int n, In v) {
      store_n(v.dq * v.a * activate_grad(rec_act, v.r), dz + H + j, n);
      store_n(v.dq * v.r, dqr + j, n);
    });
  }
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
