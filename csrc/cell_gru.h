// cell_gru.h — the GRU cell (Keras 3 GRUCell) as a policy of the sequence driver.
//
// Gate order along 3H is z (update), r (reset), h (candidate), as Keras stores
// kernel (I,3H), recurrent_kernel (H,3H) and bias. a = h_{t-1} ⊙ m, where m is the
// recurrent-dropout mask (1 if none), is what multiplies U; the final mix uses
// h_{t-1} itself, as in Keras.
//
// reset_after=True (Keras 3 default; bias (2,3H): row 0 input, row 1 recurrent):
//   Z = x·W + b_in            R = a·U + b_rec         (one product per step)
//   z = ra(Z_z + R_z)   r = ra(Z_r + R_r)   hh = a(Z_h + r ⊙ R_h)
//   h = z ⊙ h_{t-1} + (1 - z) ⊙ hh                   (isa gru_cell_forward)
// reset_after=False (bias (3H)):
//   Z_zr += a·U_zr;  z = ra(Z_z), r = ra(Z_r), q = r ⊙ a        (isa gru_gates_forward)
//   Z_h  += q·U_h;   hh = a(Z_h), h = z ⊙ h_{t-1} + (1 - z) ⊙ hh (isa gru_output_forward)
//   (two products per step: the second needs r)
// Backward, reset_after=True: the fused cell gives dZ (of x·W + b_in), dZr (of
//   a·U + b_rec) and dh ⊙ z; then dh_{t-1} = dh ⊙ z + (dZr·U^T) ⊙ m.
// reset_after=False: gru_output_backward gives dZ_z, dZ_h, dh ⊙ z; dq = dZ_h·U_h^T;
//   gru_gates_backward gives dZ_r and dq ⊙ r; dh_{t-1} = dh ⊙ z + (dq ⊙ r + dZ_zr·U_zr^T) ⊙ m.
// Cache: gates = (z, r, hh); aux = R_h (reset_after) or q (not); hraw = h_{t-1}
// when m is given (else hprev is h_{t-1}).
#pragma once
#include "recurrent_step.h"

namespace fusedlstm {

struct GruCell {
  static constexpr CellKind kind = CellKind::gru;
  static constexpr int kGates = 3;
  static constexpr bool kHasC = false;
  static constexpr bool kNeedsRawH = true;
  static constexpr bool kUnitSplit = false;  // reset_after=False needs two products; b_rec unpermuted

  static int segments(const RnnOptions& opt, int H, Segment* seg) {
    if (opt.reset_after) {
      seg[0] = {0, 3 * H};
      return 1;
    }
    seg[0] = {0, 2 * H};
    seg[1] = {2 * H, H};
    return 2;
  }
  static bool has_aux(const RnnOptions&) { return true; }
  static bool has_dZr(const RnnOptions& opt) { return opt.reset_after; }
  static int scratch_cols(const RnnOptions&, int H) { return 3 * H; }

  template <class Real>
  static void forward(const KernelOps<Real>& k, const PackedRecurrent<Real>& U, const StepForward<Real>& s,
                      const RnnOptions& opt) {
    const int H = s.H, G = s.G, m = s.m;
    if (opt.reset_after) {
      Real* R = s.scratch;  // (m,3H)
      U.times_u(0, m, s.a, H, Real(0), R, G, s.nt);
      parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
        const size_t o = size_t(r0) * H, og = size_t(r0) * G;
        k.gru_cell_forward(r1 - r0, H, s.Z + og, G, R + og, G, s.b_rec, s.h_prev + o, H, s.h + o, H,
                           s.aux ? s.aux + o : nullptr, H, opt.act, opt.rec_act);
      });
      return;
    }
    Real* q = s.aux ? s.aux : s.scratch;  // (m,H) r ⊙ a
    U.times_u(0, m, s.a, H, Real(1), s.Z, G, s.nt);
    parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
      const size_t o = size_t(r0) * H;
      k.gru_gates_forward(r1 - r0, H, s.Z + size_t(r0) * G, G, s.a + o, H, q + o, H, opt.rec_act);
    });
    U.times_u(1, m, q, H, Real(1), s.Z + 2 * H, G, s.nt);
    parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
      const size_t o = size_t(r0) * H;
      k.gru_output_forward(r1 - r0, H, s.Z + size_t(r0) * G, G, s.h_prev + o, H, s.h + o, H, opt.act);
    });
  }

  template <class Real>
  static void backward(const KernelOps<Real>& k, const PackedRecurrent<Real>& Ut, const StepBackward<Real>& s,
                       const RnnOptions& opt) {
    const int H = s.H, G = s.G, m = s.m;
    const size_t mH = size_t(m) * H;
    Real* t = s.scratch;  // (m,H): the gradient reaching a
    if (opt.reset_after) {
      parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
        const size_t o = size_t(r0) * H, og = size_t(r0) * G;
        k.gru_cell_backward(r1 - r0, H, s.gates + og, G, s.aux + o, H, s.h_prev + o, H, s.dh + o, H, s.dZ + og,
                            G, s.dZr + og, G, s.dh_prev + o, H, opt.act, opt.rec_act);
      });
      if (!s.rec_mask) {
        Ut.times_ut(0, m, s.dZr, G, Real(1), s.dh_prev, H, s.nt);
        return;
      }
      Ut.times_ut(0, m, s.dZr, G, Real(0), t, H, s.nt);
    } else {
      parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
        const size_t o = size_t(r0) * H, og = size_t(r0) * G;
        k.gru_output_backward(r1 - r0, H, s.gates + og, G, s.h_prev + o, H, s.dh + o, H, s.dZ + og, G,
                              s.dh_prev + o, H, opt.act, opt.rec_act);
      });
      Ut.times_ut(1, m, s.dZ + 2 * H, G, Real(0), t, H, s.nt);  // dq = dZ_h·U_h^T
      parallel_rows(m, size_t(m) * G, s.nt, [&](int r0, int r1) {
        const size_t o = size_t(r0) * H, og = size_t(r0) * G;
        k.gru_gates_backward(r1 - r0, H, s.gates + og, G, s.a + o, H, t + o, H, s.dZ + og, G, opt.rec_act);
      });
      Ut.times_ut(0, m, s.dZ, G, Real(1), t, H, s.nt);  // + dZ_zr·U_zr^T
    }
    if (s.rec_mask)
      for (size_t e = 0; e < mH; ++e) s.dh_prev[e] += t[e] * s.rec_mask[e];
    else
      for (size_t e = 0; e < mH; ++e) s.dh_prev[e] += t[e];
  }

  // dU[:, seg 0] = Hprev^T·D; without reset_after, dU[:, 2H:] = Q^T·dZ_h (q = r ⊙ a).
  template <class Real> static const Real* rec_grad_input(const RnnCache<Real>& C, int p) {
    return p == 0 ? C.hprev.data() : C.aux.data();
  }
};

}  // namespace fusedlstm
