// bind_util.h — argument checking shared by the bind_*.cpp files: every array
// is checked for kind, dtype, rank and shape *before* anything is converted, so
// a wrong dtype raises TypeError instead of being cast silently, and a wrong
// shape raises ValueError naming the argument, the expected and the given shape.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "common.h"
#include "precision.h"

namespace fusedlstm {
namespace py = pybind11;

enum class FType { f32, f64 };

inline const char* ftype_name(FType t) { return t == FType::f32 ? "float32" : "float64"; }
inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }
template <class Real> constexpr FType ftype_of() { return sizeof(Real) == 4 ? FType::f32 : FType::f64; }

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string type_name(const py::handle& o) {
  return py::str(py::type::of(o).attr("__name__")).cast<std::string>();
}

inline bool is_float(const py::array& a) {
  return a.dtype().kind() == 'f' && (a.itemsize() == 4 || a.itemsize() == 8);
}
inline bool is_int(const py::array& a) { return a.dtype().kind() == 'i' || a.dtype().kind() == 'u'; }

// A null array handle, for "not given" (a default-constructed py::array is a
// real, empty array, not a null one).
template <class A = py::array> A null_array() { return py::reinterpret_steal<A>(py::handle()); }

// An optional argument: None -> null, else the object as an array.
inline py::array opt_array(const char* fn, const char* name, const py::object& o) {
  if (o.is_none()) return null_array();
  py::array a = py::array::ensure(o);
  if (!a) throw TypeError(str(fn, ": ", name, " must be a numpy array or None, got ", type_name(o)));
  return a;
}
// A required array argument: None (or anything NumPy cannot read) is a TypeError
// naming it, rather than pybind11's dump of the whole signature.
inline py::array req_array(const char* fn, const char* name, const py::object& o) {
  if (o.is_none()) throw TypeError(str(fn, ": ", name, " must be a numpy array, got None"));
  py::array a = py::array::ensure(o);
  if (!a) throw TypeError(str(fn, ": ", name, " must be a numpy array, got ", type_name(o)));
  return a;
}

inline bool given(const py::array& a) { return bool(a); }

// The float dtype of a (float32/float64), or TypeError.
inline FType float_type(const char* fn, const char* name, const py::array& a) {
  if (!is_float(a))
    throw TypeError(str(fn, ": ", name, " must be a float32 or float64 array, got ", dtype_name(a)));
  return a.itemsize() == 4 ? FType::f32 : FType::f64;
}

// a must have the call's float dtype (named after the array that set it).
inline void check_ftype(const char* fn, const char* name, const py::array& a, FType t, const char* ref) {
  const FType got = float_type(fn, name, a);
  if (got != t)
    throw TypeError(str(fn, ": ", name, " is ", ftype_name(got), " but ", ref, " is ", ftype_name(t),
                        "; all float arrays of one call must share one dtype"));
}

// One expected dimension: its letter(s) for the message and its size.
struct Dim {
  const char* label;
  py::ssize_t size;
};

inline void check_shape(const char* fn, const char* name, const py::array& a, std::initializer_list<Dim> dims) {
  bool ok = a.ndim() == py::ssize_t(dims.size());
  py::ssize_t d = 0;
  for (const Dim& e : dims) ok = ok && a.shape(d++) == e.size;
  if (ok) return;
  std::string labels = "(", sizes = "(";
  d = 0;
  for (const Dim& e : dims) {
    labels += str(d ? ", " : "", e.label);
    sizes += str(d ? ", " : "", e.size);
    ++d;
  }
  const char* close = dims.size() == 1 ? ",)" : ")";
  throw std::invalid_argument(str(fn, ": ", name, " must have shape ", labels, close, " = ", sizes, close, ", got ",
                                  shape_str(a)));
}

inline void check_ndim(const char* fn, const char* name, const py::array& a, int ndim, const char* labels) {
  FUSEDLSTM_CHECK(a.ndim() == ndim, fn, ": ", name, " must be ", ndim, "-D ", labels, ", got shape ", shape_str(a));
}

inline void check_positive(const char* fn, const char* what, py::ssize_t v, const char* from) {
  FUSEDLSTM_CHECK(v >= 1, fn, ": ", what, " must be at least 1, got ", v, " (from ", from, ")");
}

// C-order, aligned array of Real; copies only when a is not already that.
// Callers have checked the dtype, so forcecast never changes values here.
// Aligned: NumPy allows elements at any byte offset (np.frombuffer(buf, offset=1)),
// but the kernels read them as Real*, which must be naturally aligned.
// The converting constructor, not ensure(): when the copy cannot be allocated (a
// broadcast view far larger than RAM) ensure() returns a null array and drops
// NumPy's MemoryError, and the kernels would then read through a null pointer.
constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
template <class Real> using CArray = py::array_t<Real, py::array::c_style | py::array::forcecast | kAligned>;
template <class Real> CArray<Real> as_c(const py::array& a) { return CArray<Real>(a); }
template <class Real> CArray<Real> opt_c(const py::array& a) { return a ? as_c<Real>(a) : null_array<CArray<Real>>(); }
template <class Real> const Real* ptr_or_null(const CArray<Real>& a) { return a ? a.data() : nullptr; }

