// cell_simple_rnn.h — the SimpleRNN cell (Keras 3 SimpleRNNCell) as a policy of the sequence driver.
//
// Per step, with a = h_{t-1} ⊙ m (m the recurrent-dropout mask, 1 if none):
//   Z = x·W + b + a·U;   h = act(Z)                  (isa rnn_cell_forward)
// Backward:
//   dZ = dh ⊙ act'(h);   dh_{t-1} = (dZ·U^T) ⊙ m     (isa rnn_cell_backward)
// Cache: gates = h (before masking), from which act' is taken.
#pragma once
#include "recurrent_step.h"

namespace fusedlstm {

struct SimpleRnnCell {
  static constexpr CellKind kind = CellKind::simple_rnn;
  static constexpr int kGates = 1;
  static constexpr bool kHasC = false;
  static constexpr bool kNeedsRawH = false;
  static constexpr bool kUnitSplit = true;  // unit u: column u of the product

  static int segments(const RnnOptions&, int H, Segment* seg) {
    seg[0] = {0, H};
    return 1;
  }
  static bool has_aux(const RnnOptions&) { return false; }
  static bool has_dZr(const RnnOptions&) { return false; }
  static int scratch_cols(const RnnOptions&, int) { return 0; }

  template <class Real>
  static void forward(const KernelOps<Real>& k, const PackedRecurrent<Real>& U, const StepForward<Real>& s,
                      const RnnOptions& opt) {
    const int H = s.H, G = s.G, ld = s.ld;
    U.times_u(s.seg, s.m, s.a, ld, Real(1), s.Z, G, s.nt);
    parallel_rows(s.m, size_t(s.m) * H, s.nt, [&](int r0, int r1) {
      k.rnn_cell_forward(r1 - r0, H, s.Z + size_t(r0) * G, G, s.h + size_t(r0) * ld, ld, opt.act);
    });
  }

  template <class Real>
  static void backward(const KernelOps<Real>& k, const PackedRecurrent<Real>& Ut, const StepBackward<Real>& s,
                       const RnnOptions& opt) {
    const int H = s.H;
    parallel_rows(s.m, size_t(s.m) * H, s.nt, [&](int r0, int r1) {
      const size_t o = size_t(r0) * H;
      k.rnn_cell_backward(r1 - r0, H, s.gates + o, H, s.dh + o, H, s.dZ + o, H, opt.act);
    });
    Ut.times_ut(0, s.m, s.dZ, H, Real(0), s.dh_prev, H, s.nt);
    if (s.rec_mask) mul_mask(s.dh_prev, s.rec_mask, size_t(s.m) * H);
  }

  template <class Real> static const Real* rec_grad_input(const RnnCache<Real>& C, int) { return C.hprev.data(); }
};

}  // namespace fusedlstm
