// bind_optimizers.cpp — the Keras 3 optimizer steps *_step of issue 25 (all in place).
//
// The state buffers are updated in place, so they are never copied: a buffer
// that is not C-contiguous, writeable and of the parameters' dtype is an error.
// Only the gradient, which is read, may be converted to C order.
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <pybind11/stl.h>

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
  check_shape(fn, "g", g, {{"len(w)", n}});
  for (const auto& s : state) {
    check_ftype(fn, s.first, *s.second, ft, "w");
    check_shape(fn, s.first, *s.second, {{"len(w)", n}});
  }
  return {ft, size_t(n)};
}

void check_finite(const char* fn, const char* name, double v) {
  FUSEDLSTM_CHECK(std::isfinite(v), fn, ": ", name, " must be finite, got ", v);
}

// ============================================================================
// Keras 3.15.1 optimizer steps (issue 25): <rule>_step(w, g, <state>..., *,
// <hyperparameters and per-step scalars>, <the common options below>).
// ============================================================================

// The options every *_step takes (optimizers.h, StepOptions), as given from Python.
#define FUSEDLSTM_COMMON_PARAMS                                                                              \
  const py::object &segments, const py::object &decay, const py::object &decay_mask,                         \
      const std::optional<double>&clipnorm, const std::optional<double>&global_clipnorm,                     \
      const std::optional<double>&clipvalue, const py::object &gradient_accumulator, int accumulation_steps, \
      const py::object &ema, double ema_momentum, bool ema_overwrite
#define FUSEDLSTM_COMMON_FWD                                                                                  \
  segments, decay, decay_mask, clipnorm, global_clipnorm, clipvalue, gradient_accumulator, accumulation_steps, \
      ema, ema_momentum, ema_overwrite
#define FUSEDLSTM_COMMON_ARGS                                                                                 \
  py::arg("segments") = py::none(), py::arg("decay") = py::none(), py::arg("decay_mask") = py::none(),        \
      py::arg("clipnorm") = py::none(), py::arg("global_clipnorm") = py::none(),                              \
      py::arg("clipvalue") = py::none(), py::arg("gradient_accumulator") = py::none(),                        \
      py::arg("accumulation_steps") = 0, py::arg("ema") = py::none(), py::arg("ema_momentum") = 0.0,          \
      py::arg("ema_overwrite") = false

// The checked common options; holds the arrays the pointers point into.
struct Common {
  CArray<int64_t> offsets = null_array<CArray<int64_t>>();
  size_t nvars = 1;
  std::vector<uint8_t> mask;
  bool decay = false;
  double decay_factor = 1;
  double clipnorm = 0, global_clipnorm = 0, clipvalue = 0;
  py::array acc = null_array(), ema = null_array();
  int acc_steps = 0;
  double ema_momentum = 0;
  bool ema_overwrite = false;

  template <class Real> StepOptions<Real> options(const char* fn) {
    StepOptions<Real> o;
    o.offsets = offsets ? offsets.data() : nullptr;
    o.nvars = nvars;
    o.decay = decay;
    o.decay_factor = Real(decay_factor);
    o.decay_mask = mask.empty() ? nullptr : mask.data();
    o.clipnorm = clipnorm;
    o.global_clipnorm = global_clipnorm;
    o.clipvalue = clipvalue;
    o.acc = given(acc) ? inplace<Real>(fn, "gradient_accumulator", acc) : nullptr;
    o.acc_steps = acc_steps;
    o.ema = given(ema) ? inplace<Real>(fn, "ema", ema) : nullptr;
    o.ema_momentum = Real(ema_momentum);
    o.ema_overwrite = ema_overwrite;
    return o;
  }
};

std::optional<double> positive_opt(const char* fn, const char* name, const std::optional<double>& v) {
  if (!v) return v;
  FUSEDLSTM_CHECK(std::isfinite(*v) && *v > 0, fn, ": ", name, " must be a positive finite number or None, got ", *v);
  return v;
}

