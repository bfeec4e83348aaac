// bind_recurrent.h — what the recurrent layers' bindings share (bind_recurrent.cpp):
// argument checks, the calls into recurrent.h and the Python cache types.
// bind_lstm.cpp, bind_gru.cpp and bind_simple_rnn.cpp each define their
// function signatures and defaults and forward here.
#pragma once
#include <string>
#include <string_view>

#include "bind_util.h"
#include "recurrent.h"

namespace fusedlstm {

// The Python arguments of <cell>_forward, as given (checked by rnn_forward_py).
struct RnnForwardArgs {
  py::object x, W, U, b, h0, c0, mask, rec_mask;  // c0: LSTM only (None otherwise)
  py::object packed_U = py::none();                // a PackedRecurrentKernel of U, or None
  bool go_backwards = false, zero_output_for_mask = false, return_sequences = true, training = false;
  bool reset_after = true;                         // GRU only
  // Views of the caller's strings, which outlive the call.
  std::string_view activation = "tanh", recurrent_activation = "sigmoid", onehot = "auto";
  std::string_view precision = "float32";         // of the GEMMs: "float32" or "bfloat16"
};

// The Python arguments of <cell>_backward.
struct RnnBackwardArgs {
  py::object cache, dy, dhT, dcT, dW_out, dU_out, db_out;  // dcT: LSTM only
  bool need_dx = true, accumulate = false;
  py::object precision;  // None: the forward's (kept in the cache); else "float32" or "bfloat16"
};

// LSTM: (y, hT, cT, cache or None); GRU, SimpleRNN: (y, hT, cache or None).
py::tuple rnn_forward_py(CellKind cell, const RnnForwardArgs& a);
// LSTM: (dx, dh0, dc0, dW, dU, db); GRU, SimpleRNN: (dx, dh0, dW, dU, db).
py::tuple rnn_backward_py(CellKind cell, const RnnBackwardArgs& a);

// A kernel activation name (activation=, recurrent_activation=), or ValueError naming `arg`.
Act parse_act(const char* fn, const char* arg, std::string_view s);

// Registers the cell's opaque cache type (LstmCache, GruCache, SimpleRnnCache).
void register_rnn_cache(py::module_& m, CellKind cell);

}  // namespace fusedlstm
