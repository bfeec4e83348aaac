// bind_dense.cpp — dense_softmax_xent and matmul, each at float32 or bfloat16 precision.
#include <string>

#include "bind_util.h"
#include "dense.h"
#include "precision.h"

namespace fusedlstm {
namespace {

constexpr const char* kXent = "dense_softmax_xent";
constexpr const char* kMatmul = "matmul";

struct XentArgs {
  py::array x, W, b, labels, weights;
  bool sparse = false, from_logits = false, backward = true;
  Precision precision = Precision::float32;
  double eps = 1e-7;
  int N = 0, D = 0, C = 0;
};

template <class Real> py::tuple xent_impl(const XentArgs& a) {
  const int N = a.N, D = a.D, C = a.C;
  check_memory(kXent, dense_softmax_xent_bytes(sizeof(Real), N, D, C, a.backward));
  CArray<Real> x = as_c<Real>(a.x), W = as_c<Real>(a.W);
  CArray<Real> b = opt_c<Real>(a.b);
  CArray<Real> w = opt_c<Real>(a.weights);
  CArray<Real> targets = null_array<CArray<Real>>();
  CArray<int64_t> labels = null_array<CArray<int64_t>>();  // any integer dtype, widened (never narrowed) to int64
  XentInputs<Real> in;
  in.N = N, in.D = D, in.C = C;
  in.x = x.data(), in.W = W.data(), in.b = ptr_or_null(b), in.weights = ptr_or_null(w);
  if (a.sparse) {
    labels = CArray<int64_t>(a.labels);  // raises if the copy fails (see as_c)
    in.labels = labels.data();
  } else {
    targets = as_c<Real>(a.labels);
    in.targets = targets.data();
  }
  in.from_logits = a.from_logits, in.clip_eps = a.eps, in.precision = a.precision;

  py::array_t<Real> probs({N, C});
  XentOutputs<Real> out;
  out.probs = probs.mutable_data();
  py::object dx = py::none(), dW = py::none(), db = py::none();
  if (a.backward) {
    py::array_t<Real> dxa({N, D}), dWa({D, C});
    out.dx = dxa.mutable_data(), out.dW = dWa.mutable_data();
    dx = dxa, dW = dWa;
    if (given(a.b)) {
      py::array_t<Real> dba(C);
      out.db = dba.mutable_data();
      db = dba;
    }
  }
  const int nt = num_threads();
  double loss;
  {
    // Safe without the GIL: only buffers owned by this frame are read and written.
    py::gil_scoped_release nogil;
    loss = dense_softmax_xent(in, out, nt);
  }
  return py::make_tuple(loss, probs, dx, dW, db);
}

py::tuple xent_py(const py::object& x_obj, const py::object& W_obj, const py::object& b_obj,
                  const py::object& labels_obj,
                  const py::object& weights_obj, bool from_logits, double clip_eps, bool backward,
                  const std::string& precision) {
  const py::array x = req_array(kXent, "x", x_obj), W = req_array(kXent, "W", W_obj),
                  labels = req_array(kXent, "labels", labels_obj);
  XentArgs a;
  a.x = x, a.W = W, a.labels = labels, a.from_logits = from_logits, a.backward = backward, a.eps = clip_eps;
  a.b = opt_array(kXent, "b", b_obj);
  a.weights = opt_array(kXent, "weights", weights_obj);
  FUSEDLSTM_CHECK(clip_eps >= 0 && clip_eps < 0.5, kXent, ": clip_eps must be in [0, 0.5), got ", clip_eps);

  a.precision = parse_precision(kXent, precision);
  const FType ft = float_type(kXent, "x", x);
  check_precision_dtype(kXent, a.precision, ft);
  check_ftype(kXent, "W", W, ft, "x");
  if (given(a.b)) check_ftype(kXent, "b", a.b, ft, "x");
  if (given(a.weights)) check_ftype(kXent, "weights", a.weights, ft, "x");
  if (is_int(labels)) {
    a.sparse = true;
  } else if (is_float(labels)) {
    check_ftype(kXent, "labels", labels, ft, "x");
  } else {
    throw TypeError(str(kXent, ": labels must be integer class ids (N,) or float targets (N, C), got ",
                        dtype_name(labels)));
  }

  check_ndim(kXent, "x", x, 2, "(N, D)");
  check_ndim(kXent, "W", W, 2, "(D, C)");
  const py::ssize_t N = x.shape(0), D = x.shape(1), C = W.shape(1);
  check_positive(kXent, "N (rows)", N, "x.shape[0]");
  check_positive(kXent, "D (features)", D, "x.shape[1]");
  check_positive(kXent, "C (classes)", C, "W.shape[1]");
  check_shape(kXent, "W", W, {{"D", D}, {"C", C}});
  if (given(a.b)) check_shape(kXent, "b", a.b, {{"C", C}});
  if (a.sparse)
    check_shape(kXent, "labels", labels, {{"N", N}});
  else
    check_shape(kXent, "labels", labels, {{"N", N}, {"C", C}});
  if (given(a.weights)) check_shape(kXent, "weights", a.weights, {{"N", N}});
  a.N = as_int(kXent, "N", size_t(N)), a.D = as_int(kXent, "D", size_t(D)), a.C = as_int(kXent, "C", size_t(C));
  return ft == FType::f32 ? xent_impl<float>(a) : xent_impl<double>(a);
}

template <class Real>
py::array matmul_impl(const MatmulArgs& m, const py::object& out_obj, bool accumulate, Precision p) {
  py::array out = matmul_out<Real>(kMatmul, m, out_obj, accumulate);
  CArray<Real> ac = as_c<Real>(m.a), bc = as_c<Real>(m.b);
  Real* C = static_cast<Real*>(out.mutable_data());
  const int nt = num_threads();
  {
    // Safe without the GIL: a and b (or their C-order copies) and out are kept
    // alive by this frame; no Python object is used.
    py::gil_scoped_release nogil;
    matmul(m.ta, m.tb, m.M, m.N, m.K, ac.data(), bc.data(), C, accumulate, nt, p);
  }
  return out;
}

py::array matmul_py(const py::object& a_obj, const py::object& b_obj, bool ta, bool tb, const py::object& out,
                    bool accumulate, const std::string& precision) {
  const Precision p = parse_precision(kMatmul, precision);
  const MatmulArgs m = matmul_args(kMatmul, a_obj, b_obj, ta, tb);
  check_precision_dtype(kMatmul, p, m.ft);
  return m.ft == FType::f32 ? matmul_impl<float>(m, out, accumulate, p)
                            : matmul_impl<double>(m, out, accumulate, p);
}

}  // namespace

void register_dense(py::module_& m) {
  m.def("dense_softmax_xent", &xent_py, py::arg("x"), py::arg("W"), py::arg("b").none(true), py::arg("labels"),
        py::arg("weights") = py::none(), py::kw_only(), py::arg("from_logits") = false, py::arg("clip_eps") = 1e-7,
        py::arg("backward") = true, py::arg("precision") = "float32",
        "Dense + softmax + cross-entropy, forward and backward: (loss, probs, dx, dW, db). See _core.pyi.");
  m.def("matmul", &matmul_py, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none(), py::arg("accumulate") = false,
        py::arg("precision") = "float32",
        "op(a)·op(b) with the library's GEMM; writes into out (adding when accumulate) if given. See _core.pyi.");
}

}  // namespace fusedlstm