Common parse_common(const char* fn, size_t n, FType ft, FUSEDLSTM_COMMON_PARAMS) {
  Common c;
  if (!segments.is_none()) {
    const py::array a = req_array(fn, "segments", segments);
    if (!is_int(a))
      throw TypeError(str(fn, ": segments must be an integer array of variable offsets, got ", dtype_name(a)));
    check_ndim(fn, "segments", a, 1, "(nvars + 1,) variable offsets");
    FUSEDLSTM_CHECK(a.shape(0) >= 1, fn, ": segments must hold at least one offset (0), got an empty array");
    c.offsets = as_c<int64_t>(a);
    c.nvars = size_t(a.shape(0)) - 1;
    const int64_t* o = c.offsets.data();
    FUSEDLSTM_CHECK(o[0] == 0 && uint64_t(o[c.nvars]) == uint64_t(n) && o[c.nvars] >= 0, fn,
                    ": segments must run from 0 to n = ", n, " (the length of w), got ", o[0], " ... ", o[c.nvars]);
    for (size_t k = 0; k < c.nvars; ++k)
      FUSEDLSTM_CHECK(o[k] <= o[k + 1], fn, ": segments must be non-decreasing, got segments[", k, "] = ", o[k],
                      " > segments[", k + 1, "] = ", o[k + 1]);
  }
  if (!decay.is_none()) {
    c.decay = true;
    if (py::isinstance<py::str>(decay) || py::isinstance<py::bytes>(decay) || py::isinstance<py::bool_>(decay) ||
        !PyNumber_Check(decay.ptr()))
      throw TypeError(str(fn, ": decay must be a number (the factor 1 - weight_decay·lr) or None, got ",
                          type_name(decay)));
    try {
      c.decay_factor = py::float_(decay).cast<double>();
    } catch (const py::error_already_set& e) {
      throw TypeError(str(fn, ": decay must be a number (the factor 1 - weight_decay·lr) or None, got ",
                          type_name(decay), " (", e.what(), ")"));
    }
    FUSEDLSTM_CHECK(std::isfinite(c.decay_factor), fn, ": decay (the factor 1 - weight_decay·lr) must be finite, got ",
                    c.decay_factor);
  }
  if (!decay_mask.is_none()) {
    FUSEDLSTM_CHECK(c.decay, fn, ": decay_mask was given without decay");
    const py::array a = req_array(fn, "decay_mask", decay_mask);
    c.mask = mask_bytes(fn, "decay_mask", a);
    check_shape(fn, "decay_mask", a, {{"nvars", py::ssize_t(c.nvars)}});
  }
  const auto cn = positive_opt(fn, "clipnorm", clipnorm), gn = positive_opt(fn, "global_clipnorm", global_clipnorm),
             cv = positive_opt(fn, "clipvalue", clipvalue);
  FUSEDLSTM_CHECK(int(bool(cn)) + int(bool(gn)) + int(bool(cv)) <= 1, fn,
                  ": only one of clipnorm, global_clipnorm and clipvalue may be given, got clipnorm=",
                  cn ? str(*cn) : "None", ", global_clipnorm=", gn ? str(*gn) : "None", ", clipvalue=",
                  cv ? str(*cv) : "None");
  c.clipnorm = cn.value_or(0);
  c.global_clipnorm = gn.value_or(0);
  c.clipvalue = cv.value_or(0);
  if (!gradient_accumulator.is_none()) {
    c.acc = inplace_array(fn, "gradient_accumulator", gradient_accumulator);
    check_ftype(fn, "gradient_accumulator", c.acc, ft, "w");
    check_shape(fn, "gradient_accumulator", c.acc, {{"len(w)", py::ssize_t(n)}});
    FUSEDLSTM_CHECK(accumulation_steps >= 1, fn,
                    ": accumulation_steps must be >= 1 with a gradient_accumulator, got ", accumulation_steps);
    c.acc_steps = accumulation_steps;
  } else {
    FUSEDLSTM_CHECK(accumulation_steps == 0, fn, ": accumulation_steps = ", accumulation_steps,
                    " was given without a gradient_accumulator");
  }
  if (!ema.is_none()) {
    c.ema = inplace_array(fn, "ema", ema);
    check_ftype(fn, "ema", c.ema, ft, "w");
    check_shape(fn, "ema", c.ema, {{"len(w)", py::ssize_t(n)}});
  } else {
    FUSEDLSTM_CHECK(!ema_overwrite, fn, ": ema_overwrite=True needs the ema buffer (got None)");
  }
  FUSEDLSTM_CHECK(ema_momentum >= 0 && ema_momentum <= 1, fn, ": ema_momentum must be in [0, 1], got ",
                  ema_momentum);
  c.ema_momentum = ema_momentum;
  c.ema_overwrite = ema_overwrite;
  return c;
}

