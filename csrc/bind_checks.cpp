// bind_checks.cpp — input checks the Python layer runs on every batch.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind_util.h"
#include "isa/ops.h"

namespace py = pybind11;

namespace fusedlstm {
namespace {

constexpr const char* kFinite = "first_nonfinite";

template <class Real> py::ssize_t first_nonfinite_impl(const py::array& a) {
  const Real* p = static_cast<const Real*>(a.data());
  const size_t n = size_t(a.size());
  size_t i;
  {
    // Safe without the GIL: the caller's reference keeps the array alive; it is only read.
    py::gil_scoped_release nogil;
    i = ops<Real>().first_nonfinite(p, n);
  }
  return i == n ? -1 : py::ssize_t(i);
}

py::ssize_t first_nonfinite_py(const py::object& obj) {
  const py::array a = req_array(kFinite, "x", obj);
  const FType ft = float_type(kFinite, "x", a);
  if (!a.dtype().equal(ft == FType::f32 ? py::dtype::of<float>() : py::dtype::of<double>()))
    throw TypeError(str(kFinite, ": x must be float32 or float64 in native byte order, got ", dtype_name(a)));
  FUSEDLSTM_CHECK(a.flags() & py::array::c_style, kFinite, ": x must be C-contiguous (its flat index is returned)");
  FUSEDLSTM_CHECK(a.flags() & kAligned, kFinite, ": x must be aligned to its ", a.itemsize(), "-byte elements");
  return ft == FType::f32 ? first_nonfinite_impl<float>(a) : first_nonfinite_impl<double>(a);
}

}  // namespace

void register_checks(py::module_& m) {
  m.def("first_nonfinite", &first_nonfinite_py, py::arg("x"),
        "Flat index of the first NaN/Inf in a C-contiguous float32/float64 array, or -1. See _core.pyi.");
}

}  // namespace fusedlstm
