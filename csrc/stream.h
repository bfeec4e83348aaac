// stream.h — one step of a stateful model kept whole in C++: the common plan of a
// sampling model (token ids into an Embedding's kept E·W table, or dense input ->
// stacked LSTM / GRU / SimpleRNN layers -> Dense / TimeDistributed(Dense) heads),
// run as one call per step (fusedlstm.models.Stream feeds it through bind_stream.cpp).
//
// It promises the numbers of the layers' own inference calls, because it makes them:
// every recurrent layer is one rnn_forward (recurrent.h) over the step's T steps with
// the weights, packed U, table and options the layer's predict call passes; a head is
// the same matmul (dense.h) followed by the bias added in its own pass, as NumPy's
// `z += b` does. Only the head's softmax is the kernels' (softmax_rows, as in
// dense_softmax_xent), not NumPy's exp, so a softmax head matches predict_on_batch
// to a few ulp, not bitwise (Stream(model, exact=True) applies NumPy's instead).
//
// It does not own anything: the weights are the layers' arrays (kept alive by the
// binding), the states are the layers' state arrays, updated in place.
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"
#include "precision.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace fusedlstm {

// A head's activation computed here; any other one is applied by the caller.
enum class HeadAct : int { linear = 0, relu = 1, softmax = 2 };

template <class Real> struct StreamRecurrent {
  CellKind cell = CellKind::lstm;
  RnnOptions opt;                              // the layer's (inference: training = false)
  int H = 0, I = 0;                            // I: input features, or V (table rows) for ids
  const Real* W = nullptr;                     // (I,G) kernel, or the (V,G) E·W table for ids
  const Real* U = nullptr;                     // (H,G)
  const Real* b = nullptr;                     // (G) or null
  const Real* b_rec = nullptr;                 // (G) GRU reset_after recurrent bias, or null
  const PackedRecurrent<Real>* U_packed = nullptr;  // the layer's kept packing, or null
};

template <class Real> struct StreamDense {
  int K = 0, N = 0;
  const Real* W = nullptr;  // (K,N)
  const Real* b = nullptr;  // (N) or null
  HeadAct act = HeadAct::linear;
  Precision precision = Precision::float32;
};

template <class Real> struct StreamPlan {
  int B = 0;
  bool ids = false;        // token ids (B,T) read through the first layer's table, else dense x (B,T,I)
  bool mask_zero = false;  // id 0 masks its step (Embedding(mask_zero=True))
  // The Embedding's (V,D) matrix when its E·W table is too large to keep: the first
  // layer then reads the gathered rows E[ids] (B,T,D) through its kernel; null otherwise.
  const Real* E = nullptr;
  int D = 0;
  std::vector<StreamRecurrent<Real>> rnns;
  std::vector<StreamDense<Real>> heads;
};

// One call's input, checked by the binding: ids in [0, V) (int32 or int64), or finite x.
template <class Real> struct StreamInput {
  int T = 0;
  const int32_t* ids32 = nullptr;  // (B,T)
  const int64_t* ids64 = nullptr;  // (B,T)
  const Real* x = nullptr;         // (B,T,I)
};

// Scratch kept between steps (grown, never shrunk).
template <class Real> struct StreamScratch {
  Buffer<Real> prev;  // (2,B,H) the states before the step (the layers' arrays are overwritten)
  Buffer<Real> y[2];  // ping-pong layer outputs
  Buffer<uint8_t> mask;
  Buffer<Real> rows;  // (B,T,D) gathered Embedding rows
};

// Runs the plan over the input's T steps. h[l], c[l] (c: LSTM only) are layer l's
// (B,H) state arrays, read and overwritten with the final states; out receives the
// last layer's (or head's) output, (B,T,N) or (B,N).
template <class Real>
void stream_step(const StreamPlan<Real>& plan, const StreamInput<Real>& in, Real* const* h, Real* const* c,
                 Real* out, StreamScratch<Real>& scratch, int nthreads);

}  // namespace fusedlstm
