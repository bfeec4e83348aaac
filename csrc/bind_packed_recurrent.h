// bind_packed_recurrent.h — the recurrent weight U packed once and handed to many
// forward calls (the inference path's weights packed once per model): the Python
// type PackedRecurrentKernel, made by _core.pack_recurrent_kernel, and the check
// that one given to lstm_/gru_/simple_rnn_forward fits the call.
#pragma once
#include <memory>
#include <string>

#include "bind_util.h"
#include "recurrent.h"
#include "recurrent_step.h"

namespace fusedlstm {

struct PyPackedRecurrent {
  CellKind cell = CellKind::lstm;
  bool reset_after = true;  // GRU: the segments of U its products use
  int H = 0;
  std::string precision = "float32";  // what it was packed for, with batch (the level choice)
  int batch = 1;
  FType ft = FType::f32;
  std::unique_ptr<PackedRecurrent<float>> f32;
  std::unique_ptr<PackedRecurrent<double>> f64;
  size_t nbytes = 0;
};

// A cell's name ('lstm', 'gru', 'simple_rnn') as its kind; ValueError naming fn otherwise.
CellKind parse_cell(const char* fn, const std::string& s);

// The packing given as `packed_U` to a forward of `cell` with options `opt`, units H
// and float type Real: null for None; a TypeError/ValueError naming what differs
// otherwise. The packing is not compared with U: whoever keeps it keeps it current.
template <class Real>
const PackedRecurrent<Real>* packed_for(const char* fn, const py::object& o, CellKind cell, const RnnOptions& opt,
                                        int H);

void register_packed_recurrent(py::module_& m);

}  // namespace fusedlstm
