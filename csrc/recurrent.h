// recurrent.h — one recurrent layer over a whole sequence, forward (inference or
// training) and backward (BPTT), for each cell the library has: LSTM, GRU and
// SimpleRNN (Keras 3 semantics), on top of the kernel table in isa/ops.h.
//
// The cells differ only inside a time step; everything around the step is one
// driver (recurrent.cpp): the token-id / one-hot lookup path, the input
// projection of all steps as one GEMM (chunked in inference), Keras masks,
// go_backwards, return_sequences, the initial state, the recurrent-dropout mask,
// the row-block threading of the time loop, the time-major caches, the BPTT loop
// and the weight gradients as one GEMM each over all steps. A cell is a policy
// (cell_lstm.h, cell_gru.h, cell_simple_rnn.h) plugged into it. Everything here
// is plain C++ on raw pointers that the bindings checked; nothing touches
// Python, so it runs without the GIL.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "isa/ops.h"
#include "precision.h"

namespace fusedlstm {

// Which cell a call runs. G (gate columns of W, U, b) is 4H, 3H or H.
enum class CellKind : int { lstm = 0, gru = 1, simple_rnn = 2 };

inline int gates_per_unit(CellKind k) { return k == CellKind::lstm ? 4 : k == CellKind::gru ? 3 : 1; }

template <class Real> class PackedRecurrent;  // recurrent_step.h

// Options of one forward call (Keras layer semantics).
struct RnnOptions {
  bool go_backwards = false;          // read x[:, T-1-s] at step s; outputs in processing order
  bool zero_output_for_mask = false;  // masked steps output zeros instead of the previous output
  bool return_sequences = true;       // y (B,T,H), else only the last output (B,H)
  bool training = false;              // keep an RnnCache for rnn_backward
  bool onehot_auto = true;            // dense x whose rows are one-hot/zero takes the lookup path
  Act act = Act::tanh;
  Act rec_act = Act::sigmoid;         // LSTM and GRU gates (SimpleRNN has none)
  bool reset_after = true;            // GRU: reset gate applied after h·U (Keras 3 default)
  Precision precision = Precision::float32;  // of the GEMMs (precision.h); float32 arrays only for bfloat16
};

// Inputs of one forward call, checked by the bindings (shapes, ranges, C order).
template <class Real> struct RnnInputs {
  int B = 0, T = 0, H = 0;
  int I = 0;                      // features of dense x, or V (table rows) for ids
  const Real* x = nullptr;        // (B,T,I) dense input, or null
  const int32_t* ids32 = nullptr; // (B,T) token ids, unchecked (the forward checks [-1, V)), or null
  const int64_t* ids64 = nullptr; // the same for int64 ids
  const Real* W = nullptr;        // (I,G) kernel, or the (V,G) table for ids
  const Real* U = nullptr;        // (H,G)
  const Real* b = nullptr;        // (G) bias of x·W, or null
  const Real* b_rec = nullptr;    // (G) bias of h·U (GRU with reset_after), or null
  const Real* h0 = nullptr;       // (B,H)
  const Real* c0 = nullptr;       // (B,H), LSTM only
  const uint8_t* mask = nullptr;  // (B,T) 0/1, or null
  const Real* rec_mask = nullptr; // (B,H) recurrent dropout mask, or null
  // U already packed by pack_recurrent for this cell and options (weights packed
  // once per model, reused by inference calls), or null. The call packs U itself when
  // it is null or packed for another level (PackedRecurrent::matches).
  const PackedRecurrent<Real>* U_packed = nullptr;
};

// Outputs, allocated by the caller: y (B,T,H) or (B,H); hT, cT (B,H) (cT: LSTM only).
template <class Real> struct RnnOutputs {
  Real* y = nullptr;
  Real* hT = nullptr;
  Real* cT = nullptr;
};

// What rnn_backward needs from a training forward. All per-step blocks are in
// processing order s (s = t, or T-1-t with go_backwards). W and U are borrowed:
// the owner of the cache (the bindings) keeps the arrays alive.
template <class Real> struct RnnCache {
  CellKind cell = CellKind::lstm;
  int B = 0, T = 0, H = 0, I = 0;  // I = V on the lookup path
  int G = 0;                       // gate columns
  bool lookup = false;             // Z rows came from W's rows (ids or one-hot x)
  bool dense_input = false;        // x was a float array: dx is defined
  bool has_bias = false;
  bool has_rec_bias = false;       // b_rec was given (GRU)
  RnnOptions opt;
  const Real* W = nullptr;         // (I,G) or (V,G)
  const Real* U = nullptr;         // (H,G)
  Buffer<Real> gates;              // (T,B,G) what the cell's backward needs per step (activated gates)
  Buffer<Real> hprev;              // (T,B,H) h_{s-1} ⊙ rec_mask: the input of the step's product with U
  Buffer<Real> hraw;               // (T,B,H) h_{s-1} itself, when the cell needs it and rec_mask is given
  Buffer<Real> c;                  // (T+1,B,H) LSTM: c_s for s = 0..T (c[0] = c0)
  Buffer<Real> aux;                // (T,B,H) one more per-step value of the cell (LSTM a(c), GRU below)
  Buffer<Real> x;                  // (T,B,I) time-major x, dense path only
  Buffer<int32_t> ids;             // (T,B) ids, lookup path only
  Buffer<uint8_t> mask;            // (T,B) 0/1, empty when no mask
  std::vector<int> first_real;     // (B) first unmasked step s per row (T if none), with mask
  Buffer<Real> rec_mask;           // (B,H) copy, empty when none

  // h_{s-1} itself (not ⊙ rec_mask), block s of (T,B,H).
  const Real* h_before(int s) const {
    return (hraw.size() ? hraw.data() : hprev.data()) + size_t(s) * size_t(B) * size_t(H);
  }
  size_t nbytes() const {
    return gates.nbytes() + hprev.nbytes() + hraw.nbytes() + c.nbytes() + aux.nbytes() + x.nbytes() +
           ids.nbytes() + mask.nbytes() + rec_mask.nbytes() + first_real.size() * sizeof(int);
  }
};

// Gradients of one backward call, allocated by the caller (shapes as in _core.pyi).
template <class Real> struct RnnGrads {
  Real* dx = nullptr;      // (B,T,I) or null (not wanted / lookup path with ids)
  Real* dh0 = nullptr;     // (B,H)
  Real* dc0 = nullptr;     // (B,H), LSTM only
  Real* dW = nullptr;      // (I,G) or (V,G)
  Real* dU = nullptr;      // (H,G)
  Real* db = nullptr;      // (G) or null
  Real* db_rec = nullptr;  // (G) or null (GRU with reset_after and a bias)
  // Add dW, dU, db (and db_rec) to what the buffers hold instead of overwriting it
  // (a layer whose weights already have a gradient from another call in the same step).
  bool add_dW = false, add_dU = false, add_db = false;
  // Of the backward's GEMMs: the forward's (cache.opt.precision) unless the caller chose another.
  Precision precision = Precision::float32;
};

// Bytes a forward / backward call allocates (outputs, cache or per-call scratch),
// for the MemoryError check made before any allocation.
size_t rnn_forward_bytes(CellKind cell, size_t elem, int B, int T, int I, int H, bool training,
                         bool return_sequences, bool dense_x, bool rec_mask);
size_t rnn_backward_bytes(CellKind cell, size_t elem, int B, int T, int I, int H, bool dx, bool reset_after);

// U (H, G) packed for the forward's products with U, as a forward call of this cell
// with these options (opt.precision among them) and batch B packs it; pass it as
// RnnInputs::U_packed to skip that in calls whose level choice is the same.
template <class Real>
std::unique_ptr<PackedRecurrent<Real>> pack_recurrent(CellKind cell, const Real* U, int H, const RnnOptions& opt,
                                                      int B);

// How a forward call of this cell and shape shares its time loop among nthreads
// threads: kind "units" (the unit split: parts threads, part j owns units
// [bounds[j], bounds[j+1])), "rows" (parts blocks of batch rows, each running the
// whole loop) or "gemm" (one block; each step's product splits its columns). For
// tests and the bench: results never depend on it.
struct RecurrentSchedule {
  const char* kind = "gemm";
  int parts = 1;
  std::vector<int> bounds;
};
RecurrentSchedule recurrent_schedule(CellKind cell, int B, int T, int H, int nthreads, const RnnOptions& opt,
                                     bool rec_mask);

// Runs the forward; returns the cache when opt.training, else null.
template <class Real>
std::unique_ptr<RnnCache<Real>> rnn_forward(CellKind cell, const RnnInputs<Real>& in, const RnnOptions& opt,
                                            const RnnOutputs<Real>& out, int nthreads);

// BPTT through the forward that made `cache`; dy ((B,T,H) or (B,H)), dhT, dcT may be null.
// Reads the cache only, so it may run again (or concurrently) on the same cache.
template <class Real>
void rnn_backward(const RnnCache<Real>& cache, const Real* dy, const Real* dhT, const Real* dcT,
                  const RnnGrads<Real>& g, int nthreads);

}  // namespace fusedlstm
