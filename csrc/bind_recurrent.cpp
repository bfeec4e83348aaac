// bind_recurrent.cpp — the checks and calls shared by lstm_, gru_ and
// simple_rnn_forward / _backward (see bind_recurrent.h).
//
// Order of work in each call: check every argument (dtype, rank, shape) and the
// memory the call will need, convert to C order, allocate the outputs as NumPy
// arrays, then release the GIL for the kernels.
#include "bind_recurrent.h"

#include "bind_packed_recurrent.h"

#include <climits>
#include <memory>
#include <string>
#include <string_view>

namespace fusedlstm {
namespace {

// What differs between the cells at the Python boundary.
// (Constant strings: a call builds no message unless it raises.)
struct CellNames {
  const char* fwd;     // "lstm_forward"
  const char* bwd;     // "lstm_backward"
  const char* cache;   // Python type name of the cache
  const char* G;       // the gate-column letters: "4H", "3H", "H"
  const char* U;       // U's dimensions: "(H, 4H)"
  const char* table;   // W's dimensions for token ids
  const char* BG;      // the rows times columns of a step: "B*4H"
};

CellNames names_of(CellKind cell) {
  switch (cell) {
    case CellKind::lstm:
      return {"lstm_forward", "lstm_backward", "LstmCache", "4H", "(H, 4H)", "(V, 4H) lookup table for token ids",
              "B*4H"};
    case CellKind::gru:
      return {"gru_forward", "gru_backward", "GruCache", "3H", "(H, 3H)", "(V, 3H) lookup table for token ids",
              "B*3H"};
    case CellKind::simple_rnn:
      return {"simple_rnn_forward", "simple_rnn_backward", "SimpleRnnCache", "H", "(H, H)",
              "(V, H) lookup table for token ids", "B*H"};
  }
  throw std::invalid_argument("unknown cell");
}

// The Python-visible cache: the C++ cache plus the arrays its W/U pointers
// point into (the forward's own C-order arrays), kept alive with it. One C++
// type per cell, so that each backward accepts only its own cell's caches.
struct PyRnnCache {
  std::unique_ptr<RnnCache<float>> f32;
  std::unique_ptr<RnnCache<double>> f64;
  py::object keep_W, keep_U;
  int B = 0, T = 0, H = 0;
  size_t nbytes = 0;
  Precision precision() const { return f32 ? f32->opt.precision : f64->opt.precision; }
};
template <CellKind K> struct PyRnnCacheOf : PyRnnCache {};

std::unique_ptr<PyRnnCache> new_cache(CellKind cell) {
  switch (cell) {
    case CellKind::lstm: return std::make_unique<PyRnnCacheOf<CellKind::lstm>>();
    case CellKind::gru: return std::make_unique<PyRnnCacheOf<CellKind::gru>>();
    case CellKind::simple_rnn: return std::make_unique<PyRnnCacheOf<CellKind::simple_rnn>>();
  }
  throw std::invalid_argument("unknown cell");
}

py::object to_python(CellKind cell, std::unique_ptr<PyRnnCache> pc) {
  switch (cell) {
    case CellKind::lstm:
      return py::cast(std::unique_ptr<PyRnnCacheOf<CellKind::lstm>>(
          static_cast<PyRnnCacheOf<CellKind::lstm>*>(pc.release())));
    case CellKind::gru:
      return py::cast(std::unique_ptr<PyRnnCacheOf<CellKind::gru>>(
          static_cast<PyRnnCacheOf<CellKind::gru>*>(pc.release())));
    case CellKind::simple_rnn:
      return py::cast(std::unique_ptr<PyRnnCacheOf<CellKind::simple_rnn>>(
          static_cast<PyRnnCacheOf<CellKind::simple_rnn>*>(pc.release())));
  }
  throw std::invalid_argument("unknown cell");
}

const PyRnnCache* from_python(CellKind cell, const py::object& o) {
  switch (cell) {
    case CellKind::lstm:
      if (py::isinstance<PyRnnCacheOf<CellKind::lstm>>(o)) return &o.cast<const PyRnnCacheOf<CellKind::lstm>&>();
      break;
    case CellKind::gru:
      if (py::isinstance<PyRnnCacheOf<CellKind::gru>>(o)) return &o.cast<const PyRnnCacheOf<CellKind::gru>&>();
      break;
    case CellKind::simple_rnn:
      if (py::isinstance<PyRnnCacheOf<CellKind::simple_rnn>>(o))
        return &o.cast<const PyRnnCacheOf<CellKind::simple_rnn>&>();
      break;
  }
  return nullptr;
}

}  // namespace

Act parse_act(const char* fn, const char* arg, std::string_view s) {
  static const std::pair<const char*, Act> names[] = {
      {"tanh", Act::tanh}, {"sigmoid", Act::sigmoid}, {"hard_sigmoid", Act::hard_sigmoid},
      {"hard_sigmoid_k2", Act::hard_sigmoid_k2}, {"relu", Act::relu}, {"linear", Act::linear}};
  for (const auto& n : names)
    if (s == n.first) return n.second;
  throw std::invalid_argument(str(fn, ": ", arg, " must be one of 'tanh', 'sigmoid', 'hard_sigmoid', ",
                                  "'hard_sigmoid_k2', 'relu', 'linear', got '", s, "'"));
}

namespace {

// The bias: LSTM (4H), SimpleRNN (H), GRU (3H), or (2, 3H) with reset_after
// (row 0 the input bias, row 1 the recurrent bias: Keras's layout).
bool two_bias_rows(CellKind cell, const RnnOptions& opt) { return cell == CellKind::gru && opt.reset_after; }

// Everything rnn_forward_py checked, before dispatching on the float type.
struct FwdArgs {
  CellKind cell = CellKind::lstm;
  CellNames nm{};
  py::array x, W, U, b, h0, c0, rec_mask;
  py::object packed_U;
  std::vector<uint8_t> mask;
  bool ids = false;
  int B = 0, T = 0, I = 0, H = 0;
  RnnOptions opt;
};

template <class Real> py::tuple forward_impl(const FwdArgs& a) {
  const char* fn = a.nm.fwd;
  const bool lstm = a.cell == CellKind::lstm;
  const int B = a.B, T = a.T, H = a.H, I = a.I, G = gates_per_unit(a.cell) * H;
  const int nt = num_threads();
  check_memory(fn, rnn_forward_bytes(a.cell, sizeof(Real), B, T, I, H, a.opt.training, a.opt.return_sequences,
                                     !a.ids, given(a.rec_mask)));

  CArray<Real> xf = null_array<CArray<Real>>(), W = as_c<Real>(a.W), U = as_c<Real>(a.U);
  CArray<Real> h0 = as_c<Real>(a.h0), c0 = opt_c<Real>(a.c0);
  CArray<Real> b = opt_c<Real>(a.b), rm = opt_c<Real>(a.rec_mask);
  py::array ids;
  RnnInputs<Real> in;
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
            throw std::invalid_argument(str(fn, ": x[", i / size_t(T), ", ", i % size_t(T), "] = ", p[i],
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
  in.W = W.data(), in.U = U.data(), in.h0 = h0.data(), in.c0 = ptr_or_null(c0);
  in.b = ptr_or_null(b);
  if (in.b && two_bias_rows(a.cell, a.opt)) in.b_rec = in.b + G;
  in.mask = a.mask.empty() ? nullptr : a.mask.data();
  in.rec_mask = ptr_or_null(rm);
  in.U_packed = packed_for<Real>(fn, a.packed_U, a.cell, a.opt, H);

  py::array_t<Real> y = a.opt.return_sequences ? py::array_t<Real>({B, T, H}) : py::array_t<Real>({B, H});
  py::array_t<Real> hT({B, H});
  py::array cT = null_array();
  RnnOutputs<Real> out{y.mutable_data(), hT.mutable_data(), nullptr};
  if (lstm) {
    py::array_t<Real> c({B, H});
    out.cT = c.mutable_data();
    cT = c;
  }

  std::unique_ptr<RnnCache<Real>> cache;
  {
    // Safe without the GIL: the kernels touch only the buffers above, which this
    // frame keeps alive, and C++-owned memory; no Python object is used.
    py::gil_scoped_release nogil;
    cache = rnn_forward(a.cell, in, a.opt, out, nt);
  }
  py::object pycache = py::none();
  if (cache) {
    std::unique_ptr<PyRnnCache> pc = new_cache(a.cell);
    pc->B = B, pc->T = T, pc->H = H, pc->nbytes = cache->nbytes();
    pc->keep_W = W, pc->keep_U = U;
    if constexpr (sizeof(Real) == 4)
      pc->f32 = std::move(cache);
    else
      pc->f64 = std::move(cache);
    pycache = to_python(a.cell, std::move(pc));
  }
  if (lstm) return py::make_tuple(y, hT, cT, pycache);
  return py::make_tuple(y, hT, pycache);
}

// The optional in-place outputs of the backward for dW, dU, db.
struct GradOuts {
  py::object dW, dU, db;
  bool accumulate = false;
};

// An out= array for a weight gradient: an ndarray of the cache's dtype and the
// gradient's exact shape, updated in place; or null when not given.
template <class Real>
Real* grad_out(const char* fn, const char* name, const py::object& o, std::initializer_list<Dim> dims,
               py::array& keep) {
  if (o.is_none()) return nullptr;
  keep = inplace_array(fn, name, o);
  check_ftype(fn, name, keep, ftype_of<Real>(), "the forward that made the cache");
  check_shape(fn, name, keep, dims);
  return inplace<Real>(fn, name, keep);
}

template <class Real>
py::tuple backward_impl(CellKind cell, const RnnCache<Real>& C, const RnnBackwardArgs& args, Precision p) {
  const CellNames nm = names_of(cell);
  const char* fn = nm.bwd;
  const bool lstm = cell == CellKind::lstm;
  constexpr FType ft = ftype_of<Real>();
  const int B = C.B, T = C.T, H = C.H, I = C.I, G = C.G;
  py::array dy = opt_array(fn, "dy", args.dy), dhT = opt_array(fn, "dhT", args.dhT);
  py::array dcT = lstm ? opt_array(fn, "dcT", args.dcT) : null_array();
  const char* ref = "the forward that made the cache";
  if (given(dy)) {
    check_ftype(fn, "dy", dy, ft, ref);
    if (C.opt.return_sequences)
      check_shape(fn, "dy", dy, {{"B", B}, {"T", T}, {"H", H}});
    else
      check_shape(fn, "dy", dy, {{"B", B}, {"H", H}});
  }
  if (given(dhT)) check_ftype(fn, "dhT", dhT, ft, ref), check_shape(fn, "dhT", dhT, {{"B", B}, {"H", H}});
  if (given(dcT)) check_ftype(fn, "dcT", dcT, ft, ref), check_shape(fn, "dcT", dcT, {{"B", B}, {"H", H}});
  const bool want_dx = args.need_dx && C.dense_input;
  check_memory(fn, rnn_backward_bytes(cell, sizeof(Real), B, T, I, H, want_dx, C.opt.reset_after));

  const bool two_rows = two_bias_rows(cell, C.opt);
  RnnGrads<Real> g;
  py::array dW = null_array(), dU = null_array(), db = null_array();
  g.dW = grad_out<Real>(fn, "dW_out", args.dW_out, {{C.lookup && !C.dense_input ? "V" : "I", I}, {nm.G, G}}, dW);
  g.dU = grad_out<Real>(fn, "dU_out", args.dU_out, {{"H", H}, {nm.G, G}}, dU);
  FUSEDLSTM_CHECK(C.has_bias || args.db_out.is_none(), fn,
                  ": db_out was given but the forward had no bias (b=None), so there is no db");
  if (C.has_bias) {
    if (two_rows)
      g.db = grad_out<Real>(fn, "db_out", args.db_out, {{"2", 2}, {nm.G, G}}, db);
    else
      g.db = grad_out<Real>(fn, "db_out", args.db_out, {{nm.G, G}}, db);
  }
  // Two outputs in one buffer would each overwrite the other's sums.
  const Real* given_outs[] = {g.dW, g.dU, g.db};
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j)
      FUSEDLSTM_CHECK(!given_outs[i] || given_outs[i] != given_outs[j], fn,
                      ": dW_out, dU_out and db_out must be different arrays");
  g.precision = p;
  g.add_dW = args.accumulate && g.dW, g.add_dU = args.accumulate && g.dU, g.add_db = args.accumulate && g.db;
  if (!g.dW) dW = py::array_t<Real>({I, G}), g.dW = static_cast<Real*>(dW.mutable_data());
  if (!g.dU) dU = py::array_t<Real>({H, G}), g.dU = static_cast<Real*>(dU.mutable_data());
  if (C.has_bias && !g.db) {
    db = two_rows ? py::array_t<Real>({2, G}) : py::array_t<Real>(G);
    g.db = static_cast<Real*>(db.mutable_data());
  }
  if (two_rows && g.db) g.db_rec = g.db + G;

  CArray<Real> dyc = opt_c<Real>(dy), dhc = opt_c<Real>(dhT), dcc = opt_c<Real>(dcT);
  py::object dx = py::none();
  py::array_t<Real> dh0({B, H});
  py::array dc0 = null_array();
  if (want_dx) {
    py::array_t<Real> arr({B, T, I});
    g.dx = arr.mutable_data();
    dx = arr;
  }
  g.dh0 = dh0.mutable_data();
  if (lstm) {
    py::array_t<Real> arr({B, H});
    g.dc0 = arr.mutable_data();
    dc0 = arr;
  }
  const int nt = num_threads();
  {
    // Safe without the GIL: the cache is only read (the caller's reference keeps
    // it alive) and the outputs were allocated above; no Python object is used.
    py::gil_scoped_release nogil;
    rnn_backward(C, ptr_or_null(dyc), ptr_or_null(dhc), ptr_or_null(dcc), g, nt);
  }
  py::object dbo = given(db) ? py::object(db) : py::none();
  if (lstm) return py::make_tuple(dx, dh0, dc0, dW, dU, dbo);
  return py::make_tuple(dx, dh0, dW, dU, dbo);
}

}  // namespace

py::tuple rnn_forward_py(CellKind cell, const RnnForwardArgs& args) {
  FwdArgs a;
  a.cell = cell;
  a.nm = names_of(cell);
  const char* fn = a.nm.fwd;
  const bool lstm = cell == CellKind::lstm;
  const py::array x = req_array(fn, "x", args.x), W = req_array(fn, "W", args.W), U = req_array(fn, "U", args.U),
                  h0 = req_array(fn, "h0", args.h0);
  const py::array c0 = lstm ? req_array(fn, "c0", args.c0) : null_array();
  a.x = x, a.W = W, a.U = U, a.h0 = h0, a.c0 = c0, a.packed_U = args.packed_U;
  a.b = opt_array(fn, "b", args.b);
  a.rec_mask = opt_array(fn, "rec_mask", args.rec_mask);
  py::array mask = opt_array(fn, "mask", args.mask);
  a.opt.act = parse_act(fn, "activation", args.activation);
  if (cell != CellKind::simple_rnn) a.opt.rec_act = parse_act(fn, "recurrent_activation", args.recurrent_activation);
  FUSEDLSTM_CHECK(args.onehot == "auto" || args.onehot == "never", fn, ": onehot must be 'auto' or 'never', got '",
                  args.onehot, "'");
  a.opt.onehot_auto = args.onehot == "auto";
  a.opt.go_backwards = args.go_backwards, a.opt.zero_output_for_mask = args.zero_output_for_mask;
  a.opt.return_sequences = args.return_sequences, a.opt.training = args.training;
  a.opt.reset_after = cell == CellKind::gru && args.reset_after;
  a.opt.precision = parse_precision(fn, std::string(args.precision));

  // dtypes: float x sets the call's float type; int x means token ids and W sets it.
  FType ft;
  const char* ref;
  if (is_float(x)) {
    ft = float_type(fn, "x", x), ref = "x";
  } else if (is_int(x)) {
    a.ids = true;
    ft = float_type(fn, "W", W), ref = "W";
  } else {
    throw TypeError(str(fn, ": x must be float32/float64 (B, T, I) or an integer array of token ids (B, T), got ",
                        dtype_name(x)));
  }
  check_precision_dtype(fn, a.opt.precision, ft);
  check_ftype(fn, "W", W, ft, ref);
  check_ftype(fn, "U", U, ft, ref);
  if (given(a.b)) check_ftype(fn, "b", a.b, ft, ref);
  check_ftype(fn, "h0", h0, ft, ref);
  if (lstm) check_ftype(fn, "c0", c0, ft, ref);
  if (given(a.rec_mask)) check_ftype(fn, "rec_mask", a.rec_mask, ft, ref);

  // shapes: B, T from x; H from U; I (or V) from x (or W)
  const int gpu = gates_per_unit(cell);
  const char* Gl = a.nm.G;
  if (a.ids)
    check_ndim(fn, "x", x, 2, "(B, T) of token ids");
  else
    check_ndim(fn, "x", x, 3, "(B, T, I)");
  check_ndim(fn, "U", U, 2, a.nm.U);
  const py::ssize_t B = x.shape(0), T = x.shape(1), H = U.shape(0);
  check_positive(fn, "B (batch size)", B, "x.shape[0]");
  check_positive(fn, "T (time steps)", T, "x.shape[1]");
  check_positive(fn, "H (units)", H, "U.shape[0]");
  // before any 4*H below can overflow: the kernels need G < 2^31 anyway
  FUSEDLSTM_CHECK(H <= INT_MAX / 4, fn, ": H = ", H, " exceeds the kernels' limit (", Gl, " must be below 2^31)");
  const py::ssize_t G = gpu * H;
  check_shape(fn, "U", U, {{"H", H}, {Gl, G}});
  py::ssize_t I;
  if (a.ids) {
    check_ndim(fn, "W", W, 2, a.nm.table);
    I = W.shape(0);
    check_positive(fn, "V (rows of the lookup table W)", I, "W.shape[0]");
    check_shape(fn, "W", W, {{"V", I}, {Gl, G}});
  } else {
    I = x.shape(2);
    check_positive(fn, "I (input features)", I, "x.shape[2]");
    check_shape(fn, "W", W, {{"I", I}, {Gl, G}});
  }
  if (given(a.b)) {
    if (two_bias_rows(cell, a.opt)) {
      if (a.b.ndim() != 2 || a.b.shape(0) != 2 || a.b.shape(1) != G)
        throw std::invalid_argument(str(fn, ": b must have shape (2, 3H) = (2, ", G,
                                        ") with reset_after=True (row 0 the input bias, row 1 the recurrent bias, "
                                        "as Keras stores it), got ",
                                        shape_str(a.b)));
    } else if (cell == CellKind::gru) {
      if (a.b.ndim() != 1 || a.b.shape(0) != G)
        throw std::invalid_argument(str(fn, ": b must have shape (3H,) = (", G,
                                        ",) with reset_after=False (one bias, as Keras stores it), got ",
                                        shape_str(a.b)));
    } else {
      check_shape(fn, "b", a.b, {{Gl, G}});
    }
  }
  check_shape(fn, "h0", h0, {{"B", B}, {"H", H}});
  if (lstm) check_shape(fn, "c0", c0, {{"B", B}, {"H", H}});
  if (given(mask)) {
    check_shape(fn, "mask", mask, {{"B", B}, {"T", T}});
    a.mask = mask_bytes(fn, "mask", mask);
  }
  if (given(a.rec_mask)) check_shape(fn, "rec_mask", a.rec_mask, {{"B", B}, {"H", H}});

  // The kernels take int sizes: T·B rows, G columns, I (or V) rows of W.
  a.B = as_int(fn, "B", size_t(B)), a.T = as_int(fn, "T", size_t(T));
  a.H = int(H), a.I = as_int(fn, "I", size_t(I));
  as_int(fn, "T*B", mul_size(size_t(T), size_t(B)));
  as_int(fn, a.nm.BG, mul_size(size_t(B), size_t(G)));

  return ft == FType::f32 ? forward_impl<float>(a) : forward_impl<double>(a);
}

py::tuple rnn_backward_py(CellKind cell, const RnnBackwardArgs& args) {
  const CellNames nm = names_of(cell);
  const PyRnnCache* pc = from_python(cell, args.cache);
  if (!pc)
    throw TypeError(str(nm.bwd, ": cache must be the ", nm.cache, " of a training=True ", nm.fwd, ", got ",
                        type_name(args.cache)));
  Precision p = pc->f32 ? pc->f32->opt.precision : pc->f64->opt.precision;
  if (!args.precision.is_none()) {
    if (!py::isinstance<py::str>(args.precision))
      throw TypeError(str(nm.bwd, ": precision must be None (the forward's), 'float32' or 'bfloat16', got ",
                          type_name(args.precision)));
    p = parse_precision(nm.bwd, args.precision.cast<std::string>());
  }
  check_precision_dtype(nm.bwd, p, pc->f32 ? FType::f32 : FType::f64);
  if (pc->f32) return backward_impl<float>(cell, *pc->f32, args, p);
  return backward_impl<double>(cell, *pc->f64, args, p);
}

namespace {
template <CellKind K> void register_cache_class(py::module_& m) {
  const CellNames nm = names_of(K);
  using C = PyRnnCacheOf<K>;
  py::class_<C>(m, nm.cache, str("Opaque: what ", nm.bwd, " needs from one training-mode ", nm.fwd, ".").c_str())
      .def_readonly("B", &C::B)
      .def_readonly("T", &C::T)
      .def_readonly("H", &C::H)
      .def_readonly("nbytes", &C::nbytes)
      .def_property_readonly("precision", [](const C& c) { return precision_name(c.precision()); })
      .def("__repr__", [](const C& c) {
        return str("<", names_of(K).cache, " ", c.f32 ? "float32" : "float64", " B=", c.B, " T=", c.T, " H=", c.H,
                   " precision=", precision_name(c.precision()), " nbytes=", c.nbytes, ">");
      });
}
}  // namespace

void register_rnn_cache(py::module_& m, CellKind cell) {
  switch (cell) {
    case CellKind::lstm: return register_cache_class<CellKind::lstm>(m);
    case CellKind::gru: return register_cache_class<CellKind::gru>(m);
    case CellKind::simple_rnn: return register_cache_class<CellKind::simple_rnn>(m);
  }
}

}  // namespace fusedlstm
