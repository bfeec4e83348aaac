// insn_driver.cpp — calls one kernel of one ISA table a given number of times,
// so that bench/arm64/insn_count.py can count the AArch64 instructions it
// executes under qemu-user (emulated time says nothing about ARM speed;
// instruction counts do say how much work each level does). Not part of the module.
//
//   insn_driver TABLE OP REPS SIZES...
//     TABLE: neon | generic
//     OP:    gemm M N K           C(M,N) = A(M,K)·B(K,N), B unpacked
//            lstm_step B H        one LSTM time step: G = h·U (U packed once,
//                                 outside the repetitions) + the fused cell
//            softmax N C          softmax over N rows of C
//            adam N               one Adam update of N parameters
// One thread: counts per call, not spread over a pool.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "isa/ops.h"

using fusedlstm::Act;
using fusedlstm::KernelOps;

namespace {

std::vector<float> filled(size_t n, unsigned seed, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;  // LCG: deterministic, no <random> in the count
    v[i] = scale * (float(seed >> 8) / float(1u << 24) - 0.5f);
  }
  return v;
}

int usage() {
  std::fprintf(stderr, "usage: insn_driver neon|generic gemm M N K | lstm_step B H | softmax N C | adam N  REPS\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  const std::string table = argv[1], op = argv[2];
  const int reps = std::atoi(argv[3]);
  const KernelOps<float>* k = table == "neon" ? fusedlstm::ops_neon_f32() : fusedlstm::ops_generic_f32();
  if (!k) return usage();
  auto arg = [&](int i) { return i < argc ? std::atoi(argv[i]) : 0; };
  float sink = 0.0f;
  if (op == "gemm") {
    const int M = arg(4), N = arg(5), K = arg(6);
    std::vector<float> A = filled(size_t(M) * K, 1, 1.0f), B = filled(size_t(K) * N, 2, 1.0f), C(size_t(M) * N);
    for (int r = 0; r < reps; ++r) k->gemm(false, false, M, N, K, A.data(), K, B.data(), N, 0.0f, C.data(), N, 1);
    sink = C[0];
  } else if (op == "lstm_step") {
    const int B = arg(4), H = arg(5), G = 4 * H;
    std::vector<float> U = filled(size_t(H) * G, 3, 0.3f), h = filled(size_t(B) * H, 4, 1.0f);
    std::vector<float> c_prev = filled(size_t(B) * H, 5, 1.0f), c(size_t(B) * H), hn(size_t(B) * H);
    std::vector<float> actc(size_t(B) * H), Gm(size_t(B) * G), packed(k->packed_b_size(H, G) + 16);
    k->pack_b(false, H, G, U.data(), G, packed.data());
    for (int r = 0; r < reps; ++r) {
      k->gemm_packed(false, B, G, H, h.data(), H, packed.data(), 0.0f, Gm.data(), G, 1);
      k->lstm_cell_forward(B, H, Gm.data(), G, c_prev.data(), H, c.data(), H, hn.data(), H, actc.data(), H,
                           Act::tanh, Act::sigmoid);
    }
    sink = hn[0];
  } else if (op == "softmax") {
    const int N = arg(4), C = arg(5);
    std::vector<float> z = filled(size_t(N) * C, 6, 8.0f), p(size_t(N) * C);
    for (int r = 0; r < reps; ++r) k->softmax_rows(N, C, z.data(), C, p.data(), C);
    sink = p[0];
  } else if (op == "adam") {
    const size_t n = size_t(arg(4));
    std::vector<float> w = filled(n, 7, 1.0f), g = filled(n, 8, 1.0f), m(n), v(n);
    for (int r = 0; r < reps; ++r) k->adam(n, w.data(), g.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.999f, 1e-7f, 0.1f, 1e-3f);
    sink = w[0];
  } else {
    return usage();
  }
  std::printf("%s %s reps=%d sink=%g\n", table.c_str(), op.c_str(), reps, double(sink));
  return 0;
}
