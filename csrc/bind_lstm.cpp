// bind_lstm.cpp — lstm_forward, lstm_backward, onehot_ids and the LstmCache type.
//
// Order of work in each call: check every argument (dtype, rank, shape) and the
// memory the call will need, convert to C order, allocate the outputs as NumPy
// arrays, then release the GIL for the kernels.
#include <climits>
#include <memory>
#include <string>

#include "bind_util.h"
#include "lstm.h"
#include "onehot.h"

namespace fusedlstm {
namespace {

constexpr const char* kFwd = "lstm_forward";
constexpr const char* kBwd = "lstm_backward";

// The Python-visible cache: the C++ cache plus the arrays its W/U pointers
// point into (the forward's own C-order arrays), kept alive with it.
struct PyLstmCache {
  std::unique_ptr<LstmCache<float>> f32;
  std::unique_ptr<LstmCache<double>> f64;
  py::object keep_W, keep_U;
  int B = 0, T = 0, H = 0;
  size_t nbytes = 0;
};

Act parse_act(const char* arg, const std::string& s) {
  static const std::pair<const char*, Act> names[] = {
      {"tanh", Act::tanh}, {"sigmoid", Act::sigmoid}, {"hard_sigmoid", Act::hard_sigmoid},
      {"hard_sigmoid_k2", Act::hard_sigmoid_k2}, {"relu", Act::relu}, {"linear", Act::linear}};
  for (const auto& n : names)
    if (s == n.first) return n.second;
  throw std::invalid_argument(str(kFwd, ": ", arg, " must be one of 'tanh', 'sigmoid', 'hard_sigmoid', ",
                                  "'hard_sigmoid_k2', 'relu', 'linear', got '", s, "'"));
}

// Everything lstm_forward checked, before dispatching on the float type.
struct FwdArgs {
  py::array x, W, U, b, h0, c0, rec_mask;
  std::vector<uint8_t> mask;
  bool ids = false;
  int B = 0, T = 0, I = 0, H = 0;
  LstmOptions opt;
};

template <class Real> py::tuple forward_impl(const FwdArgs& a) {
  const int B = a.B, T = a.T, H = a.H, I = a.I;
  const int nt = num_threads();
  check_memory(kFwd, lstm_forward_bytes(sizeof(Real), B, T, I, H, a.opt.training, a.opt.return_sequences, !a.ids));

  CArray<Real> xf = null_array<CArray<Real>>(), W = as_c<Real>(a.W), U = as_c<Real>(a.U);
  CArray<Real> h0 = as_c<Real>(a.h0), c0 = as_c<Real>(a.c0);
  CArray<Real> b = opt_c<Real>(a.b), rm = opt_c<Real>(a.rec_mask);
  py::array ids;
  LstmInputs<Real> in;
  in.B = B, in.T = T, in.H = H, in.I = I;
  if (a.ids) {
    // int32 and int64 are read as they are; other integer widths become int64.
    if (a.x.dtype().kind() == 'i' && a.x.itemsize() == 4) {
      ids = CArray<int32_t>(a.x);  // raises if the copy fails (see as_c)
      in.ids32 = static_cast<const int32_t*>(ids.data());
    } else {
      if (a.x.dtype().kind() == 'u' && a.x.itemsize() == 8) {
        // uint64 ids above 2^63-1 wrap to negative int64, and 2^64-1 to the valid
        // id -1 (an all-zero input): refuse them while the unsigned value is known.
        CArray<uint64_t> u(a.x);
        const uint64_t* p = u.data();
        for (size_t i = 0, n = size_t(B) * size_t(T); i < n; ++i)
          if (p[i] > uint64_t(INT64_MAX))
            throw std::invalid_argument(str(kFwd, ": x[", i / size_t(T), ", ", i % size_t(T), "] = ", p[i],
                                            " is not a token id of W with V = ", I, " rows (ids must be in [-1, ",
                                            I, "))"));
      }
      ids = CArray<int64_t>(a.x);  // raises if the copy fails (see as_c)
      in.ids64 = static_cast<const int64_t*>(ids.data());
    }
  } else {
    xf = as_c<Real>(a.x);
    in.x = xf.data();
  }
  in.W = W.data(), in.U = U.data(), in.b = ptr_or_null(b), in.h0 = h0.data(), in.c0 = c0.data();
  in.mask = a.mask.empty() ? nullptr : a.mask.data();
  in.rec_mask = ptr_or_null(rm);

  py::array_t<Real> y = a.opt.return_sequences ? py::array_t<Real>({B, T, H}) : py::array_t<Real>({B, H});
  py::array_t<Real> hT({B, H}), cT({B, H});
  LstmOutputs<Real> out{y.mutable_data(), hT.mutable_data(), cT.mutable_data()};

  std::unique_ptr<LstmCache<Real>> cache;
  {
    // Safe without the GIL: the kernels touch only the buffers above, which this
    // frame keeps alive, and C++-owned memory; no Python object is used.
    py::gil_scoped_release nogil;
    cache = lstm_forward(in, a.opt, out, nt);
  }
  py::object pycache = py::none();
  if (cache) {
    auto pc = std::make_unique<PyLstmCache>();
    pc->B = B, pc->T = T, pc->H = H, pc->nbytes = cache->nbytes();
    pc->keep_W = W, pc->keep_U = U;
    if constexpr (sizeof(Real) == 4)
      pc->f32 = std::move(cache);
    else
      pc->f64 = std::move(cache);
    pycache = py::cast(std::move(pc));
  }
  return py::make_tuple(y, hT, cT, pycache);
}

py::tuple lstm_forward_py(const py::object& x_obj, const py::object& W_obj, const py::object& U_obj,
                          const py::object& b_obj, const py::object& h0_obj, const py::object& c0_obj,
                          const py::object& mask_obj,
                          const py::object& rec_obj, bool go_backwards, bool zero_output_for_mask,
                          const std::string& activation, const std::string& recurrent_activation,
                          bool return_sequences, bool training, const std::string& onehot) {
  const py::array x = req_array(kFwd, "x", x_obj), W = req_array(kFwd, "W", W_obj), U = req_array(kFwd, "U", U_obj),
                  h0 = req_array(kFwd, "h0", h0_obj), c0 = req_array(kFwd, "c0", c0_obj);
  FwdArgs a;
  a.x = x, a.W = W, a.U = U, a.h0 = h0, a.c0 = c0;
  a.b = opt_array(kFwd, "b", b_obj);
  a.rec_mask = opt_array(kFwd, "rec_mask", rec_obj);
  py::array mask = opt_array(kFwd, "mask", mask_obj);
  a.opt.act = parse_act("activation", activation);
  a.opt.rec_act = parse_act("recurrent_activation", recurrent_activation);
  FUSEDLSTM_CHECK(onehot == "auto" || onehot == "never", kFwd, ": onehot must be 'auto' or 'never', got '", onehot,
                  "'");
  a.opt.onehot_auto = onehot == "auto";
  a.opt.go_backwards = go_backwards, a.opt.zero_output_for_mask = zero_output_for_mask;
  a.opt.return_sequences = return_sequences, a.opt.training = training;

  // dtypes: float x sets the call's float type; int x means token ids and W sets it.
  FType ft;
  const char* ref;
  if (is_float(x)) {
    ft = float_type(kFwd, "x", x), ref = "x";
  } else if (is_int(x)) {
    a.ids = true;
    ft = float_type(kFwd, "W", W), ref = "W";
  } else {
    throw TypeError(str(kFwd, ": x must be float32/float64 (B, T, I) or an integer array of token ids (B, T), got ",
                        dtype_name(x)));
  }
  check_ftype(kFwd, "W", W, ft, ref);
  check_ftype(kFwd, "U", U, ft, ref);
  if (given(a.b)) check_ftype(kFwd, "b", a.b, ft, ref);
  check_ftype(kFwd, "h0", h0, ft, ref);
  check_ftype(kFwd, "c0", c0, ft, ref);
  if (given(a.rec_mask)) check_ftype(kFwd, "rec_mask", a.rec_mask, ft, ref);

  // shapes: B, T from x; H from U; I (or V) from x (or W)
  if (a.ids)
    check_ndim(kFwd, "x", x, 2, "(B, T) of token ids");
  else
    check_ndim(kFwd, "x", x, 3, "(B, T, I)");
  check_ndim(kFwd, "U", U, 2, "(H, 4H)");
  const py::ssize_t B = x.shape(0), T = x.shape(1), H = U.shape(0);
  check_positive(kFwd, "B (batch size)", B, "x.shape[0]");
  check_positive(kFwd, "T (time steps)", T, "x.shape[1]");
  check_positive(kFwd, "H (units)", H, "U.shape[0]");
  // before any 4*H below can overflow: the kernels need 4H < 2^31 anyway
  FUSEDLSTM_CHECK(H <= INT_MAX / 4, kFwd, ": H = ", H, " exceeds the kernels' limit (4H must be below 2^31)");
  check_shape(kFwd, "U", U, {{"H", H}, {"4H", 4 * H}});
  py::ssize_t I;
  if (a.ids) {
    check_ndim(kFwd, "W", W, 2, "(V, 4H) lookup table for token ids");
    I = W.shape(0);
    check_positive(kFwd, "V (rows of the lookup table W)", I, "W.shape[0]");
    check_shape(kFwd, "W", W, {{"V", I}, {"4H", 4 * H}});
  } else {
    I = x.shape(2);
    check_positive(kFwd, "I (input features)", I, "x.shape[2]");
    check_shape(kFwd, "W", W, {{"I", I}, {"4H", 4 * H}});
  }
  if (given(a.b)) check_shape(kFwd, "b", a.b, {{"4H", 4 * H}});
  check_shape(kFwd, "h0", h0, {{"B", B}, {"H", H}});
  check_shape(kFwd, "c0", c0, {{"B", B}, {"H", H}});
  if (given(mask)) {
    check_shape(kFwd, "mask", mask, {{"B", B}, {"T", T}});
    a.mask = mask_bytes(kFwd, "mask", mask);
  }
  if (given(a.rec_mask)) check_shape(kFwd, "rec_mask", a.rec_mask, {{"B", B}, {"H", H}});

  // The kernels take int sizes: T·B rows, 4H columns, I (or V) rows of W.
  a.B = as_int(kFwd, "B", size_t(B)), a.T = as_int(kFwd, "T", size_t(T));
  a.H = int(H), a.I = as_int(kFwd, "I", size_t(I));
  as_int(kFwd, "T*B", mul_size(size_t(T), size_t(B)));
  as_int(kFwd, "B*4H", mul_size(size_t(B), size_t(4 * H)));

  return ft == FType::f32 ? forward_impl<float>(a) : forward_impl<double>(a);
}

// The optional in-place outputs of lstm_backward for dW, dU, db.
struct GradOuts {
  py::object dW, dU, db;
  bool accumulate = false;
};

// An out= array for a weight gradient: an ndarray of the cache's dtype and the
// gradient's exact shape, updated in place; or null when not given.
template <class Real>
Real* grad_out(const char* name, const py::object& o, std::initializer_list<Dim> dims, py::array& keep) {
  if (o.is_none()) return nullptr;
  keep = inplace_array(kBwd, name, o);
  check_ftype(kBwd, name, keep, ftype_of<Real>(), "the forward that made the cache");
  check_shape(kBwd, name, keep, dims);
  return inplace<Real>(kBwd, name, keep);
}

template <class Real>
py::tuple backward_impl(const LstmCache<Real>& C, const py::object& dy_obj,
                        const py::object& dhT_obj, const py::object& dcT_obj, bool need_dx, const GradOuts& outs) {
  constexpr FType ft = ftype_of<Real>();
  const int B = C.B, T = C.T, H = C.H, I = C.I, G = 4 * H;
  py::array dy = opt_array(kBwd, "dy", dy_obj), dhT = opt_array(kBwd, "dhT", dhT_obj),
            dcT = opt_array(kBwd, "dcT", dcT_obj);
  const char* ref = "the forward that made the cache";
  if (given(dy)) {
    check_ftype(kBwd, "dy", dy, ft, ref);
    if (C.opt.return_sequences)
      check_shape(kBwd, "dy", dy, {{"B", B}, {"T", T}, {"H", H}});
    else
      check_shape(kBwd, "dy", dy, {{"B", B}, {"H", H}});
  }
  if (given(dhT)) check_ftype(kBwd, "dhT", dhT, ft, ref), check_shape(kBwd, "dhT", dhT, {{"B", B}, {"H", H}});
  if (given(dcT)) check_ftype(kBwd, "dcT", dcT, ft, ref), check_shape(kBwd, "dcT", dcT, {{"B", B}, {"H", H}});
  const bool want_dx = need_dx && C.dense_input;
  check_memory(kBwd, lstm_backward_bytes(sizeof(Real), B, T, I, H, want_dx));

  LstmGrads<Real> g;
  py::array dW = null_array(), dU = null_array(), db = null_array();
  g.dW = grad_out<Real>("dW_out", outs.dW, {{C.lookup && !C.dense_input ? "V" : "I", I}, {"4H", G}}, dW);
  g.dU = grad_out<Real>("dU_out", outs.dU, {{"H", H}, {"4H", G}}, dU);
  FUSEDLSTM_CHECK(C.has_bias || outs.db.is_none(), kBwd,
                  ": db_out was given but the forward had no bias (b=None), so there is no db");
  if (C.has_bias) g.db = grad_out<Real>("db_out", outs.db, {{"4H", G}}, db);
  // Two outputs in one buffer would each overwrite the other's sums.
  const Real* given_outs[] = {g.dW, g.dU, g.db};
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j)
      FUSEDLSTM_CHECK(!given_outs[i] || given_outs[i] != given_outs[j], kBwd,
                      ": dW_out, dU_out and db_out must be different arrays");
  g.add_dW = outs.accumulate && g.dW, g.add_dU = outs.accumulate && g.dU, g.add_db = outs.accumulate && g.db;
  if (!g.dW) dW = py::array_t<Real>({I, G}), g.dW = static_cast<Real*>(dW.mutable_data());
  if (!g.dU) dU = py::array_t<Real>({H, G}), g.dU = static_cast<Real*>(dU.mutable_data());
  if (C.has_bias && !g.db) db = py::array_t<Real>(G), g.db = static_cast<Real*>(db.mutable_data());

