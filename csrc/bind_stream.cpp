// bind_stream.cpp — _core.StreamKernel: a stateful model's step (stream.h) behind one
// Python call, for fusedlstm.models.Stream.
//
// Built once from the model (add_recurrent / add_dense, in plan order), then step(x)
// per call. A step returns None, having done nothing, whenever it is not sure the
// answer would be the model's: a weight was written since it was built (the weights'
// write counter, fusedlstm.variables), the input is not exactly what it expects (an
// ndarray of int32/int64 ids in range, or finite floats of the model's dtype, in C
// order, with the model's batch size), or a layer's states are not arrays it can
// update in place. Stream then takes its Python path, whose checks raise the usual
// errors. So this file never needs a message for a bad input, and never reads one.
//
// States: a recurrent layer keeps its states in `layer.states`, a list of (B, H)
// arrays that predict_on_batch replaces and reset_states reassigns. A step reads that
// attribute, adopts whatever arrays it holds when they are writeable C-order arrays of
// the right dtype and shape (not overlapping each other), and overwrites them with the
// new states, so stream steps and predict_on_batch calls continue each other.
//
// The GIL stays held: a step is a few microseconds, releasing and retaking it would
// add to every step, and holding it keeps the object's scratch and the layers' arrays
// safe from a concurrent step or predict on another thread.
#include <pybind11/stl.h>

#include <climits>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bind_packed_recurrent.h"
#include "bind_recurrent.h"
#include "bind_util.h"
#include "stream.h"
#include "threads.h"

namespace fusedlstm {
namespace {

constexpr const char* kFn = "StreamKernel";

// A recurrent layer's states as last adopted.
struct StateSlot {
  py::object layer;  // whose `states` attribute holds them
  int n = 1, H = 0;  // 2 for LSTM (h, c)
  py::object seen;   // the states list (or tuple) object last read
  py::array arr[2];  // its arrays
  void* data[2] = {nullptr, nullptr};
};

struct PyStream {
  FType ft = FType::f32;
  int B = 0, in_dim = 0;
  bool ids = false, mask_zero = false;
  int threads = 0;        // 0: the kernels' setting (get_num_threads)
  py::list counter;       // fusedlstm.variables' write counter ([n])
  long long version = 0;  // its value when the weights were read
  std::vector<py::object> keep;  // the arrays and packings the plan points into
  StreamPlan<float> p32;
  StreamPlan<double> p64;
  StreamScratch<float> s32;
  StreamScratch<double> s64;
  std::vector<StateSlot> slots;
  int width = 0;     // features of the current last output
  bool seq = true;   // whether it has a time axis
  bool has_head = false;
  py::str states_key = py::str("states");

