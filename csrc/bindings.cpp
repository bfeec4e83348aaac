// bindings.cpp — the fusedlstm._core module: picks the kernels' instruction set
// at import, maps the C++ error types to Python exceptions, and registers each
// area's functions (bind_lstm.cpp, bind_gru.cpp, bind_simple_rnn.cpp, bind_conv1d.cpp,
// bind_dense.cpp, bind_gemm.cpp, bind_optimizers.cpp, bind_checks.cpp).
// The Python-visible API is documented in python/fusedlstm/_core.pyi.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "block_cache.h"
#include "common.h"
#include "dispatch.h"
#include "precision.h"
#include "threads.h"

#ifndef FUSEDLSTM_VERSION
#error "FUSEDLSTM_VERSION must come from CMake (python/fusedlstm/_version.py)"
#endif
#ifndef FUSEDLSTM_COMPILER
#define FUSEDLSTM_COMPILER "unknown"
#endif

namespace py = pybind11;

namespace fusedlstm {
void register_lstm(py::module_& m);
void register_gru(py::module_& m);
void register_simple_rnn(py::module_& m);
void register_conv1d(py::module_& m);
void register_dense(py::module_& m);
void register_gemm(py::module_& m);
void register_optimizers(py::module_& m);
void register_checks(py::module_& m);
void register_packed_recurrent(py::module_& m);
void register_stream(py::module_& m);
}  // namespace fusedlstm

PYBIND11_MODULE(_core, m) {
  using namespace fusedlstm;
  // Chosen once here, with the GIL held, never lazily from a kernel thread. A bad
  // FUSEDLSTM_ISA or FUSEDLSTM_BF16 throws std::invalid_argument, which fails the
  // import with its message.
  init_dispatch();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      py::set_error(PyExc_TypeError, e.what());
    } catch (const OutOfMemory& e) {
      py::set_error(PyExc_MemoryError, e.what());
    }
  });

  m.doc() = "fusedlstm's C++ kernels (private; use the public API in fusedlstm).";
  m.attr("__version__") = FUSEDLSTM_VERSION;

  m.def(
      "build_info",
      [] {
        py::dict d;
        d["version"] = FUSEDLSTM_VERSION;
        d["isa"] = active_isa();
        d["isa_available"] = available_isas();
        d["threads"] = num_threads();
        d["default_threads"] = default_num_threads();
        d["compiler"] = FUSEDLSTM_COMPILER;
        d["cpu"] = cpu_model();
        d["buffer_cache_bytes"] = block_cache_bytes();
        d["bf16_level"] = active_bf16_level();
        d["bf16_levels"] = available_bf16_levels();
        d["bf16_rule"] = bf16_rule();
        return d;
      },
      "{'version', 'isa' (in use), 'isa_available' (best last), 'threads', 'default_threads', 'compiler', 'cpu', "
      "'buffer_cache_bytes', 'bf16_level' (in use), 'bf16_levels' (best last), 'bf16_rule'}.");
  m.def("clear_buffer_cache", &block_cache_clear,
        "Frees the large buffers kept for reuse between kernel calls; returns the bytes freed.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads the kernels may use (n >= 1). Results do not depend on it.");
  m.def("get_num_threads", &num_threads, "Threads the kernels use.");

  register_lstm(m);
  register_packed_recurrent(m);
  register_gru(m);
  register_simple_rnn(m);
  register_conv1d(m);
  register_dense(m);
  register_gemm(m);
  register_optimizers(m);
  register_checks(m);
  register_stream(m);
}