  CArray<Real> dyc = opt_c<Real>(dy), dhc = opt_c<Real>(dhT),
               dcc = opt_c<Real>(dcT);
  py::object dx = py::none();
  py::array_t<Real> dh0({B, H}), dc0({B, H});
  if (want_dx) {
    py::array_t<Real> a({B, T, I});
    g.dx = a.mutable_data();
    dx = a;
  }
  g.dh0 = dh0.mutable_data(), g.dc0 = dc0.mutable_data();
  const int nt = num_threads();
  {
    // Safe without the GIL: the cache is only read (the caller's reference keeps
    // it alive) and the outputs were allocated above; no Python object is used.
    py::gil_scoped_release nogil;
    lstm_backward(C, ptr_or_null(dyc), ptr_or_null(dhc), ptr_or_null(dcc), g, nt);
  }
  return py::make_tuple(dx, dh0, dc0, dW, dU, given(db) ? py::object(db) : py::none());
}

py::tuple lstm_backward_py(const py::object& cache, const py::object& dy, const py::object& dhT, const py::object& dcT,
                           bool need_dx, const py::object& dW_out, const py::object& dU_out, const py::object& db_out,
                           bool accumulate) {
  const GradOuts outs{dW_out, dU_out, db_out, accumulate};
  if (!py::isinstance<PyLstmCache>(cache))
    throw TypeError(str(kBwd, ": cache must be the LstmCache of a training=True lstm_forward, got ",
                        type_name(cache)));
  const PyLstmCache& pc = cache.cast<const PyLstmCache&>();
  if (pc.f32) return backward_impl<float>(*pc.f32, dy, dhT, dcT, need_dx, outs);
  return backward_impl<double>(*pc.f64, dy, dhT, dcT, need_dx, outs);
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
  py::class_<PyLstmCache>(m, "LstmCache",
                          "Opaque: what lstm_backward needs from one training-mode lstm_forward.")
      .def_readonly("B", &PyLstmCache::B)
      .def_readonly("T", &PyLstmCache::T)
      .def_readonly("H", &PyLstmCache::H)
      .def_readonly("nbytes", &PyLstmCache::nbytes)
      .def("__repr__", [](const PyLstmCache& c) {
        return str("<LstmCache ", c.f32 ? "float32" : "float64", " B=", c.B, " T=", c.T, " H=", c.H,
                   " nbytes=", c.nbytes, ">");
      });

  m.def("onehot_ids", &onehot_ids_py, py::arg("x"),
        "Int32 ids (B,T) if every row of the (B,T,V) float x is all zeros or a single exact 1.0, else None.");

  m.def("lstm_forward", &lstm_forward_py, py::arg("x"), py::arg("W"), py::arg("U"), py::arg("b").none(true),
        py::arg("h0"), py::arg("c0"), py::kw_only(), py::arg("mask") = py::none(), py::arg("rec_mask") = py::none(),
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false, py::arg("activation") = "tanh",
        py::arg("recurrent_activation") = "sigmoid", py::arg("return_sequences") = true,
        py::arg("training") = false, py::arg("onehot") = "auto",
        "LSTM over a whole sequence in one call: (y, h_T, c_T, cache or None). See _core.pyi.");

  m.def("lstm_backward", &lstm_backward_py, py::arg("cache"), py::arg("dy").none(true),
        py::arg("dhT") = py::none(), py::arg("dcT") = py::none(), py::kw_only(), py::arg("need_dx") = true,
        py::arg("dW_out") = py::none(), py::arg("dU_out") = py::none(), py::arg("db_out") = py::none(),
        py::arg("accumulate") = false,
        "BPTT through the forward that made `cache`: (dx, dh0, dc0, dW, dU, db). See _core.pyi.");
}

}  // namespace fusedlstm
