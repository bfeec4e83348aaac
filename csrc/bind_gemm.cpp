// bind_gemm.cpp — the raw GEMM levels, for tests and benchmarks: gemm_bf16 (one
// bfloat16 level, named, without matmul's size rule), and pack_b / gemm_packed,
// the recurrent kernels' route (B packed once per sequence, multiplied at
// every step) on any level, float32 included. The library's own products go
// through matmul and the fused kernels, never through these.
#include <memory>
#include <string>

#include "bind_util.h"
#include "dispatch.h"

namespace fusedlstm {
namespace {

constexpr const char* kGemmBf16 = "gemm_bf16";
constexpr const char* kPackB = "pack_b";
constexpr const char* kGemmPacked = "gemm_packed";

// The level named by level_obj: a bfloat16 level available here, or
// "float32" when allow_f32; None is the bfloat16 level in use.
const GemmOps& level_ops(const char* fn, const py::object& level_obj, bool allow_f32) {
  if (level_obj.is_none()) return gemm_ops_bf16();
  if (!py::isinstance<py::str>(level_obj))
    throw TypeError(str(fn, ": level must be a str or None, got ", type_name(level_obj)));
  const std::string level = level_obj.cast<std::string>();
  if (allow_f32 && level == "float32") return gemm_ops_f32();
  if (const GemmOps* ops = gemm_ops_bf16_level(level)) return *ops;
  std::string avail = allow_f32 ? "float32" : "";
  for (const auto& l : available_bf16_levels()) avail += (avail.empty() ? "" : ", ") + l;
  throw std::invalid_argument(str(fn, ": level must be one of the levels available here (", avail, "), got '",
                                  level, "'"));
}

// op(B) packed for one level's gemm_packed; immutable once made, so concurrent
// products may share it.
struct PackedB {
  const GemmOps* ops = nullptr;
  int K = 0, N = 0;
  Buffer<float> data;  // ops->packed_b_size(K, N) floats
  size_t nbytes() const { return data.nbytes(); }
};

std::unique_ptr<PackedB> pack(const char* fn, const GemmOps& ops, const py::array& b, bool tb, int K, int N) {
  const size_t floats = ops.packed_b_size(K, N);
  check_memory(fn, mul_size(floats, sizeof(float)));
  CArray<float> bc = as_c<float>(b);
  auto p = std::make_unique<PackedB>();
  p->ops = &ops, p->K = K, p->N = N;
  p->data.reset(floats);
  {
    // Safe without the GIL: b (or its copy) is kept alive by this frame, p is not shared yet.
    py::gil_scoped_release nogil;
    FpModeGuard fp_guard;
    ops.pack_b(tb, K, N, bc.data(), tb ? K : N, p->data.data());
  }
  return p;
}

// C = [C +] op(a)·(packed B) on pb's level.
py::array multiply(const char* fn, const py::array& a, bool ta, const PackedB& pb, const py::object& out_obj,
                   bool accumulate) {
  MatmulArgs m;
  m.a = a, m.ta = ta, m.M = as_int(fn, "M", size_t(ta ? a.shape(1) : a.shape(0))), m.N = pb.N, m.K = pb.K;
  py::array out = matmul_out<float>(fn, m, out_obj, accumulate);
  CArray<float> ac = as_c<float>(a);
  float* C = static_cast<float*>(out.mutable_data());
  const int nt = num_threads();
  {
    // Safe without the GIL: a (or its copy), out and pb (owned by the caller's
    // reference) stay alive; pb is only read.
    py::gil_scoped_release nogil;
    FpModeGuard fp_guard;
    pb.ops->gemm_packed(ta, m.M, m.N, m.K, ac.data(), ta ? m.M : m.K, pb.data.data(), accumulate ? 1.0f : 0.0f, C,
                        m.N, nt);
  }
  return out;
}

void require_float32(const char* fn, const char* name, FType ft) {
  if (ft != FType::f32) throw TypeError(str(fn, ": ", name, " must be float32, got ", ftype_name(ft)));
}

py::array gemm_bf16_py(const py::object& a_obj, const py::object& b_obj, bool ta, bool tb, const py::object& out_obj,
                       bool accumulate, const py::object& level_obj, bool packed) {
  const GemmOps& ops = level_ops(kGemmBf16, level_obj, false);
  const MatmulArgs m = matmul_args(kGemmBf16, a_obj, b_obj, ta, tb);
  require_float32(kGemmBf16, "a and b", m.ft);
  py::array out = matmul_out<float>(kGemmBf16, m, out_obj, accumulate);
  if (packed) return multiply(kGemmBf16, m.a, ta, *pack(kGemmBf16, ops, m.b, tb, m.K, m.N), out, accumulate);
  CArray<float> ac = as_c<float>(m.a), bc = as_c<float>(m.b);
  float* C = static_cast<float*>(out.mutable_data());
  const int nt = num_threads();
  {
    // Safe without the GIL: the operands (or their copies) and out are kept alive by this frame.
    py::gil_scoped_release nogil;
    FpModeGuard fp_guard;
    ops.gemm(ta, tb, m.M, m.N, m.K, ac.data(), ta ? m.M : m.K, bc.data(), tb ? m.K : m.N, accumulate ? 1.0f : 0.0f,
             C, m.N, nt);
  }
  return out;
}

std::unique_ptr<PackedB> pack_b_py(const py::object& b_obj, bool tb, const py::object& level_obj) {
  const GemmOps& ops = level_ops(kPackB, level_obj, true);
  const py::array b = req_array(kPackB, "b", b_obj);
  require_float32(kPackB, "b", float_type(kPackB, "b", b));
  check_ndim(kPackB, "b", b, 2, tb ? "(N, K) (trans_b)" : "(K, N)");
  const int K = as_int(kPackB, "K", size_t(tb ? b.shape(1) : b.shape(0)));
  const int N = as_int(kPackB, "N", size_t(tb ? b.shape(0) : b.shape(1)));
  return pack(kPackB, ops, b, tb, K, N);
}

py::array gemm_packed_py(const py::object& a_obj, const py::object& b_obj, bool ta, const py::object& out_obj,
                         bool accumulate) {
  const py::array a = req_array(kGemmPacked, "a", a_obj);
  if (!py::isinstance<PackedB>(b_obj))
    throw TypeError(str(kGemmPacked, ": b must be a PackedB made by pack_b, got ", type_name(b_obj)));
  const PackedB& pb = b_obj.cast<const PackedB&>();
  require_float32(kGemmPacked, "a", float_type(kGemmPacked, "a", a));
  check_ndim(kGemmPacked, "a", a, 2, ta ? "(K, M) (trans_a)" : "(M, K)");
  const py::ssize_t M = ta ? a.shape(1) : a.shape(0), K = ta ? a.shape(0) : a.shape(1);
  FUSEDLSTM_CHECK(K == pb.K, kGemmPacked, ": op(a) is (M, K) = (", M, ", ", K, ") but the packed b is (K, N) = (",
                  pb.K, ", ", pb.N, "): the inner dimensions differ (a ", shape_str(a), ", trans_a=",
                  ta ? "True" : "False", ")");
  return multiply(kGemmPacked, a, ta, pb, out_obj, accumulate);
}

}  // namespace

void register_gemm(py::module_& m) {
  m.def("gemm_bf16", &gemm_bf16_py, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none(), py::arg("accumulate") = false,
        py::arg("level") = py::none(), py::arg("packed") = false,
        "op(a)·op(b) on one bfloat16 GEMM level, without the size rule (tests, benchmarks). See _core.pyi.");
  py::class_<PackedB>(m, "PackedB", "op(b) packed by pack_b for one GEMM level's gemm_packed.")
      .def_readonly("K", &PackedB::K)
      .def_readonly("N", &PackedB::N)
      .def_property_readonly("level", [](const PackedB& p) { return std::string(p.ops->name); })
      .def_property_readonly("nbytes", &PackedB::nbytes)
      .def("__repr__", [](const PackedB& p) {
        return str("<PackedB level=", p.ops->name, " K=", p.K, " N=", p.N, " nbytes=", p.nbytes(), ">");
      });
  m.def("pack_b", &pack_b_py, py::arg("b"), py::kw_only(), py::arg("trans_b") = false, py::arg("level") = py::none(),
        "op(b) packed once for gemm_packed on a level ('float32' or a bfloat16 level). See _core.pyi.");
  m.def("gemm_packed", &gemm_packed_py, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("out") = py::none(), py::arg("accumulate") = false,
        "op(a)·B for a PackedB from pack_b, on the level it was packed for. See _core.pyi.");
}

}  // namespace fusedlstm
