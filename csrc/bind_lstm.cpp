// bind_lstm.cpp — lstm_forward, lstm_backward, onehot_ids and the LstmCache type.
// The argument checks and calls are shared with the other recurrent cells
// (bind_recurrent.cpp); this file holds the LSTM's signatures and defaults.
#include <memory>
#include <string>

#include "bind_recurrent.h"
#include "onehot.h"

namespace fusedlstm {
namespace {

py::tuple lstm_forward_py(const py::object& x, const py::object& W, const py::object& U, const py::object& b,
                          const py::object& h0, const py::object& c0, const py::object& mask,
                          const py::object& rec_mask, bool go_backwards, bool zero_output_for_mask,
                          const std::string& activation, const std::string& recurrent_activation,
                          bool return_sequences, bool training, const std::string& onehot,
                          const std::string& precision, const py::object& packed_U) {
  RnnForwardArgs a;
  a.x = x, a.W = W, a.U = U, a.b = b, a.h0 = h0, a.c0 = c0, a.mask = mask, a.rec_mask = rec_mask;
  a.go_backwards = go_backwards, a.zero_output_for_mask = zero_output_for_mask;
  a.activation = activation, a.recurrent_activation = recurrent_activation;
  a.return_sequences = return_sequences, a.training = training, a.onehot = onehot;
  a.precision = precision;
  a.packed_U = packed_U;
  return rnn_forward_py(CellKind::lstm, a);
}

py::tuple lstm_backward_py(const py::object& cache, const py::object& dy, const py::object& dhT, const py::object& dcT,
                           bool need_dx, const py::object& dW_out, const py::object& dU_out, const py::object& db_out,
                           bool accumulate,
                          const py::object& precision) {
  RnnBackwardArgs a;
  a.cache = cache, a.dy = dy, a.dhT = dhT, a.dcT = dcT, a.need_dx = need_dx;
  a.dW_out = dW_out, a.dU_out = dU_out, a.db_out = db_out, a.accumulate = accumulate;
  a.precision = precision;
  return rnn_backward_py(CellKind::lstm, a);
}

template <class Real> py::object onehot_impl(const py::array& x) {
  CArray<Real> xc = as_c<Real>(x);
  const py::ssize_t B = x.shape(0), T = x.shape(1), V = x.shape(2);
  const int v = as_int("onehot_ids", "V", size_t(V));
  py::array_t<int32_t> ids({B, T});
  bool ok;
  {
    // Safe without the GIL: reads xc and writes ids, both owned by this frame.
    py::gil_scoped_release nogil;
    ok = onehot_ids(xc.data(), size_t(B) * size_t(T), v, ids.mutable_data());
  }
  return ok ? py::object(ids) : py::object(py::none());
}

py::object onehot_ids_py(const py::object& x_obj) {
  const py::array x = req_array("onehot_ids", "x", x_obj);
  const FType ft = float_type("onehot_ids", "x", x);
  check_ndim("onehot_ids", "x", x, 3, "(B, T, V)");
  return ft == FType::f32 ? onehot_impl<float>(x) : onehot_impl<double>(x);
}

}  // namespace

void register_lstm(py::module_& m) {
  register_rnn_cache(m, CellKind::lstm);

  m.def("onehot_ids", &onehot_ids_py, py::arg("x"),
        "Int32 ids (B,T) if every row of the (B,T,V) float x is all zeros or a single exact 1.0, else None.");

  m.def("lstm_forward", &lstm_forward_py, py::arg("x"), py::arg("W"), py::arg("U"), py::arg("b").none(true),
        py::arg("h0"), py::arg("c0"), py::kw_only(), py::arg("mask") = py::none(), py::arg("rec_mask") = py::none(),
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false, py::arg("activation") = "tanh",
        py::arg("recurrent_activation") = "sigmoid", py::arg("return_sequences") = true,
        py::arg("training") = false, py::arg("onehot") = "auto", py::arg("precision") = "float32", py::arg("packed_U") = py::none(),
        "LSTM over a whole sequence in one call: (y, h_T, c_T, cache or None). See _core.pyi.");

  m.def("lstm_backward", &lstm_backward_py, py::arg("cache"), py::arg("dy").none(true),
        py::arg("dhT") = py::none(), py::arg("dcT") = py::none(), py::kw_only(), py::arg("need_dx") = true,
        py::arg("dW_out") = py::none(), py::arg("dU_out") = py::none(), py::arg("db_out") = py::none(),
        py::arg("accumulate") = false, py::arg("precision") = py::none(),
        "BPTT through the forward that made `cache`: (dx, dh0, dc0, dW, dU, db). See _core.pyi.");
}

}  // namespace fusedlstm
