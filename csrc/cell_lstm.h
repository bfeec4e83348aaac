// cell_lstm.h — the LSTM cell as a policy of the sequence driver (recurrent_step.h).
//
// Per step, with a = h_{t-1} ⊙ r (r the recurrent-dropout mask, 1 if none):
//   Z = x·W + b + a·U                       (one product, U packed once per call)
//   i, f, g, o = ra(Z_i), ra(Z_f), a(Z_c), ra(Z_o)       (isa lstm_cell_forward)
//   c = f ⊙ c_{t-1} + i ⊙ g;   h = o ⊙ a(c)
// Backward: the fused cell gives dZ and dc_{t-1} (isa lstm_cell_backward), then
//   dh_{t-1} = (dZ·U^T) ⊙ r.
// Cache: gates = activated (i, f, g, o); aux = a(c); c = the cell states.
#pragma once
#include "recurrent_step.h"

namespace fusedlstm {

struct LstmCell {
  static constexpr CellKind kind = CellKind::lstm;
  static constexpr int kGates = 4;
  static constexpr bool kHasC = true;
  static constexpr bool kNeedsRawH = false;
  static constexpr bool kUnitSplit = true;  // a unit's gates: its own columns of one product

  static int segments(const RnnOptions&, int H, Segment* seg) {
    seg[0] = {0, 4 * H};
    return 1;
  }
  static bool has_aux(const RnnOptions&) { return true; }
  static bool has_dZr(const RnnOptions&) { return false; }
  static int scratch_cols(const RnnOptions&, int) { return 0; }

  template <class Real>
  static void forward(const KernelOps<Real>& k, const PackedRecurrent<Real>& U, const StepForward<Real>& s,
                      const RnnOptions& opt) {
    const int H = s.H, G = s.G, ld = s.ld;
    U.times_u(s.seg, s.m, s.a, ld, Real(1), s.Z, G, s.nt);
    parallel_rows(s.m, size_t(s.m) * 4 * H, s.nt, [&](int r0, int r1) {
      const size_t o = size_t(r0) * ld;
      k.lstm_cell_forward(r1 - r0, H, s.Z + size_t(r0) * G, G, s.c_prev + o, ld, s.c + o, ld, s.h + o, ld,
                          s.aux ? s.aux + o : nullptr, ld, opt.act, opt.rec_act);
    });
  }

  template <class Real>
  static void backward(const KernelOps<Real>& k, const PackedRecurrent<Real>& Ut, const StepBackward<Real>& s,
                       const RnnOptions& opt) {
    const int H = s.H, G = s.G;
    parallel_rows(s.m, size_t(s.m) * G, s.nt, [&](int r0, int r1) {
      const size_t o = size_t(r0) * H, og = size_t(r0) * G;
      k.lstm_cell_backward(r1 - r0, H, s.gates + og, G, s.c_prev + o, H, s.aux + o, H, s.dh + o, H, s.dc + o, H,
                           s.dZ + og, G, opt.act, opt.rec_act);
    });
    Ut.times_ut(0, s.m, s.dZ, G, Real(0), s.dh_prev, H, s.nt);
    if (s.rec_mask) mul_mask(s.dh_prev, s.rec_mask, size_t(s.m) * H);
  }

  // dU = Hprev^T·dZ over all steps, Hprev = h_{s-1} ⊙ r.
  template <class Real> static const Real* rec_grad_input(const RnnCache<Real>& C, int) { return C.hprev.data(); }
};

}  // namespace fusedlstm
