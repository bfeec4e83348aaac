// recurrent_step.h — the interface between the sequence driver (recurrent.cpp)
// and a cell (cell_lstm.h, cell_gru.h, cell_simple_rnn.h): what one time step
// of a block of batch rows gets, and the recurrent weight U packed for it.
//
// A cell policy is a struct with
//   kind, kGates (G = kGates·H), kHasC (a second state c), kNeedsRawH (its
//   backward reads h_{s-1} itself, not only h_{s-1} ⊙ rec_mask),
//   segments(opt, H, seg)   the column segments of U its products use,
//   has_aux(opt)            whether it keeps a (T,B,H) per-step value (cache aux),
//   has_dZr(opt)            whether the gradient of h·U differs from that of x·W
//                           (then the driver keeps a second (T,B,G) buffer dZr),
//   scratch_cols(opt, H)    columns of per-row scratch a step needs (0: none),
//   forward(k, U, step, opt) / backward(k, Ut, step, opt)   one time step,
//   rec_grad_input(cache, dZr, p)   the A of dU[:, seg p] = A^T·D over all steps.
// The driver owns everything else (see recurrent.cpp).
#pragma once
#include <cstddef>

#include "common.h"
#include "isa/ops.h"
#include "precision.h"
#include "recurrent.h"

namespace fusedlstm {

// ---- the recurrent weight, packed once per call -------------------------------
// A cell multiplies by column segments of U (H, G): LSTM and SimpleRNN by all of
// it, the GRU without reset_after by U[:, :2H] and then U[:, 2H:] (the second
// product's input needs the reset gate, which needs the first). The forward packs
// op(B) = U[:, seg] (H x n) and the backward op(B) = U[:, seg]^T (n x H), each once
// per call, so a step's product reads a packed panel instead of re-packing U.
// These two methods are the only products with U inside the time loop.
//
// Precision: each segment's product is one product kind, decided once per call
// for the whole batch (precision.h): forward gemm_fns_for(p, B, n, H), backward
// gemm_fns_for(p, B, H, n). The panel is packed by the level chosen and every
// step's product (m <= B rows of a thread's block) reads it through that same
// level, so a row's numbers do not depend on how the rows were split.
struct Segment {
  int col0 = 0, n = 0;  // columns [col0, col0 + n) of U
};
constexpr int kMaxSegments = 2;

template <class Real> class PackedRecurrent {
 public:
  // B: the batch rows the steps multiply (the shape the precision is decided for).
  PackedRecurrent(Precision prec, int B, const Real* U, int H, int G, const Segment* segs, int nseg,
                  bool transposed)
      : H_(H), nseg_(nseg), transposed_(transposed) {
    for (int p = 0; p < nseg; ++p) {
      seg_[p] = segs[p];
      const int n = segs[p].n;
      if (transposed) {  // op(B) = U[:, seg]^T: K = n, N = H
        gemm_[p] = gemm_fns_for<Real>(prec, B, H, n);
        packed_[p].reset(gemm_[p].packed_b_size(n, H));
        gemm_[p].pack_b(true, n, H, U + segs[p].col0, G, packed_[p].data());
      } else {           // op(B) = U[:, seg]: K = H, N = n
        gemm_[p] = gemm_fns_for<Real>(prec, B, n, H);
        packed_[p].reset(gemm_[p].packed_b_size(H, n));
        gemm_[p].pack_b(false, H, n, U + segs[p].col0, G, packed_[p].data());
      }
    }
  }
  PackedRecurrent(const PackedRecurrent&) = delete;
  PackedRecurrent& operator=(const PackedRecurrent&) = delete;

  // C (m, n_p) = beta·C + A (m, H) · U[:, seg p]            (forward step)
  void times_u(int p, int m, const Real* A, int lda, Real beta, Real* C, int ldc, int nt) const {
    gemm_[p].gemm_packed(false, m, seg_[p].n, H_, A, lda, packed_[p].data(), beta, C, ldc, nt);
  }
  // C (m, H) = beta·C + D (m, n_p) · U[:, seg p]^T          (backward step)
  void times_ut(int p, int m, const Real* D, int ldd, Real beta, Real* C, int ldc, int nt) const {
    gemm_[p].gemm_packed(false, m, H_, seg_[p].n, D, ldd, packed_[p].data(), beta, C, ldc, nt);
  }
  // Whether this is the forward packing a call at (prec, B) with these segments would
  // make itself: the same columns packed by the same level for every segment, so it
  // gives the same bits (weights packed once per model and reused across calls).
  bool matches(Precision prec, int B, const Segment* segs, int nseg) const {
    if (transposed_ || nseg != nseg_) return false;
    for (int p = 0; p < nseg; ++p) {
      if (segs[p].col0 != seg_[p].col0 || segs[p].n != seg_[p].n) return false;
      const GemmFns<Real> want = gemm_fns_for<Real>(prec, B, segs[p].n, H_);
      if (want.pack_b != gemm_[p].pack_b || want.gemm_packed != gemm_[p].gemm_packed) return false;
    }
    return true;
  }
  int units() const { return H_; }
  size_t nbytes() const {
    size_t n = 0;
    for (int p = 0; p < nseg_; ++p) n += packed_[p].nbytes();
    return n;
  }

 private:
  int H_, nseg_;
  bool transposed_;
  Segment seg_[kMaxSegments];
  GemmFns<Real> gemm_[kMaxSegments]{};
  Buffer<Real> packed_[kMaxSegments];
};

// ---- one time step over rows [r0, r1) of the batch -----------------------------
// Every pointer already points at row r0; row strides are H for (·,H) blocks and
// G for (·,G) blocks. nt: threads this step may use (1 when the driver gave each
// thread its own rows).
template <class Real> struct StepForward {
  int m = 0, H = 0, G = 0;
  Real* Z = nullptr;              // (m,G) in: x·W + b; out: what the cell's backward needs
  const Real* a = nullptr;        // (m,H) h_{s-1} ⊙ rec_mask: the input of the products with U
  const Real* h_prev = nullptr;   // (m,H) h_{s-1}
  const Real* c_prev = nullptr;   // (m,H) LSTM
  Real* h = nullptr;              // (m,H) h_s
  Real* c = nullptr;              // (m,H) LSTM c_s
  Real* aux = nullptr;            // (m,H) the cell's per-step cache value, or null in inference
  const Real* b_rec = nullptr;    // (G) GRU recurrent bias, or null
  Real* scratch = nullptr;        // (m, scratch_cols) or null
  int nt = 1;
};

template <class Real> struct StepBackward {
  int m = 0, H = 0, G = 0;
  const Real* gates = nullptr;    // (m,G) what the forward left in Z
  const Real* a = nullptr;        // (m,H) h_{s-1} ⊙ rec_mask
  const Real* h_prev = nullptr;   // (m,H) h_{s-1}
  const Real* c_prev = nullptr;   // (m,H) LSTM
  const Real* aux = nullptr;      // (m,H) or null
  const Real* rec_mask = nullptr; // (m,H) or null
  const Real* dh = nullptr;       // (m,H) total gradient reaching h_s
  Real* dc = nullptr;             // (m,H) LSTM: in, gradient reaching c_s; out, reaching c_{s-1}
  Real* dZ = nullptr;             // (m,G) out: gradient of x·W + b
  Real* dZr = nullptr;            // (m,G) out, when has_dZr: gradient of h·U + b_rec
  Real* dh_prev = nullptr;        // (m,H) out: gradient reaching h_{s-1}
  Real* scratch = nullptr;        // (m, scratch_cols) or null
  int nt = 1;
};

// x *= r elementwise over n values (the recurrent-dropout mask on a gradient).
template <class Real> inline void mul_mask(Real* x, const Real* r, size_t n) {
  for (size_t e = 0; e < n; ++e) x[e] *= r[e];
}

}  // namespace fusedlstm