// An in-place buffer: must already be C-contiguous, writeable, of dtype Real.
template <class Real> Real* inplace(const char* fn, const char* name, py::array& a) {
  // A byte-swapped float32 ('>f4') passes the dtype check of the read-only
  // arrays (they are converted); here the kernel would read and write raw bytes.
  if (!a.dtype().equal(py::dtype::of<Real>()))
    throw TypeError(str(fn, ": ", name, " must be ", ftype_name(ftype_of<Real>()),
                        " in native byte order (it is updated in place), got ", dtype_name(a)));
  FUSEDLSTM_CHECK(a.flags() & py::array::c_style, fn, ": ", name,
                  " must be C-contiguous (it is updated in place; a copy would lose the update)");
  FUSEDLSTM_CHECK(a.writeable(), fn, ": ", name, " must be writeable (it is updated in place)");
  FUSEDLSTM_CHECK(a.flags() & kAligned, fn, ": ", name, " must be aligned to its ", a.itemsize(),
                  "-byte elements (it is updated in place; a copy would lose the update)");
  return static_cast<Real*>(a.mutable_data());
}

// An argument updated in place must be an ndarray already: converting a list
// (or anything else) would update a temporary copy.
inline py::array inplace_array(const char* fn, const char* name, const py::object& o) {
  if (!py::isinstance<py::array>(o))
    throw TypeError(str(fn, ": ", name, " must be a numpy array (it is updated in place), got ",
                        type_name(o)));
  return py::reinterpret_borrow<py::array>(o);
}

// A bool/integer mask as 0/1 bytes; any nonzero element counts as 1.
inline std::vector<uint8_t> mask_bytes(const char* fn, const char* name, const py::array& a) {
  const char kind = a.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u')
    throw TypeError(str(fn, ": ", name, " must be a bool or integer array, got ", dtype_name(a)));
  py::array c = py::array::ensure(a, py::array::c_style);
  if (!c)  // ensure() dropped NumPy's error: the C-order copy could not be allocated
    throw OutOfMemory(str(fn, ": ", name, " ", shape_str(a), " is not C-contiguous and its C-order copy (",
                          mul_size(size_t(a.size()), size_t(a.itemsize())), " bytes) could not be allocated"));
  const size_t n = size_t(c.size()), w = size_t(c.itemsize());
  const auto* p = static_cast<const uint8_t*>(c.data());
  std::vector<uint8_t> m(n);
  for (size_t i = 0; i < n; ++i) {
    uint8_t any = 0;
    for (size_t j = 0; j < w; ++j) any |= p[i * w + j];
    m[i] = any ? 1 : 0;
  }
  return m;
}

// ---- matrix products (bind_dense.cpp, bind_gemm.cpp) ----------------------

// The checked operands of a matmul-like call: op(a) (M,K), op(b) (K,N).
struct MatmulArgs {
  py::array a, b;
  bool ta = false, tb = false;
  FType ft = FType::f32;
  int M = 0, N = 0, K = 0;
};

inline MatmulArgs matmul_args(const char* fn, const py::object& a_obj, const py::object& b_obj, bool ta, bool tb) {
  MatmulArgs r;
  r.a = req_array(fn, "a", a_obj), r.b = req_array(fn, "b", b_obj), r.ta = ta, r.tb = tb;
  const py::array &a = r.a, &b = r.b;
  r.ft = float_type(fn, "a", a);
  check_ftype(fn, "b", b, r.ft, "a");
  check_ndim(fn, "a", a, 2, ta ? "(K, M) (trans_a)" : "(M, K)");
  check_ndim(fn, "b", b, 2, tb ? "(N, K) (trans_b)" : "(K, N)");
  const py::ssize_t M = ta ? a.shape(1) : a.shape(0), K = ta ? a.shape(0) : a.shape(1);
  const py::ssize_t Kb = tb ? b.shape(1) : b.shape(0), N = tb ? b.shape(0) : b.shape(1);
  FUSEDLSTM_CHECK(K == Kb, fn, ": op(a) is (M, K) = (", M, ", ", K, ") but op(b) is (K, N) = (", Kb, ", ", N,
                  "): the inner dimensions differ (a ", shape_str(a), ", trans_a=", ta ? "True" : "False", "; b ",
                  shape_str(b), ", trans_b=", tb ? "True" : "False", ")");
  r.M = as_int(fn, "M", size_t(M)), r.N = as_int(fn, "N", size_t(N)), r.K = as_int(fn, "K", size_t(K));
  return r;
}

// The (M,N) result array: out (checked, written in place) or a new one.
template <class Real>
py::array matmul_out(const char* fn, const MatmulArgs& m, const py::object& out_obj, bool accumulate) {
  if (!out_obj.is_none()) {
    py::array out = inplace_array(fn, "out", out_obj);
    check_ftype(fn, "out", out, ftype_of<Real>(), "a");
    check_shape(fn, "out", out, {{"M", m.M}, {"N", m.N}});
    inplace<Real>(fn, "out", out);
    return out;
  }
  FUSEDLSTM_CHECK(!accumulate, fn, ": accumulate=True needs out (the array to add to)");
  check_memory(fn, mul_size(size_t(m.M), size_t(m.N), sizeof(Real)));
  return py::array_t<Real>({m.M, m.N});
}

// bfloat16 products take float32 arrays only: a float64 caller asked for exact
// arithmetic, and silently rounding its operands to 8 bits would betray that.
inline void check_precision_dtype(const char* fn, Precision p, FType ft) {
  if (p == Precision::bfloat16 && ft != FType::f32)
    throw TypeError(str(fn, ": precision='bfloat16' needs float32 arrays, got ", ftype_name(ft)));
}

}  // namespace fusedlstm