void check_rate(const char* fn, const char* name, double v, bool closed_top = false) {
  FUSEDLSTM_CHECK(v >= 0 && (closed_top ? v <= 1 : v < 1), fn, ": ", name, " must be in [0, 1", closed_top ? "]" : ")",
                  ", got ", v);
}

void check_nonneg(const char* fn, const char* name, double v) {
  FUSEDLSTM_CHECK(std::isfinite(v) && v >= 0, fn, ": ", name, " must be a finite number >= 0, got ", v);
}

// An optional state buffer: None, or an in-place array like w.
py::array opt_state(const char* fn, const char* name, const py::object& o, FType ft, size_t n) {
  if (o.is_none()) return null_array();
  py::array a = inplace_array(fn, name, o);
  check_ftype(fn, name, a, ft, "w");
  check_shape(fn, name, a, {{"len(w)", py::ssize_t(n)}});
  return a;
}

template <class Real> Real* ptr_opt(const char* fn, const char* name, py::array& a) {
  return given(a) ? inplace<Real>(fn, name, a) : nullptr;
}

// Runs step(n, w, g, <state pointers>..., options, nthreads) for the buffers' dtype without the GIL.
// `state` names and arrays, in the order the step takes them (optional ones may be null arrays).
template <class Real, class Step>
void run_step(const char* fn, py::array& w, const py::array& g, std::initializer_list<std::pair<const char*, py::array*>> state,
              Common& c, Step&& step) {
  Real* wp = inplace<Real>(fn, "w", w);
  Real* sp[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t k = 0;
  for (const auto& s : state) sp[k++] = ptr_opt<Real>(fn, s.first, *s.second);
  const StepOptions<Real> o = c.options<Real>(fn);
  CArray<Real> gc = as_c<Real>(g);
  const int nt = num_threads();
  // Safe without the GIL: the arrays are kept alive by the caller's references and by `c`.
  py::gil_scoped_release nogil;
  step(wp, gc.data(), sp, o, nt);
}

// Checks w, g and the required state buffers; returns dtype and length.
Flat check_step(const char* fn, const py::array& w, const py::array& g,
                std::initializer_list<std::pair<const char*, const py::array*>> state) {
  return check_flat(fn, w, g, state);
}

void adam_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj, const py::object& v_obj,
                  const py::object& vhat_obj, double alpha, double beta_1, double beta_2, double epsilon,
                  FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "adam_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), m = inplace_array(fn, "m", m_obj), v = inplace_array(fn, "v", v_obj);
  const Flat f = check_step(fn, w, g, {{"m", &m}, {"v", &v}});
  py::array vhat = opt_state(fn, "vhat", vhat_obj, f.ft, f.n);
  check_finite(fn, "alpha", alpha);
  check_rate(fn, "beta_1", beta_1);
  check_rate(fn, "beta_2", beta_2);
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const AdamStep h{alpha, beta_1, beta_2, epsilon};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"m", &m}, {"v", &v}, {"vhat", &vhat}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     adam_step<Real>(f.n, wp, gp, s[0], s[1], s[2], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void nadam_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj, const py::object& v_obj,
                   double lr, double u_t, double u_t_1, double u_product_t, double u_product_t_1, double beta_2_power,
                   double beta_1, double beta_2, double epsilon, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "nadam_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), m = inplace_array(fn, "m", m_obj), v = inplace_array(fn, "v", v_obj);
  const Flat f = check_step(fn, w, g, {{"m", &m}, {"v", &v}});
  check_finite(fn, "lr", lr);
  for (auto [name, x] : {std::pair<const char*, double>{"u_t", u_t}, {"u_t_1", u_t_1}, {"u_product_t", u_product_t},
                         {"u_product_t_1", u_product_t_1}, {"beta_2_power", beta_2_power}})
    check_finite(fn, name, x);
  check_rate(fn, "beta_1", beta_1);
  check_rate(fn, "beta_2", beta_2);
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const NadamStep h{lr, beta_1, beta_2, epsilon, u_t, u_t_1, u_product_t, u_product_t_1, beta_2_power};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"m", &m}, {"v", &v}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     nadam_step<Real>(f.n, wp, gp, s[0], s[1], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void adamax_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj,
                    const py::object& u_obj, double lr, double beta_1_power, double beta_1, double beta_2,
                    double epsilon, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "adamax_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), m = inplace_array(fn, "m", m_obj), u = inplace_array(fn, "u", u_obj);
  const Flat f = check_step(fn, w, g, {{"m", &m}, {"u", &u}});
  check_finite(fn, "lr", lr);
  check_finite(fn, "beta_1_power", beta_1_power);
  check_rate(fn, "beta_1", beta_1);
  check_rate(fn, "beta_2", beta_2, true);
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const AdamaxStep h{lr, beta_1, beta_2, epsilon, beta_1_power};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"m", &m}, {"u", &u}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     adamax_step<Real>(f.n, wp, gp, s[0], s[1], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void adagrad_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& s_obj, double lr,
                     double epsilon, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "adagrad_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), s = inplace_array(fn, "accumulator", s_obj);
  const Flat f = check_step(fn, w, g, {{"accumulator", &s}});
  check_finite(fn, "lr", lr);
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const AdagradStep h{lr, epsilon};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"accumulator", &s}}, c,
                   [&](Real* wp, const Real* gp, Real** st, const StepOptions<Real>& o, int nt) {
                     adagrad_step<Real>(f.n, wp, gp, st[0], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void adadelta_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& s_obj,
                      const py::object& d_obj, double lr, double rho, double epsilon, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "adadelta_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), s = inplace_array(fn, "accumulated_grad", s_obj),
            d = inplace_array(fn, "accumulated_delta_var", d_obj);
  const Flat f = check_step(fn, w, g, {{"accumulated_grad", &s}, {"accumulated_delta_var", &d}});
  check_finite(fn, "lr", lr);
  check_rate(fn, "rho", rho, true);
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const AdadeltaStep h{lr, rho, epsilon};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"accumulated_grad", &s}, {"accumulated_delta_var", &d}}, c,
                   [&](Real* wp, const Real* gp, Real** st, const StepOptions<Real>& o, int nt) {
                     adadelta_step<Real>(f.n, wp, gp, st[0], st[1], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void lion_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& m_obj, double lr,
                  double beta_1, double beta_2, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "lion_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), m = inplace_array(fn, "m", m_obj);
  const Flat f = check_step(fn, w, g, {{"m", &m}});
  check_finite(fn, "lr", lr);
  FUSEDLSTM_CHECK(beta_1 > 0 && beta_1 <= 1, fn, ": beta_1 must be in (0, 1] (Keras: else Lion degenerates to SignSGD), got ", beta_1);
  check_rate(fn, "beta_2", beta_2, true);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const LionStep h{lr, beta_1, beta_2};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"m", &m}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     lion_step<Real>(f.n, wp, gp, s[0], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void ftrl_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& s_obj, const py::object& z_obj,
                  double lr, double learning_rate_power, double l1, double l2, double l2_shrinkage, double beta,
                  FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "ftrl_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), s = inplace_array(fn, "accumulator", s_obj),
            z = inplace_array(fn, "linear", z_obj);
  const Flat f = check_step(fn, w, g, {{"accumulator", &s}, {"linear", &z}});
  check_finite(fn, "lr", lr);
  FUSEDLSTM_CHECK(std::isfinite(learning_rate_power) && learning_rate_power <= 0, fn,
                  ": learning_rate_power must be a finite number <= 0, got ", learning_rate_power);
  check_nonneg(fn, "l1_regularization_strength", l1);
  check_nonneg(fn, "l2_regularization_strength", l2);
  check_nonneg(fn, "l2_shrinkage_regularization_strength", l2_shrinkage);
  check_finite(fn, "beta", beta);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const FtrlStep h{lr, learning_rate_power, l1, l2, l2_shrinkage, beta};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"accumulator", &s}, {"linear", &z}}, c,
                   [&](Real* wp, const Real* gp, Real** st, const StepOptions<Real>& o, int nt) {
                     ftrl_step<Real>(f.n, wp, gp, st[0], st[1], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void rmsprop_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& s_obj,
                     const py::object& mom_obj, const py::object& mg_obj, double lr, double rho, double momentum,
                     double epsilon, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "rmsprop_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), s = inplace_array(fn, "velocity", s_obj);
  const Flat f = check_step(fn, w, g, {{"velocity", &s}});
  py::array mom = opt_state(fn, "momentum_buf", mom_obj, f.ft, f.n);
  py::array mg = opt_state(fn, "average_grad", mg_obj, f.ft, f.n);
  check_finite(fn, "lr", lr);
  check_rate(fn, "rho", rho, true);
  check_nonneg(fn, "momentum", momentum);
  FUSEDLSTM_CHECK((momentum > 0) == given(mom), fn, ": momentum = ", momentum,
                  given(mom) ? " does not use the momentum_buf given (pass None when momentum is 0)"
                             : " needs the momentum buffer momentum_buf (got None)");
  check_nonneg(fn, "epsilon", epsilon);
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const RmspropStep h{lr, rho, momentum, epsilon};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"velocity", &s}, {"momentum_buf", &mom}, {"average_grad", &mg}}, c,
                   [&](Real* wp, const Real* gp, Real** st, const StepOptions<Real>& o, int nt) {
                     rmsprop_step<Real>(f.n, wp, gp, st[0], st[1], st[2], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void sgd_step_py(const py::object& w_obj, const py::object& g_obj, const py::object& u_obj, double lr,
                 double momentum, bool nesterov, FUSEDLSTM_COMMON_PARAMS) {
  const char* fn = "sgd_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj);
  const Flat f = check_step(fn, w, g, {});
  py::array u = opt_state(fn, "u", u_obj, f.ft, f.n);
  check_finite(fn, "lr", lr);
  FUSEDLSTM_CHECK(momentum >= 0 && momentum <= 1, fn, ": momentum must be in [0, 1], got ", momentum);
  FUSEDLSTM_CHECK(momentum == 0 || given(u), fn, ": momentum = ", momentum,
                  " needs the momentum buffer u (got None; None is allowed only when momentum == 0)");
  Common c = parse_common(fn, f.n, f.ft, FUSEDLSTM_COMMON_FWD);
  const SgdStep h{lr, momentum, nesterov};
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"u", &u}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     sgd_step<Real>(f.n, wp, gp, momentum == 0 ? nullptr : s[0], h, o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

void accumulate_py(const py::object& w_obj, const py::object& g_obj, const py::object& acc_obj, const py::object& ema,
                   double ema_momentum, bool ema_overwrite) {
  const char* fn = "accumulate_step";
  const py::array g = req_array(fn, "g", g_obj);
  py::array w = inplace_array(fn, "w", w_obj), acc = inplace_array(fn, "gradient_accumulator", acc_obj);
  const Flat f = check_step(fn, w, g, {{"gradient_accumulator", &acc}});
  Common c = parse_common(fn, f.n, f.ft, py::none(), py::none(), py::none(), std::nullopt, std::nullopt, std::nullopt,
                          py::none(), 0, ema, ema_momentum, ema_overwrite);
  auto go = [&](auto tag) {
    using Real = decltype(tag);
    run_step<Real>(fn, w, g, {{"gradient_accumulator", &acc}}, c,
                   [&](Real* wp, const Real* gp, Real** s, const StepOptions<Real>& o, int nt) {
                     accumulate_step<Real>(f.n, wp, gp, s[0], o, nt);
                   });
  };
  if (f.ft == FType::f32) go(float()); else go(double());
}

}  // namespace

void register_optimizers(py::module_& m) {
  // optimizers (issue 25): Keras 3.15.1 steps; see _core.pyi for each one's per-step scalars.
  m.def("adam_step", &adam_step_py, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"),
        py::arg("vhat") = py::none(), py::kw_only(), py::arg("alpha"), py::arg("beta_1") = 0.9,
        py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7, FUSEDLSTM_COMMON_ARGS,
        "Keras 3 Adam/AdamW step (amsgrad when vhat is given), in place.");
  m.def("nadam_step", &nadam_step_py, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"), py::kw_only(),
        py::arg("lr"), py::arg("u_t"), py::arg("u_t_1"), py::arg("u_product_t"), py::arg("u_product_t_1"),
        py::arg("beta_2_power"), py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7,
        FUSEDLSTM_COMMON_ARGS, "Keras 3 Nadam step, in place.");
  m.def("adamax_step", &adamax_step_py, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("u"), py::kw_only(),
        py::arg("lr"), py::arg("beta_1_power"), py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999,
        py::arg("epsilon") = 1e-7, FUSEDLSTM_COMMON_ARGS, "Keras 3 Adamax step, in place.");
  m.def("adagrad_step", &adagrad_step_py, py::arg("w"), py::arg("g"), py::arg("accumulator"), py::kw_only(),
        py::arg("lr"), py::arg("epsilon") = 1e-7, FUSEDLSTM_COMMON_ARGS, "Keras 3 Adagrad step, in place.");
  m.def("adadelta_step", &adadelta_step_py, py::arg("w"), py::arg("g"), py::arg("accumulated_grad"),
        py::arg("accumulated_delta_var"), py::kw_only(), py::arg("lr"), py::arg("rho") = 0.95,
        py::arg("epsilon") = 1e-7, FUSEDLSTM_COMMON_ARGS, "Keras 3 Adadelta step, in place.");
  m.def("lion_step", &lion_step_py, py::arg("w"), py::arg("g"), py::arg("m"), py::kw_only(), py::arg("lr"),
        py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.99, FUSEDLSTM_COMMON_ARGS, "Keras 3 Lion step, in place.");
  m.def("ftrl_step", &ftrl_step_py, py::arg("w"), py::arg("g"), py::arg("accumulator"), py::arg("linear"),
        py::kw_only(), py::arg("lr"), py::arg("learning_rate_power") = -0.5,
        py::arg("l1_regularization_strength") = 0.0, py::arg("l2_regularization_strength") = 0.0,
        py::arg("l2_shrinkage_regularization_strength") = 0.0, py::arg("beta") = 0.0, FUSEDLSTM_COMMON_ARGS,
        "Keras 3 Ftrl step, in place.");
  m.def("rmsprop_step", &rmsprop_step_py, py::arg("w"), py::arg("g"), py::arg("velocity"),
        py::arg("momentum_buf") = py::none(), py::arg("average_grad") = py::none(), py::kw_only(), py::arg("lr"),
        py::arg("rho") = 0.9, py::arg("momentum") = 0.0, py::arg("epsilon") = 1e-7, FUSEDLSTM_COMMON_ARGS,
        "Keras 3 RMSprop step (momentum, centered when average_grad is given), in place.");
  m.def("sgd_step", &sgd_step_py, py::arg("w"), py::arg("g"), py::arg("u") = py::none(), py::kw_only(),
        py::arg("lr"), py::arg("momentum") = 0.0, py::arg("nesterov") = false, FUSEDLSTM_COMMON_ARGS,
        "Keras 3 SGD step (momentum, nesterov), in place.");
  m.def("accumulate_step", &accumulate_py, py::arg("w"), py::arg("g"), py::arg("gradient_accumulator"),
        py::kw_only(), py::arg("ema") = py::none(), py::arg("ema_momentum") = 0.0, py::arg("ema_overwrite") = false,
        "A gradient-accumulation step that does not update: acc += g, then the EMA part, in place.");
}

}  // namespace fusedlstm
