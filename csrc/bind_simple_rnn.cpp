// bind_simple_rnn.cpp — simple_rnn_forward, simple_rnn_backward and the
// SimpleRnnCache type. The argument checks and calls are shared with the other
// recurrent cells (bind_recurrent.cpp); this file holds SimpleRNN's signatures.
#include <string>

#include "bind_recurrent.h"

namespace fusedlstm {
namespace {

py::tuple simple_rnn_forward_py(const py::object& x, const py::object& W, const py::object& U, const py::object& b,
                                const py::object& h0, const py::object& mask, const py::object& rec_mask,
                                bool go_backwards, bool zero_output_for_mask, const std::string& activation,
                                bool return_sequences, bool training, const std::string& onehot,
                          const std::string& precision, const py::object& packed_U) {
  RnnForwardArgs a;
  a.x = x, a.W = W, a.U = U, a.b = b, a.h0 = h0, a.c0 = py::none(), a.mask = mask, a.rec_mask = rec_mask;
  a.go_backwards = go_backwards, a.zero_output_for_mask = zero_output_for_mask, a.activation = activation;
  a.return_sequences = return_sequences, a.training = training, a.onehot = onehot;
  a.precision = precision;
  a.packed_U = packed_U;
  return rnn_forward_py(CellKind::simple_rnn, a);
}

py::tuple simple_rnn_backward_py(const py::object& cache, const py::object& dy, const py::object& dhT, bool need_dx,
                                 const py::object& dW_out, const py::object& dU_out, const py::object& db_out,
                                 bool accumulate,
                          const py::object& precision) {
  RnnBackwardArgs a;
  a.cache = cache, a.dy = dy, a.dhT = dhT, a.dcT = py::none(), a.need_dx = need_dx;
  a.dW_out = dW_out, a.dU_out = dU_out, a.db_out = db_out, a.accumulate = accumulate;
  a.precision = precision;
  return rnn_backward_py(CellKind::simple_rnn, a);
}

}  // namespace

void register_simple_rnn(py::module_& m) {
  register_rnn_cache(m, CellKind::simple_rnn);

  m.def("simple_rnn_forward", &simple_rnn_forward_py, py::arg("x"), py::arg("W"), py::arg("U"),
        py::arg("b").none(true), py::arg("h0"), py::kw_only(), py::arg("mask") = py::none(),
        py::arg("rec_mask") = py::none(), py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        py::arg("activation") = "tanh", py::arg("return_sequences") = true, py::arg("training") = false,
        py::arg("onehot") = "auto", py::arg("precision") = "float32", py::arg("packed_U") = py::none(),
        "SimpleRNN over a whole sequence in one call: (y, h_T, cache or None). See _core.pyi.");

  m.def("simple_rnn_backward", &simple_rnn_backward_py, py::arg("cache"), py::arg("dy").none(true),
        py::arg("dhT") = py::none(), py::kw_only(), py::arg("need_dx") = true, py::arg("dW_out") = py::none(),
        py::arg("dU_out") = py::none(), py::arg("db_out") = py::none(), py::arg("accumulate") = false, py::arg("precision") = py::none(),
        "BPTT through the forward that made `cache`: (dx, dh0, dW, dU, db). See _core.pyi.");
}

}  // namespace fusedlstm