  bool current() const {
    if (PyList_GET_SIZE(counter.ptr()) != 1) return false;
    PyObject* v = PyList_GET_ITEM(counter.ptr(), 0);
    if (!PyLong_Check(v)) return false;
    const long long now = PyLong_AsLongLong(v);
    if (now == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    return now == version;
  }
};

template <class Real> StreamPlan<Real>& plan_of(PyStream& s) {
  if constexpr (sizeof(Real) == 4)
    return s.p32;
  else
    return s.p64;
}
template <class Real> StreamScratch<Real>& scratch_of(PyStream& s) {
  if constexpr (sizeof(Real) == 4)
    return s.s32;
  else
    return s.s64;
}

std::unique_ptr<PyStream> make(py::ssize_t batch, const std::string& dtype, bool ids, py::ssize_t input_dim,
                               const py::list& counter, bool mask_zero) {
  auto s = std::make_unique<PyStream>();
  FUSEDLSTM_CHECK(dtype == "float32" || dtype == "float64", kFn, ": dtype must be 'float32' or 'float64', got '",
                  dtype, "'");
  check_positive(kFn, "batch", batch, "batch");
  check_positive(kFn, "input_dim", input_dim, "input_dim");
  FUSEDLSTM_CHECK(batch <= INT_MAX && input_dim <= INT_MAX, kFn, ": batch and input_dim must be below 2^31");
  FUSEDLSTM_CHECK(py::len(counter) == 1 && PyLong_Check(counter[0].ptr()), kFn,
                  ": write_counter must be a list holding one int (fusedlstm.variables' write counter)");
  FUSEDLSTM_CHECK(ids || !mask_zero, kFn, ": mask_zero needs token-id input");
  s->ft = dtype == "float32" ? FType::f32 : FType::f64;
  s->B = int(batch), s->in_dim = int(input_dim), s->ids = ids, s->mask_zero = mask_zero;
  s->counter = counter;
  s->version = PyLong_AsLongLong(counter[0].ptr());
  s->width = int(input_dim);
  plan_of<float>(*s).B = plan_of<double>(*s).B = int(batch);
  plan_of<float>(*s).ids = plan_of<double>(*s).ids = ids;
  plan_of<float>(*s).mask_zero = plan_of<double>(*s).mask_zero = mask_zero;
  return s;
}

// An array of the stream's dtype and these dimensions, kept alive by the stream.
template <class Real>
const Real* weight(PyStream& s, const char* name, const py::object& o, std::initializer_list<Dim> dims) {
  const py::array a = req_array(kFn, name, o);
  check_ftype(kFn, name, a, ftype_of<Real>(), "the stream's dtype");
  check_shape(kFn, name, a, dims);
  CArray<Real> c = as_c<Real>(a);
  s.keep.push_back(c);
  return c.data();
}

template <class Real>
void add_recurrent_impl(PyStream& s, const py::object& layer, CellKind cell, const py::object& W,
                        const py::object& U, const py::object& b, const py::object& packed_U, const RnnOptions& opt) {
  StreamPlan<Real>& p = plan_of<Real>(s);
  FUSEDLSTM_CHECK(!s.has_head, kFn, ": add_recurrent after add_dense (a head must come last)");
  FUSEDLSTM_CHECK(p.rnns.empty() || s.seq, kFn, ": the layer before returns no sequences; a recurrent layer "
                  "needs (B, T, I) input");
  const py::array Ua = req_array(kFn, "U", U);
  check_ndim(kFn, "U", Ua, 2, "(H, gH)");
  const py::ssize_t H = Ua.shape(0);
  check_positive(kFn, "H", H, "U.shape[0]");
  FUSEDLSTM_CHECK(H <= INT_MAX / 4, kFn, ": H = ", H, " exceeds the kernels' limit");
  const int g = gates_per_unit(cell);
  StreamRecurrent<Real> r;
  r.cell = cell, r.opt = opt, r.H = int(H), r.I = s.width;
  const bool table = p.rnns.empty() && s.ids && !p.E;
  r.W = weight<Real>(s, "W", W, {{table ? "V" : "I", s.width}, {"G", g * H}});
  r.U = weight<Real>(s, "U", U, {{"H", H}, {"G", g * H}});
  if (!b.is_none()) {
    if (cell == CellKind::gru && opt.reset_after) {
      r.b = weight<Real>(s, "b", b, {{"2", 2}, {"3H", g * H}});
      r.b_rec = r.b + g * H;
    } else {
      r.b = weight<Real>(s, "b", b, {{"G", g * H}});
    }
  }
  r.U_packed = packed_for<Real>(kFn, packed_U, cell, opt, int(H));
  s.keep.push_back(packed_U);
  p.rnns.push_back(r);
  StateSlot slot;
  slot.layer = layer, slot.n = cell == CellKind::lstm ? 2 : 1, slot.H = int(H);
  slot.seen = py::none();
  s.slots.push_back(std::move(slot));
  s.width = int(H), s.seq = opt.return_sequences;
}

void add_recurrent(PyStream& s, const py::object& layer, const std::string& cell, const py::object& W,
                   const py::object& U, const py::object& b, const py::object& packed_U,
                   const std::string& activation, const std::string& recurrent_activation, bool reset_after,
                   bool return_sequences, bool go_backwards, bool zero_output_for_mask,
                   const std::string& precision) {
  const CellKind k = parse_cell(kFn, cell);
  RnnOptions opt;
  opt.act = parse_act(kFn, "activation", activation);
  if (k != CellKind::simple_rnn) opt.rec_act = parse_act(kFn, "recurrent_activation", recurrent_activation);
  opt.reset_after = k == CellKind::gru && reset_after;
  opt.return_sequences = return_sequences, opt.go_backwards = go_backwards;
  opt.zero_output_for_mask = zero_output_for_mask;
  opt.training = false;
  opt.precision = parse_precision(kFn, precision);
  check_precision_dtype(kFn, opt.precision, s.ft);
  if (s.ft == FType::f32)
    add_recurrent_impl<float>(s, layer, k, W, U, b, packed_U, opt);
  else
    add_recurrent_impl<double>(s, layer, k, W, U, b, packed_U, opt);
}

template <class Real> void set_embedding_impl(PyStream& s, const py::object& E) {
  StreamPlan<Real>& p = plan_of<Real>(s);
  FUSEDLSTM_CHECK(s.ids, kFn, ": set_embedding needs token-id input");
  FUSEDLSTM_CHECK(p.rnns.empty() && !p.E, kFn, ": set_embedding must come once, before add_recurrent");
  const py::array Ea = req_array(kFn, "E", E);
  check_ndim(kFn, "E", Ea, 2, "(V, D)");
  const py::ssize_t D = Ea.shape(1);
  check_positive(kFn, "D", D, "E.shape[1]");
  FUSEDLSTM_CHECK(D <= INT_MAX, kFn, ": D must be below 2^31");
  p.E = weight<Real>(s, "E", E, {{"V", s.in_dim}, {"D", D}});
  p.D = int(D);
  s.width = int(D);
}

void set_embedding(PyStream& s, const py::object& E) {
  if (s.ft == FType::f32)
    set_embedding_impl<float>(s, E);
  else
    set_embedding_impl<double>(s, E);
}

template <class Real>
void add_dense_impl(PyStream& s, const py::object& W, const py::object& b, HeadAct act, Precision prec) {
  StreamPlan<Real>& p = plan_of<Real>(s);
  FUSEDLSTM_CHECK(!p.rnns.empty(), kFn, ": add_dense before any add_recurrent (the stream needs a recurrent layer)");
  const py::array Wa = req_array(kFn, "W", W);
  check_ndim(kFn, "W", Wa, 2, "(K, N)");
  const py::ssize_t N = Wa.shape(1);
  check_positive(kFn, "N (units)", N, "W.shape[1]");
  FUSEDLSTM_CHECK(N <= INT_MAX, kFn, ": N must be below 2^31");
  StreamDense<Real> d;
  d.K = s.width, d.N = int(N), d.act = act, d.precision = prec;
  d.W = weight<Real>(s, "W", W, {{"K", s.width}, {"N", N}});
  if (!b.is_none()) d.b = weight<Real>(s, "b", b, {{"N", N}});
  p.heads.push_back(d);
  s.width = int(N), s.has_head = true;
}

void add_dense(PyStream& s, const py::object& W, const py::object& b, const std::string& activation,
               const std::string& precision) {
  HeadAct act;
  if (activation == "linear")
    act = HeadAct::linear;
  else if (activation == "relu")
    act = HeadAct::relu;
  else if (activation == "softmax")
    act = HeadAct::softmax;
  else
    throw std::invalid_argument(
        str(kFn, ": activation must be 'linear', 'relu' or 'softmax', got '", activation, "'"));
  const Precision p = parse_precision(kFn, precision);
  check_precision_dtype(kFn, p, s.ft);
  if (s.ft == FType::f32)
    add_dense_impl<float>(s, W, b, act, p);
  else
    add_dense_impl<double>(s, W, b, act, p);
}

// ---- per step ---------------------------------------------------------------------

bool c_order(const py::array& a) {
  return (a.flags() & py::array::c_style) && (a.flags() & kAligned);
}

// Byte ranges [p, p + n) of two arrays intersect.
bool overlap(const py::array& a, const py::array& b) {
  const char* pa = static_cast<const char*>(a.data());
  const char* pb = static_cast<const char*>(b.data());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// Whether `a` is a state array a step may overwrite: dtype, shape, C order, writeable.
template <class Real> bool usable_state(const PyStream& s, PyObject* o, int H) {
  if (!py::isinstance<py::array>(o)) return false;
  const py::array a = py::reinterpret_borrow<py::array>(o);
  return a.dtype().equal(py::dtype::of<Real>()) && a.ndim() == 2 && a.shape(0) == s.B && a.shape(1) == H &&
         c_order(a) && a.writeable();
}

// The layers' current state arrays, adopted if they changed; false when a step cannot
// write them in place (the Python path then runs, and leaves fresh arrays there).
template <class Real> bool states_ready(PyStream& s, std::vector<Real*>& h, std::vector<Real*>& c) {
  bool changed = false;
  for (StateSlot& sl : s.slots) {
    py::object st = py::reinterpret_steal<py::object>(PyObject_GetAttr(sl.layer.ptr(), s.states_key.ptr()));
    if (!st) throw py::error_already_set();
    bool same = st.ptr() == sl.seen.ptr() && PySequence_Fast_GET_SIZE(st.ptr()) == sl.n;  // a list may shrink
    if (same)
      for (int k = 0; k < sl.n; ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(st.ptr(), k);
        // The same object, still over the same memory (a resize or a reshape in place moves or refuses it).
        same = same && item == sl.arr[k].ptr() && sl.arr[k].data() == sl.data[k] && sl.arr[k].ndim() == 2 &&
               sl.arr[k].shape(0) == s.B && sl.arr[k].shape(1) == sl.H && sl.arr[k].writeable() &&
               c_order(sl.arr[k]);
      }
    if (!same) {
      sl.seen = py::none();
      if (!(PyList_Check(st.ptr()) || PyTuple_Check(st.ptr())) || PySequence_Fast_GET_SIZE(st.ptr()) != sl.n)
        return false;
      for (int k = 0; k < sl.n; ++k) {
        PyObject* item = PySequence_Fast_GET_ITEM(st.ptr(), k);
        if (!usable_state<Real>(s, item, sl.H)) return false;
        sl.arr[k] = py::reinterpret_borrow<py::array>(item);
        sl.data[k] = sl.arr[k].mutable_data();
      }
      sl.seen = st;
      changed = true;
    }
  }
  if (changed) {  // two states in one memory would overwrite each other
    std::vector<const py::array*> all;
    for (const StateSlot& sl : s.slots)
      for (int k = 0; k < sl.n; ++k) all.push_back(&sl.arr[k]);
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j)
        if (overlap(*all[i], *all[j])) {
          for (StateSlot& sl : s.slots) sl.seen = py::none();
          return false;
        }
  }
  h.clear(), c.clear();
  for (StateSlot& sl : s.slots) {
    h.push_back(static_cast<Real*>(sl.data[0]));
    c.push_back(sl.n > 1 ? static_cast<Real*>(sl.data[1]) : nullptr);
  }
  return true;
}

// The step's input when it is exactly what the plan reads, else false.
template <class Real> bool input_ready(const PyStream& s, const py::object& xo, StreamInput<Real>& in) {
  if (!py::isinstance<py::array>(xo)) return false;
  const py::array x = py::reinterpret_borrow<py::array>(xo);
  if (!c_order(x) || x.ndim() != (s.ids ? 2 : 3) || x.shape(0) != s.B || x.shape(1) < 1 || x.shape(1) > INT_MAX)
    return false;
  const size_t n = size_t(x.size());
  if (s.ids) {
    const long long V = s.in_dim;
    if (x.dtype().equal(py::dtype::of<int32_t>())) {
      in.ids32 = static_cast<const int32_t*>(x.data());
      for (size_t e = 0; e < n; ++e)
        if (in.ids32[e] < 0 || in.ids32[e] >= V) return false;
    } else if (x.dtype().equal(py::dtype::of<int64_t>())) {
      in.ids64 = static_cast<const int64_t*>(x.data());
      for (size_t e = 0; e < n; ++e)
        if (in.ids64[e] < 0 || in.ids64[e] >= V) return false;
    } else {
      return false;
    }
  } else {
    if (!x.dtype().equal(py::dtype::of<Real>()) || x.shape(2) != s.in_dim) return false;
    in.x = static_cast<const Real*>(x.data());
    for (size_t e = 0; e < n; ++e)
      if (!std::isfinite(in.x[e])) return false;
  }
  in.T = int(x.shape(1));
  return true;
}

template <class Real> py::object step_impl(PyStream& s, const py::object& x) {
  StreamInput<Real> in;
  if (!input_ready<Real>(s, x, in)) return py::none();
  thread_local std::vector<Real*> h, c;
  if (!states_ready<Real>(s, h, c)) return py::none();
  py::array_t<Real> out = s.seq ? py::array_t<Real>({s.B, in.T, s.width}) : py::array_t<Real>({s.B, s.width});
  stream_step(plan_of<Real>(s), in, h.data(), c.data(), out.mutable_data(), scratch_of<Real>(s),
              s.threads > 0 ? s.threads : num_threads());
  return out;
}

py::object step(PyStream& s, const py::object& x) {
  if (!s.current()) return py::none();
  return s.ft == FType::f32 ? step_impl<float>(s, x) : step_impl<double>(s, x);
}

}  // namespace

void register_stream(py::module_& m) {
  py::class_<PyStream>(m, "StreamKernel",
                       "A stateful model's step in one call, for fusedlstm.models.Stream. See _core.pyi.")
      .def(py::init(&make), py::arg("batch"), py::arg("dtype"), py::arg("ids"), py::arg("input_dim"),
           py::arg("write_counter"), py::kw_only(), py::arg("mask_zero") = false)
      .def("set_embedding", &set_embedding, py::arg("E"))
      .def("add_recurrent", &add_recurrent, py::arg("layer"), py::arg("cell"), py::arg("W"), py::arg("U"),
           py::arg("b").none(true), py::arg("packed_U").none(true), py::kw_only(), py::arg("activation") = "tanh",
           py::arg("recurrent_activation") = "sigmoid", py::arg("reset_after") = true,
           py::arg("return_sequences") = true, py::arg("go_backwards") = false,
           py::arg("zero_output_for_mask") = false, py::arg("precision") = "float32")
      .def("add_dense", &add_dense, py::arg("W"), py::arg("b").none(true), py::kw_only(),
           py::arg("activation") = "linear", py::arg("precision") = "float32")
      .def("step", &step, py::arg("x"))
      .def_property_readonly("current", &PyStream::current)
      .def_property(
          "threads", [](const PyStream& s) { return s.threads; },
          [](PyStream& s, int n) {
            FUSEDLSTM_CHECK(n >= 0, kFn, ": threads must be >= 0 (0: get_num_threads()), got ", n);
            s.threads = n;
          })
      .def_property_readonly("dtype", [](const PyStream& s) { return std::string(ftype_name(s.ft)); })
      .def_property_readonly("batch", [](const PyStream& s) { return s.B; })
      .def("__repr__", [](const PyStream& s) {
        return str("<StreamKernel ", ftype_name(s.ft), " batch=", s.B, s.ids ? " ids" : " dense", " layers=",
                   s.slots.size(), " heads=", s.ft == FType::f32 ? s.p32.heads.size() : s.p64.heads.size(), ">");
      });
}

}  // namespace fusedlstm
