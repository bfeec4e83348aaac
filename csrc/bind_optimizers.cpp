// bind_optimizers.cpp — adam_update, sgd_update, rmsprop_update (in place).
//
// The state buffers are updated in place, so they are never copied: a buffer
// that is not C-contiguous, writeable and of the parameters' dtype is an error.
// Only the gradient, which is read, may be converted to C order.
#include <cmath>
#include <vector>

#include "bind_util.h"
#include "optimizers.h"

namespace fusedlstm {
namespace {

// Checks w (sets the dtype and length) and the other buffers against it.
struct Flat {
  FType ft;
  size_t n;
};

Flat check_flat(const char* fn, const py::array& w, const py::array& g,
                std::initializer_list<std::pair<const char*, const py::array*>> state) {
  const FType ft = float_type(fn, "w", w);
  check_ndim(fn, "w", w, 1, "(n,) flat parameter buffer");
  const py::ssize_t n = w.shape(0);
  check_ftype(fn, "g", g, ft, "w");
  check_shape(fn, "g", g, {{"n", n}});
  for (const auto& s : state) {
    check_ftype(fn, s.first, *s.second, ft, "w");
    check_shape(fn, s.first, *s.second, {{"n", n}});
  }
  return {ft, size_t(n)};
}

void check_finite(const char* fn, const char* name, double v) {
  FUSEDLSTM_CHECK(std::isfinite(v), fn, ": ", name, " must be finite, got ", v);
}

template <class Real>
void adam_impl(py::array& w, const py::array& g, py::array& m, py::array& v, size_t n, long long step, double lr,
               double b1, double b2, double eps) {
  Real* wp = inplace<Real>("adam_update", "w", w);
  Real* mp = inplace<Real>("adam_update", "m", m);
  Real* vp = inplace<Real>("adam_update", "v", v);
  CArray<Real> gc = as_c<Real>(g);
  const int nt = num_threads();
  // Safe without the GIL: the arrays are kept alive by the caller's references.
  py::gil_scoped_release nogil;
  adam_update<Real>(n, wp, gc.data(), mp, vp, step, lr, b1, b2, eps, nt);
}

void adam_py(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj, const py::object& v_obj,
             long long step, double lr, double beta_1,
             double beta_2, double epsilon) {
  const char* fn = "adam_update";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), m = inplace_array(fn, "m", m_obj), v = inplace_array(fn, "v", v_obj);
  const Flat f = check_flat(fn, w, g, {{"m", &m}, {"v", &v}});
  FUSEDLSTM_CHECK(step >= 1, fn, ": step is the 1-based iteration count, must be >= 1, got ", step);
  check_finite(fn, "lr", lr);
  FUSEDLSTM_CHECK(beta_1 >= 0 && beta_1 < 1, fn, ": beta_1 must be in [0, 1), got ", beta_1);
  FUSEDLSTM_CHECK(beta_2 >= 0 && beta_2 < 1, fn, ": beta_2 must be in [0, 1), got ", beta_2);
  check_finite(fn, "epsilon", epsilon);
  if (f.ft == FType::f32)
    adam_impl<float>(w, g, m, v, f.n, step, lr, beta_1, beta_2, epsilon);
  else
    adam_impl<double>(w, g, m, v, f.n, step, lr, beta_1, beta_2, epsilon);
}

template <class Real>
void sgd_impl(py::array& w, const py::array& g, py::array& u, size_t n, double lr, double momentum, bool nesterov) {
  Real* wp = inplace<Real>("sgd_update", "w", w);
  Real* up = given(u) ? inplace<Real>("sgd_update", "u", u) : nullptr;
  CArray<Real> gc = as_c<Real>(g);
  const int nt = num_threads();
  // Safe without the GIL: the arrays are kept alive by the caller's references.
  py::gil_scoped_release nogil;
  sgd_update<Real>(n, wp, gc.data(), momentum == 0 ? nullptr : up, lr, momentum, nesterov, nt);
}

void sgd_py(const py::object& w_obj, const py::object& g_obj, const py::object& u_obj, double lr, double momentum,
            bool nesterov) {
  const char* fn = "sgd_update";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj);
  py::array u = u_obj.is_none() ? null_array() : inplace_array(fn, "u", u_obj);
  const Flat f = given(u) ? check_flat(fn, w, g, {{"u", &u}}) : check_flat(fn, w, g, {});
  check_finite(fn, "lr", lr);
  check_finite(fn, "momentum", momentum);
  FUSEDLSTM_CHECK(momentum == 0 || given(u), fn, ": momentum = ", momentum,
                  " needs the momentum buffer u (got None; None is allowed only when momentum == 0)");
  if (f.ft == FType::f32)
    sgd_impl<float>(w, g, u, f.n, lr, momentum, nesterov);
  else
    sgd_impl<double>(w, g, u, f.n, lr, momentum, nesterov);
}

template <class Real>
void rmsprop_impl(py::array& w, const py::array& g, py::array& s, size_t n, double lr, double rho, double eps) {
  Real* wp = inplace<Real>("rmsprop_update", "w", w);
  Real* sp = inplace<Real>("rmsprop_update", "s", s);
  CArray<Real> gc = as_c<Real>(g);
  const int nt = num_threads();
  // Safe without the GIL: the arrays are kept alive by the caller's references.
  py::gil_scoped_release nogil;
  rmsprop_update<Real>(n, wp, gc.data(), sp, lr, rho, eps, nt);
}

void rmsprop_py(const py::object& w_obj, const py::object& g_obj, const py::object& s_obj, double lr, double rho,
                double epsilon) {
  const char* fn = "rmsprop_update";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), s = inplace_array(fn, "s", s_obj);
  const Flat f = check_flat(fn, w, g, {{"s", &s}});
  check_finite(fn, "lr", lr);
  FUSEDLSTM_CHECK(rho >= 0 && rho < 1, fn, ": rho must be in [0, 1), got ", rho);
  check_finite(fn, "epsilon", epsilon);
  if (f.ft == FType::f32)
    rmsprop_impl<float>(w, g, s, f.n, lr, rho, epsilon);
  else
    rmsprop_impl<double>(w, g, s, f.n, lr, rho, epsilon);
}

}  // namespace

void register_optimizers(py::module_& m) {
  m.def("adam_update", &adam_py, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"), py::kw_only(),
        py::arg("step"), py::arg("lr"), py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999,
        py::arg("epsilon") = 1e-7, "Keras 3 Adam step, in place over flat buffers; step is 1-based.");
  m.def("sgd_update", &sgd_py, py::arg("w"), py::arg("g"), py::arg("u").none(true), py::kw_only(), py::arg("lr"),
        py::arg("momentum") = 0.0, py::arg("nesterov") = false,
        "u = momentum*u - lr*g; w += u (nesterov: w += momentum*u - lr*g), in place.");
  m.def("rmsprop_update", &rmsprop_py, py::arg("w"), py::arg("g"), py::arg("s"), py::kw_only(), py::arg("lr"),
        py::arg("rho") = 0.9, py::arg("epsilon") = 1e-7, "s = rho*s + (1-rho)*g^2; w -= lr*g/sqrt(s + eps), in place.");
}

}  // namespace fusedlstm
