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
#include <cstring>

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

// ---- the unit split of an inference step (recurrent.cpp decides when) ----------
// Part j of `parts` owns units [u[j], u[j+1]) with all their gate columns. In the
// split layout the gate columns of U, W, b and Z are permuted so that each part's
// are contiguous and in the natural order of a layer of its own:
//   column g·H + u (gate g, unit u of part j)  ->  kG·u[j] + g·(u[j+1] - u[j]) + (u - u[j])
// so part j's Z columns [kG·u[j], kG·u[j+1]) are the gates of a layer with
// u[j+1] - u[j] units, which the cell's step reads as it stands. parts = 0: the
// natural layout (no split). Only cells whose gates of a unit come from its own
// columns of one product take it (Cell::kUnitSplit).
constexpr int kMaxParts = 8;
struct UnitSplit {
  int parts = 0;
  int u[kMaxParts + 1] = {};
  int units(int j) const { return u[j + 1] - u[j]; }
  bool operator==(const UnitSplit& o) const {
    if (parts != o.parts) return false;
    for (int j = 0; j <= parts; ++j)
      if (u[j] != o.u[j]) return false;
    return true;
  }
};

// dst (rows, kG·H) = src's columns in the split layout (rows of stride lds / ldd).
template <class Real>
void permute_gate_columns(const Real* src, size_t lds, size_t rows, int H, int kG, const UnitSplit& sp, Real* dst,
                          size_t ldd) {
  for (size_t r = 0; r < rows; ++r)
    for (int j = 0; j < sp.parts; ++j)
      for (int g = 0; g < kG; ++g)
        std::memcpy(dst + r * ldd + size_t(kG) * sp.u[j] + size_t(g) * sp.units(j),
                    src + r * lds + size_t(g) * H + sp.u[j], sizeof(Real) * sp.units(j));
}

template <class Real> class PackedRecurrent {
 public:
  // B: the batch rows the steps multiply (the shape the precision is decided for).
  PackedRecurrent(Precision prec, int B, const Real* U, int H, int G, const Segment* segs, int nseg,
                  bool transposed)
      : H_(H), nseg_(nseg), transposed_(transposed) {
    pack(prec, B, U, G, segs, transposed);
  }
  // The forward's U in the split layout of `sp`, one segment per part (a part's
  // product is C (m, kG·units) = A (m, H) · U[:, its columns]).
  PackedRecurrent(Precision prec, int B, const Real* U, int H, int kG, const UnitSplit& sp)
      : H_(H), nseg_(sp.parts), transposed_(false), split_(sp) {
    const int G = kG * H;
    Buffer<Real> perm(size_t(H) * G);
    permute_gate_columns(U, G, H, H, kG, sp, perm.data(), G);
    Segment segs[kMaxParts];
    for (int j = 0; j < sp.parts; ++j) segs[j] = {kG * sp.u[j], kG * sp.units(j)};
    pack(prec, B, perm.data(), G, segs, false);
  }
  PackedRecurrent(const PackedRecurrent&) = delete;
  PackedRecurrent& operator=(const PackedRecurrent&) = delete;

 private:
  void pack(Precision prec, int B, const Real* U, int G, const Segment* segs, bool transposed) {
    const int H = H_;
    for (int p = 0; p < nseg_; ++p) {
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

 public:
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
  // A split packing matches only a call with that split (segments are then its parts).
  bool matches(Precision prec, int B, const Segment* segs, int nseg, const UnitSplit& sp) const {
    if (transposed_ || nseg != nseg_ || !(sp == split_)) return false;
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
  UnitSplit split_;  // parts = 0: natural layout, segments as the cell gave them
  Segment seg_[kMaxParts];
  GemmFns<Real> gemm_[kMaxParts]{};
  Buffer<Real> packed_[kMaxParts];
};

// ---- one time step over rows [r0, r1) of the batch -----------------------------
// Every pointer already points at row r0; row strides are H for (·,H) blocks and
// G for (·,G) blocks. nt: threads this step may use (1 when the driver gave each
// thread its own rows).
// In a unit split (UnitSplit above) the step is one part's: H is the part's units,
// Z, c_prev, h_prev, h, c point at its first column, ld (the layer's units) is
// the row stride of a, c_prev, h_prev, h and c, a holds all ld units (the product's
// depth), and seg is the part's segment of the packed U. Otherwise ld = H, seg = 0.
// Only cells with kUnitSplit see ld != H.
template <class Real> struct StepForward {
  int m = 0, H = 0, G = 0;
  int ld = 0, seg = 0;
  Real* Z = nullptr;              // (m,G) in: x·W + b; out: what the cell's backward needs
  const Real* a = nullptr;        // (m,ld) h_{s-1} ⊙ rec_mask: the input of the products with U
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
