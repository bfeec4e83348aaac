// bind_packed_recurrent.cpp — see bind_packed_recurrent.h.
#include "bind_packed_recurrent.h"

#include <climits>
#include <string>

#include <pybind11/stl.h>

namespace fusedlstm {
namespace {

const char* cell_name(CellKind c) { return c == CellKind::lstm ? "lstm" : c == CellKind::gru ? "gru" : "simple_rnn"; }

}  // namespace

CellKind parse_cell(const char* fn, const std::string& s) {
  if (s == "lstm") return CellKind::lstm;
  if (s == "gru") return CellKind::gru;
  if (s == "simple_rnn") return CellKind::simple_rnn;
  throw std::invalid_argument(str(fn, ": cell must be 'lstm', 'gru' or 'simple_rnn', got '", s, "'"));
}

namespace {

template <class Real> void pack(PyPackedRecurrent& p, const py::array& U, const RnnOptions& opt) {
  CArray<Real> Uc = as_c<Real>(U);
  std::unique_ptr<PackedRecurrent<Real>> packed;
  {
    // Safe without the GIL: reads Uc (kept alive by this frame), writes C++-owned memory.
    py::gil_scoped_release nogil;
    packed = pack_recurrent(p.cell, Uc.data(), p.H, opt, p.batch);
  }
  p.nbytes = packed->nbytes();
  if constexpr (sizeof(Real) == 4)
    p.f32 = std::move(packed);
  else
    p.f64 = std::move(packed);
}

std::unique_ptr<PyPackedRecurrent> pack_py(const py::object& U_obj, const std::string& cell, bool reset_after,
                                           const std::string& precision, py::ssize_t batch) {
  const char* fn = "pack_recurrent_kernel";
  auto p = std::make_unique<PyPackedRecurrent>();
  p->cell = parse_cell(fn, cell);
  p->reset_after = p->cell == CellKind::gru && reset_after;
  const py::array U = req_array(fn, "U", U_obj);
  p->ft = float_type(fn, "U", U);
  const int g = gates_per_unit(p->cell);
  check_ndim(fn, "U", U, 2, g == 4 ? "(H, 4H)" : g == 3 ? "(H, 3H)" : "(H, H)");
  const py::ssize_t H = U.shape(0);
  check_positive(fn, "H (units)", H, "U.shape[0]");
  FUSEDLSTM_CHECK(H <= INT_MAX / 4, fn, ": H = ", H, " exceeds the kernels' limit (G must be below 2^31)");
  check_shape(fn, "U", U, {{"H", H}, {g == 4 ? "4H" : g == 3 ? "3H" : "H", g * H}});
  p->H = int(H);
  RnnOptions opt;
  opt.reset_after = p->reset_after;
  opt.precision = parse_precision(fn, precision);
  check_precision_dtype(fn, opt.precision, p->ft);
  check_positive(fn, "batch", batch, "batch");
  FUSEDLSTM_CHECK(batch <= INT_MAX, fn, ": batch = ", batch, " exceeds the kernels' limit (2^31 - 1)");
  p->precision = precision, p->batch = int(batch);
  if (p->ft == FType::f32)
    pack<float>(*p, U, opt);
  else
    pack<double>(*p, U, opt);
  return p;
}

}  // namespace

template <class Real>
const PackedRecurrent<Real>* packed_for(const char* fn, const py::object& o, CellKind cell, const RnnOptions& opt,
                                        int H) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<PyPackedRecurrent>(o))
    throw TypeError(str(fn, ": packed_U must be a PackedRecurrentKernel (from pack_recurrent_kernel) or None, got ",
                        type_name(o)));
  const PyPackedRecurrent& p = o.cast<const PyPackedRecurrent&>();
  FUSEDLSTM_CHECK(p.cell == cell, fn, ": packed_U was packed for cell '", cell_name(p.cell), "', not '",
                  cell_name(cell), "'");
  FUSEDLSTM_CHECK(p.ft == ftype_of<Real>(), fn, ": packed_U is ", ftype_name(p.ft), " but the call is ",
                  ftype_name(ftype_of<Real>()));
  FUSEDLSTM_CHECK(p.H == H, fn, ": packed_U has H = ", p.H, " but U has H = ", H);
  FUSEDLSTM_CHECK(cell != CellKind::gru || p.reset_after == opt.reset_after, fn, ": packed_U was packed with reset_after=",
                  p.reset_after ? "True" : "False", " but the call has reset_after=", opt.reset_after ? "True" : "False");
  if constexpr (sizeof(Real) == 4)
    return p.f32.get();
  else
    return p.f64.get();
}
template const PackedRecurrent<float>* packed_for<float>(const char*, const py::object&, CellKind, const RnnOptions&,
                                                         int);
template const PackedRecurrent<double>* packed_for<double>(const char*, const py::object&, CellKind,
                                                           const RnnOptions&, int);

void register_packed_recurrent(py::module_& m) {
  py::class_<PyPackedRecurrent>(m, "PackedRecurrentKernel",
                                "Opaque: a recurrent kernel U packed once for many forward calls (packed_U=).")
      .def_readonly("H", &PyPackedRecurrent::H)
      .def_readonly("nbytes", &PyPackedRecurrent::nbytes)
      .def_readonly("precision", &PyPackedRecurrent::precision)
      .def_readonly("batch", &PyPackedRecurrent::batch)
      .def_property_readonly("cell", [](const PyPackedRecurrent& p) { return std::string(cell_name(p.cell)); })
      .def_property_readonly("dtype", [](const PyPackedRecurrent& p) { return std::string(ftype_name(p.ft)); })
      .def("__repr__", [](const PyPackedRecurrent& p) {
        return str("<PackedRecurrentKernel ", cell_name(p.cell), " ", ftype_name(p.ft), " H=", p.H,
                   " precision=", p.precision, " batch=", p.batch, " nbytes=", p.nbytes, ">");
      });
  m.def(
      "recurrent_schedule",
      [](const std::string& cell, int B, int T, int H, int threads, bool training, bool rec_mask) {
        FUSEDLSTM_CHECK(B > 0 && T > 0 && H > 0 && threads > 0, "recurrent_schedule: B, T, H and threads must be >= 1, got ",
                        B, ", ", T, ", ", H, ", ", threads);
        RnnOptions opt;
        opt.training = training;
        const RecurrentSchedule r = recurrent_schedule(parse_cell("recurrent_schedule", cell), B, T, H, threads, opt, rec_mask);
        py::dict d;
        d["kind"] = r.kind, d["parts"] = r.parts, d["bounds"] = r.bounds;
        return d;
      },
      py::arg("cell"), py::arg("B"), py::arg("T"), py::arg("H"), py::arg("threads"), py::kw_only(),
      py::arg("training") = false, py::arg("rec_mask") = false,
      "How a float32 forward of this shape shares its time loop among `threads`. See _core.pyi.");
  m.def("pack_recurrent_kernel", &pack_py, py::arg("U"), py::arg("cell"), py::kw_only(),
        py::arg("reset_after") = true, py::arg("precision") = "float32", py::arg("batch") = 1,
        "U (H, gH) packed as the forward packs it, for packed_U= of lstm_/gru_/simple_rnn_forward. See _core.pyi.");
}

}  // namespace fusedlstm
