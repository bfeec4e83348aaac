// lstm.h — an LSTM layer over a whole sequence: forward (inference or training)
// and backward (BPTT), on top of the kernel table in isa/ops.h.
//
// The input projection of all time steps is one GEMM before the time loop (or a
// row lookup for token ids); inside the loop only h_{t-1}·U (U packed once per
// call) and one fused cell per step. The weight gradients are one GEMM each over
// all steps after the backward loop. Everything here is plain C++ on raw pointers
// that the bindings checked; nothing touches Python, so it runs without the GIL.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "isa/ops.h"

namespace fusedlstm {

// Options of one forward call (Keras LSTM layer semantics).
struct LstmOptions {
  bool go_backwards = false;          // read x[:, T-1-s] at step s; outputs in processing order
  bool zero_output_for_mask = false;  // masked steps output zeros instead of the previous output
  bool return_sequences = true;       // y (B,T,H), else only the last output (B,H)
  bool training = false;              // keep an LstmCache for lstm_backward
  bool onehot_auto = true;            // dense x whose rows are one-hot/zero takes the lookup path
  Act act = Act::tanh;
  Act rec_act = Act::sigmoid;
};

// Inputs of one forward call, checked by the bindings (shapes, ranges, C order).
template <class Real> struct LstmInputs {
  int B = 0, T = 0, H = 0;
  int I = 0;                      // features of dense x, or V (table rows) for ids
  const Real* x = nullptr;        // (B,T,I) dense input, or null
  const int32_t* ids32 = nullptr; // (B,T) token ids, unchecked (lstm_forward checks [-1, V)), or null
  const int64_t* ids64 = nullptr; // the same for int64 ids
  const Real* W = nullptr;        // (I,4H) kernel, or the (V,4H) table for ids
  const Real* U = nullptr;        // (H,4H)
  const Real* b = nullptr;        // (4H) or null
  const Real* h0 = nullptr;       // (B,H)
  const Real* c0 = nullptr;       // (B,H)
  const uint8_t* mask = nullptr;  // (B,T) 0/1, or null
  const Real* rec_mask = nullptr; // (B,H) recurrent dropout mask, or null
};

// Outputs, allocated by the caller: y (B,T,H) or (B,H); hT, cT (B,H).
template <class Real> struct LstmOutputs {
  Real* y = nullptr;
  Real* hT = nullptr;
  Real* cT = nullptr;
};

// What lstm_backward needs from a training forward. All per-step blocks are in
// processing order s (s = t, or T-1-t with go_backwards). W and U are borrowed:
// the owner of the cache (the bindings) keeps the arrays alive.
template <class Real> struct LstmCache {
  int B = 0, T = 0, H = 0, I = 0;  // I = V on the lookup path
  bool lookup = false;             // Z rows came from W's rows (ids or one-hot x)
  bool dense_input = false;        // x was a float array: dx is defined
  bool has_bias = false;
  LstmOptions opt;
  const Real* W = nullptr;         // (I,4H) or (V,4H)
  const Real* U = nullptr;         // (H,4H)
  Buffer<Real> gates;              // (T,B,4H) activated i, f, g, o
  Buffer<Real> c;                  // (T+1,B,H) c_s for s = 0..T (c[0] = c0)
  Buffer<Real> actc;               // (T,B,H) a(c_s)
  Buffer<Real> hprev;              // (T,B,H) h_{s-1} ⊙ rec_mask: the input of the step's GEMM
  Buffer<Real> x;                  // (T,B,I) time-major x, dense path only
  Buffer<int32_t> ids;             // (T,B) ids, lookup path only
  Buffer<uint8_t> mask;            // (T,B) 0/1, empty when no mask
  std::vector<int> first_real;     // (B) first unmasked step s per row (T if none), with mask
  Buffer<Real> rec_mask;           // (B,H) copy, empty when none

  size_t nbytes() const {
    return gates.nbytes() + c.nbytes() + actc.nbytes() + hprev.nbytes() + x.nbytes() + ids.nbytes() +
           mask.nbytes() + rec_mask.nbytes() + first_real.size() * sizeof(int);
  }
};

// Bytes a forward call allocates (outputs, cache or per-call scratch), for the
// MemoryError check made before any allocation.
size_t lstm_forward_bytes(size_t elem, int B, int T, int I, int H, bool training, bool return_sequences,
                          bool dense_x);
size_t lstm_backward_bytes(size_t elem, int B, int T, int I, int H, bool dx);

// Runs the forward; returns the cache when opt.training, else null.
template <class Real>
std::unique_ptr<LstmCache<Real>> lstm_forward(const LstmInputs<Real>& in, const LstmOptions& opt,
                                              const LstmOutputs<Real>& out, int nthreads);

// Gradients of one backward call, allocated by the caller (shapes as in _core.pyi).
template <class Real> struct LstmGrads {
  Real* dx = nullptr;   // (B,T,I) or null (not wanted / lookup path with ids)
  Real* dh0 = nullptr;  // (B,H)
  Real* dc0 = nullptr;  // (B,H)
  Real* dW = nullptr;   // (I,4H) or (V,4H)
  Real* dU = nullptr;   // (H,4H)
  Real* db = nullptr;   // (4H) or null
  // Add dW, dU, db to what the buffers hold instead of overwriting it (a layer
  // whose weights already have a gradient from another call in the same step).
  bool add_dW = false, add_dU = false, add_db = false;
};

// BPTT through the forward that made `cache`; dy ((B,T,H) or (B,H)), dhT, dcT may be null.
// Reads the cache only, so it may run again (or concurrently) on the same cache.
template <class Real>
void lstm_backward(const LstmCache<Real>& cache, const Real* dy, const Real* dhT, const Real* dcT,
                   const LstmGrads<Real>& g, int nthreads);

}  // namespace fusedlstm
