// bind_conv1d.cpp — conv1d_forward and conv1d_backward (channels_last, Keras 3 semantics).
//
// Order of work in each call: check every argument (dtype, rank, shape, options)
// and the memory the call will need, convert to C order, allocate the outputs as
// NumPy arrays, then release the GIL for the kernels.
#include <climits>
#include <string>

#include "bind_util.h"
#include "conv1d.h"

namespace fusedlstm {
namespace {

constexpr const char* kFwd = "conv1d_forward";
constexpr const char* kBwd = "conv1d_backward";

// The options both calls take, as given.
struct ConvOptions {
  long long strides = 1, dilation_rate = 1, groups = 1;
  std::string padding = "valid";
};

Conv1dPadding parse_padding(const char* fn, const std::string& p) {
  if (p == "valid") return Conv1dPadding::valid;
  if (p == "same") return Conv1dPadding::same;
  if (p == "causal") return Conv1dPadding::causal;
  throw std::invalid_argument(str(fn, ": padding must be 'valid', 'same' or 'causal', got '", p, "'"));
}

void check_option(const char* fn, const char* name, long long v) {
  FUSEDLSTM_CHECK(v >= 1 && v <= INT_MAX, fn, ": ", name, " must be a positive integer below 2^31, got ", v);
}

// x (B, L, C) and W (K, C/groups, F): dtypes, ranks, the group split; returns the shape.
Conv1dShape check_conv(const char* fn, const py::array& x, const py::array& W, FType ft, const ConvOptions& o) {
  check_ftype(fn, "W", W, ft, "x");
  check_ndim(fn, "x", x, 3, "(B, L, C) channels_last");
  check_ndim(fn, "W", W, 3, "(kernel_size, C/groups, filters)");
  check_option(fn, "strides", o.strides);
  check_option(fn, "dilation_rate", o.dilation_rate);
  check_option(fn, "groups", o.groups);
  const Conv1dPadding pad = parse_padding(fn, o.padding);
  const py::ssize_t B = x.shape(0), L = x.shape(1), C = x.shape(2), K = W.shape(0), F = W.shape(2);
  check_positive(fn, "B (batch size)", B, "x.shape[0]");
  check_positive(fn, "L (steps)", L, "x.shape[1]");
  check_positive(fn, "C (input channels)", C, "x.shape[2]");
  check_positive(fn, "kernel_size", K, "W.shape[0]");
  check_positive(fn, "filters", F, "W.shape[2]");
  FUSEDLSTM_CHECK(C % o.groups == 0, fn, ": x has C = ", C, " channels, which groups = ", o.groups,
                  " does not divide (each group convolves C/groups of them)");
  FUSEDLSTM_CHECK(F % o.groups == 0, fn, ": W has ", F, " filters, which groups = ", o.groups,
                  " does not divide (each group has filters/groups of them)");
  check_shape(fn, "W", W, {{"kernel_size", K}, {"C/groups", C / o.groups}, {"filters", F}});
  for (const auto& d : {std::make_pair("B", B), std::make_pair("L", L), std::make_pair("C", C),
                        std::make_pair("kernel_size", K), std::make_pair("filters", F)})
    as_int(fn, d.first, size_t(d.second));
  return conv1d_shape(fn, B, L, C, F, K, o.strides, o.dilation_rate, o.groups, pad);
}

template <class Real> py::array forward_impl(const Conv1dShape& s, const py::array& x, const py::array& W,
                                             const py::array& b) {
  check_memory(kFwd, conv1d_forward_bytes(s, sizeof(Real)));
  CArray<Real> xc = as_c<Real>(x), Wc = as_c<Real>(W), bc = opt_c<Real>(b);
  py::array_t<Real> y({s.B, s.L_out, s.F});
  Real* yp = y.mutable_data();
  const int nt = num_threads();
  {
    // Safe without the GIL: reads the C-order copies and writes y, all kept alive by this frame.
    py::gil_scoped_release nogil;
    conv1d_forward(s, xc.data(), Wc.data(), ptr_or_null(bc), yp, nt);
  }
  return y;
}

py::array conv1d_forward_py(const py::object& x_obj, const py::object& W_obj, const py::object& b_obj,
                            long long strides, const std::string& padding, long long dilation_rate, long long groups) {
  const py::array x = req_array(kFwd, "x", x_obj), W = req_array(kFwd, "W", W_obj);
  const py::array b = opt_array(kFwd, "b", b_obj);
  const FType ft = float_type(kFwd, "x", x);
  const Conv1dShape s = check_conv(kFwd, x, W, ft, ConvOptions{strides, dilation_rate, groups, padding});
  if (given(b)) check_ftype(kFwd, "b", b, ft, "x"), check_shape(kFwd, "b", b, {{"filters", s.F}});
  return ft == FType::f32 ? forward_impl<float>(s, x, W, b) : forward_impl<double>(s, x, W, b);
}

// An out= array for a weight gradient (see bind_recurrent.cpp's grad_out).
template <class Real>
Real* grad_out(const char* name, const py::object& o, std::initializer_list<Dim> dims, py::array& keep) {
  if (o.is_none()) return nullptr;
  keep = inplace_array(kBwd, name, o);
  check_ftype(kBwd, name, keep, ftype_of<Real>(), "x");
  check_shape(kBwd, name, keep, dims);
  return inplace<Real>(kBwd, name, keep);
}

template <class Real>
py::tuple backward_impl(const Conv1dShape& s, const py::array& dy, const py::array& x, const py::array& W,
                        bool use_bias, bool need_dx, const py::object& dW_out, const py::object& db_out,
                        bool accumulate) {
  check_memory(kBwd, conv1d_backward_bytes(s, sizeof(Real), need_dx));
  Conv1dGrads<Real> g;
  py::array dW = null_array(), db = null_array();
  g.dW = grad_out<Real>("dW_out", dW_out, {{"kernel_size", s.K}, {"C/groups", s.Cg()}, {"filters", s.F}}, dW);
  FUSEDLSTM_CHECK(use_bias || db_out.is_none(), kBwd, ": db_out was given but use_bias=False, so there is no db");
  if (use_bias) g.db = grad_out<Real>("db_out", db_out, {{"filters", s.F}}, db);
  FUSEDLSTM_CHECK(!g.dW || g.dW != g.db, kBwd, ": dW_out and db_out must be different arrays");
  g.add_dW = accumulate && g.dW, g.add_db = accumulate && g.db;
  if (!g.dW) dW = py::array_t<Real>({s.K, s.Cg(), s.F}), g.dW = static_cast<Real*>(dW.mutable_data());
  if (use_bias && !g.db) db = py::array_t<Real>(s.F), g.db = static_cast<Real*>(db.mutable_data());

  CArray<Real> dyc = as_c<Real>(dy), xc = as_c<Real>(x), Wc = as_c<Real>(W);
  py::object dx = py::none();
  if (need_dx) {
    py::array_t<Real> a({s.B, s.L, s.C});
    g.dx = a.mutable_data();
    dx = a;
  }
  const int nt = num_threads();
  {
    // Safe without the GIL: reads the C-order copies, writes the outputs above; no Python object is used.
    py::gil_scoped_release nogil;
    conv1d_backward(s, xc.data(), Wc.data(), dyc.data(), g, nt);
  }
  return py::make_tuple(dx, dW, given(db) ? py::object(db) : py::none());
}

py::tuple conv1d_backward_py(const py::object& dy_obj, const py::object& x_obj, const py::object& W_obj,
                             bool use_bias, long long strides, const std::string& padding, long long dilation_rate,
                             long long groups, bool need_dx, const py::object& dW_out, const py::object& db_out,
                             bool accumulate) {
  const py::array dy = req_array(kBwd, "dy", dy_obj), x = req_array(kBwd, "x", x_obj),
                  W = req_array(kBwd, "W", W_obj);
  const FType ft = float_type(kBwd, "x", x);
  const Conv1dShape s = check_conv(kBwd, x, W, ft, ConvOptions{strides, dilation_rate, groups, padding});
  check_ftype(kBwd, "dy", dy, ft, "x");
  check_shape(kBwd, "dy", dy, {{"B", s.B}, {"L_out", s.L_out}, {"filters", s.F}});
  return ft == FType::f32 ? backward_impl<float>(s, dy, x, W, use_bias, need_dx, dW_out, db_out, accumulate)
                          : backward_impl<double>(s, dy, x, W, use_bias, need_dx, dW_out, db_out, accumulate);
}

}  // namespace

void register_conv1d(py::module_& m) {
  m.def("conv1d_forward", &conv1d_forward_py, py::arg("x"), py::arg("W"), py::arg("b").none(true), py::kw_only(),
        py::arg("strides") = 1, py::arg("padding") = "valid", py::arg("dilation_rate") = 1, py::arg("groups") = 1,
        "Conv1D (channels_last): y (B, L_out, filters). See _core.pyi.");
  m.def("conv1d_backward", &conv1d_backward_py, py::arg("dy"), py::arg("x"), py::arg("W"), py::kw_only(),
        py::arg("use_bias") = true, py::arg("strides") = 1, py::arg("padding") = "valid", py::arg("dilation_rate") = 1,
        py::arg("groups") = 1, py::arg("need_dx") = true, py::arg("dW_out") = py::none(),
        py::arg("db_out") = py::none(), py::arg("accumulate") = false,
        "Gradients of Conv1D: (dx, dW, db). See _core.pyi.");
}

}  // namespace fusedlstm
