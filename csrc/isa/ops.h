// ops.h — the contract between the portable algorithms (recurrent.cpp, dense.cpp,
// optimizers.cpp) and the ISA-specific kernels (ops_generic/avx2/avx512/neon.cpp).
//
// Every ISA file fills one KernelOps<float> table; ops_generic.cpp also fills
// KernelOps<double> (scalar, used by the float64 tests and finite differences).
// dispatch.cpp picks one float table once, at module import.
//
// Rules for the ISA files (they are compiled with -mavx2 / -mavx512f ...):
//   * all their code lives in a namespace of their own (FUSEDLSTM_ISA_NS), and they
//     instantiate no std:: templates that portable code also instantiates, so the
//     linker can never fold an AVX-512 copy of an inline function into the
//     generic path;
//   * only plain pointers and ints cross this interface;
//   * no global scratch buffers: callers pass the memory, so concurrent calls
//     from several Python threads are safe;
//   * threads split M or N, never K, so a result is bitwise the same for every
//     thread count (it may differ between ISA levels: summation order and FMA).
#pragma once
#include <cstddef>
#include <cstdint>

#include "isa/optimizer_args.h"

namespace fusedlstm {

// Activation functions the recurrent cells support, for `activation` and
// `recurrent_activation` alike.
//   hard_sigmoid    : Keras 3, relu6(x + 3) / 6
//   hard_sigmoid_k2 : Keras 2, clip(0.2 x + 0.5, 0, 1) (legacy models)
enum class Act : int { tanh = 0, sigmoid = 1, hard_sigmoid = 2, hard_sigmoid_k2 = 3, relu = 4, linear = 5 };

template <class T>
struct KernelOps {
  const char* isa;  // "generic", "avx2", "avx512", "neon"

  // ---- matrix products (row-major) ---------------------------------------
  // C(M,N) = beta*C + op(A)·op(B), beta in {0, 1};
  // op(A) = A (M,K) with row stride lda, or A^T when ta (A stored (K,M));
  // op(B) = B (K,N) with row stride ldb, or B^T when tb (B stored (N,K)).
  // M, N or K may be 0 (K = 0 with beta = 0 zeroes C).
  void (*gemm)(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
               T beta, T* C, int ldc, int nthreads);

  // The recurrent kernel is multiplied at every time step: pack it once per call.
  // packed_b_size(K, N) is the number of T the packed form needs (caller allocates,
  // 64-byte aligned); pack_b writes op(B) into it; gemm_packed is gemm with that B.
  size_t (*packed_b_size)(int K, int N);
  void (*pack_b)(bool tb, int K, int N, const T* B, int ldb, T* packed);
  void (*gemm_packed)(bool ta, int M, int N, int K, const T* A, int lda, const T* packed, T beta,
                      T* C, int ldc, int nthreads);

  // ---- fused LSTM cell, one time step over B rows ------------------------
  // G (B,4H) holds the pre-activations z = x·W + h·U + b in gate order i, f, c, o.
  //   i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)      (ra = rec_act, a = act)
  //   c = f ⊙ c_prev + i ⊙ g
  //   h = o ⊙ a(c)
  // Writes c and h; with actc (training) also a(c) there and the activated gates
  // (i, f, g, o) over G. actc null (inference): G is left as it was (4 stores of 6
  // per vector saved).
  void (*lstm_cell_forward)(int B, int H, T* G, int ldg, const T* c_prev, int ldcp, T* c, int ldc,
                            T* h, int ldh, T* actc, int ldac, Act act, Act rec_act);

  // Backward of the cell above. Inputs: activated gates (B,4H), c_prev, a(c),
  // dh (the total gradient reaching h_t), dc (in: gradient reaching c_t from step t+1;
  // out: gradient reaching c_prev). Writes dZ (B,4H) = dL/dz:
  //   dc_t = dc + dh ⊙ o ⊙ a'(c)           do = dh ⊙ a(c) ⊙ ra'(o)
  //   di = dc_t ⊙ g ⊙ ra'(i)   df = dc_t ⊙ c_prev ⊙ ra'(f)   dg = dc_t ⊙ i ⊙ a'(g)
  //   dc_prev = dc_t ⊙ f
  // Derivatives are taken from the activation outputs (σ' = y(1-y), tanh' = 1-y²,
  // hard sigmoids: slope where 0 < y < 1, relu: y > 0, linear: 1).
  void (*lstm_cell_backward)(int B, int H, const T* gates, int ldg, const T* c_prev, int ldcp,
                             const T* actc, int ldac, const T* dh, int lddh, T* dc, int lddc, T* dZ,
                             int lddz, Act act, Act rec_act);

  // ---- rows of a softmax ---------------------------------------------------
  // probs[n] = exp(z[n] - max z[n]) / Σ exp(...), for N rows of C (in place allowed).
  void (*softmax_rows)(int N, int C, const T* z, int ldz, T* probs, int ldp);

  // ---- column sums, row scatters, one-hot rows -----------------------------
  // Bias and lookup-table gradients, and the one-hot test of every one-hot input:
  // plain loops, here so that they are vectorised for the ISA.
  // out[j] = (add ? out[j] : 0) + Σ_r x[r][j] for `rows` rows (stride ldx) of
  // `cols` columns, each column summed in row order (blocks of rows in T, their
  // sums in double).
  void (*sum_rows)(size_t rows, int cols, const T* x, size_t ldx, T* out, bool add);
  // W[ids[r]][j] += x[r][j] for j < cols and every row r with ids[r] >= 0, in row order;
  // and, when sum is not null, sum_rows(rows, cols, x, ldx, sum, add_sum) in the same pass.
  void (*scatter_add_rows)(size_t rows, int cols, const int32_t* ids, const T* x, size_t ldx, T* W, size_t ldw,
                           T* sum, bool add_sum);
  // If every row of x (rows, V) is all zeros or a single exact 1.0, writes ids
  // (the index of the 1.0, or -1) and returns true; else returns false.
  bool (*onehot_rows)(const T* x, size_t rows, int V, int32_t* ids);
  // The index of the first NaN or ±Inf among x[0..n), or n when all are finite
  // (the input check every fit/predict batch goes through).
  size_t (*first_nonfinite)(const T* x, size_t n);

  // ---- optimizer updates over one flat buffer (Keras 3 formulas) ----------
  // The complements 1-β1, 1-β2 are passed in, formed by the caller in double
  // from the user's β and then rounded to T, as Keras does (1 - self.beta_2 is
  // Python arithmetic): 1 - 0.999f in float is 1.3e-5 (relative) off 0.001f.
  // Adam (order of operations of Keras's PyTorch backend):
  //   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  w -= (m · alpha) / (sqrt(v) + ε)
  //   where alpha = lr·sqrt(1-β2^t)/(1-β1^t) is computed by the caller.
  void (*adam)(size_t n, T* w, const T* g, T* m, T* v, T alpha, T beta1, T beta2, T eps,
               T one_minus_beta1, T one_minus_beta2);
  // SGD: u = μ·u - lr·g; w += u; μ = 0: w -= lr·g (u untouched). Nesterov: sgd_nesterov.
  void (*sgd)(size_t n, T* w, const T* g, T* u, T lr, T momentum);

  // ---- optimizers (issue 25) ------------------------------------------------
  // Keras 3.15.1's BaseOptimizer around the rules, over a run of n elements that
  // lies inside one variable (optimizers.cpp cuts the flat buffer so), and the
  // rules its PyTorch backend runs (keras/src/backend/torch/optimizers/*.py;
  // Ftrl: keras/src/optimizers/ftrl.py). Scalars: isa/optimizer_args.h.
  // Gradient accumulation: acc += g; and on an update step acc = (g + acc)/steps.
  void (*opt_accumulate)(size_t n, T* acc, const T* g);
  void (*opt_average)(size_t n, T* acc, const T* g, T steps);
  // out = the clipped g (see Clip); out may not alias g.
  void (*opt_clip)(size_t n, const T* g, T* out, Clip mode, T a, T b);
  // Weight decay as TorchOptimizer._apply_weight_decay: w *= f, f = 1 - wd·lr.
  void (*opt_scale)(size_t n, T* w, T f);
  // EMA of the weights: avg = m·avg + c·w (c = 1 - m).
  void (*opt_ema)(size_t n, T* avg, const T* w, T m, T c);
  // Adam with amsgrad: m, v as adam; v̂ = max(v̂, v); w -= (m·alpha)/(sqrt(v̂) + ε).
  void (*adam_amsgrad)(size_t n, T* w, const T* g, T* m, T* v, T* vhat, const AdamArgs<T>& a);
  // Nadam: m, v as adam; m̂ = (m·u_{t+1})/(1 - Π_{t+1}) + (g·(1 - u_t))/(1 - Π_t);
  //        v̂ = v/(1 - β2^t); w -= (m̂·lr)/(sqrt(v̂) + ε).
  void (*nadam)(size_t n, T* w, const T* g, T* m, T* v, const NadamArgs<T>& a);
  // Adamax: m = β1·m + (1-β1)·g; u = max(β2·u, |g|); w -= (m·lr)/((u + ε)·(1 - β1^t)).
  void (*adamax)(size_t n, T* w, const T* g, T* m, T* u, const AdamaxArgs<T>& a);
  // Adagrad: s += g²; w -= (g·lr)/sqrt(s + ε).
  void (*adagrad)(size_t n, T* w, const T* g, T* s, const AdagradArgs<T>& a);
  // Adadelta: s = ρ·s + (1-ρ)·g²; δ = -(sqrt(d + ε)·g)/sqrt(s + ε);
  //           d = ρ·d + (1-ρ)·δ²; w += lr·δ.
  void (*adadelta)(size_t n, T* w, const T* g, T* s, T* d, const AdadeltaArgs<T>& a);
  // Lion: c = β1·m + (1-β1)·g; w -= sign(c)·lr (sign(NaN) = 0 as torch.sign); m = β2·m + (1-β2)·g.
  void (*lion)(size_t n, T* w, const T* g, T* m, const LionArgs<T>& a);
  // Ftrl (p = -learning_rate_power): ĝ = g + 2·l2s·w;  s' = s + g²;
  //   z += ĝ - ((s'^p - s^p)/lr)·w;  q = s'^p/lr + 2·l2;  w = (clip(z, -l1, l1) - z)/q;  s = s'.
  void (*ftrl)(size_t n, T* w, const T* g, T* s, T* z, const FtrlArgs<T>& a);
  // RMSprop with momentum and/or centred (mom, mg may be null):
  //   s = ρ·s + (1-ρ)·g²;  d = s + ε;  [mg = ρ·mg + (1-ρ)·g;  d = d - mg²];  d = sqrt(d);
  //   inc = (g·lr)/d;  [mom = μ·mom + inc;  w -= mom]  else  w -= inc.
  void (*rmsprop_full)(size_t n, T* w, const T* g, T* s, T* mom, T* mg, const RmspropArgs<T>& a);
  // Nesterov SGD in torch_sgd.py's order: u = μ·u - lr·g; w = (w - lr·g) + μ·u.
  void (*sgd_nesterov)(size_t n, T* w, const T* g, T* u, T lr, T momentum);

  // ---- bfloat16 GEMM, portable level (mixed precision, issue #22) ----------
  // gemm / packed_b_size / pack_b / gemm_packed with both operands rounded to
  // bfloat16 (isa/bf16_impl.h) as they are packed, products summed in float:
  // the oracle of the bfloat16 levels and their fallback (isa/gemm_ops.h).
  // Null in the double table.
  void (*gemm_bf16)(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                    T beta, T* C, int ldc, int nthreads);
  size_t (*packed_b_size_bf16)(int K, int N);
  void (*pack_b_bf16)(bool tb, int K, int N, const T* B, int ldb, T* packed);
  void (*gemm_packed_bf16)(bool ta, int M, int N, int K, const T* A, int lda, const T* packed, T beta,
                           T* C, int ldc, int nthreads);

  // ---- GRU and SimpleRNN cells, one time step over B rows -----------------
  // Keras 3 GRUCell, gate order z, r, h along 3H; ra = rec_act, a = act; a_in =
  // h_prev ⊙ recurrent-dropout mask is what multiplies U. Derivatives are taken
  // from activation outputs, as in lstm_cell_backward.
  // reset_after=True: Z (B,3H) = x·W + b_in, R (B,3H) = a_in·U, b_rec (3H) or null:
  //   z = ra(Z_z + (R_z + b_z))   r = ra(Z_r + (R_r + b_r))   rh = R_h + b_h
  //   hh = a(Z_h + r ⊙ rh)        h = z ⊙ h_prev + (1 - z) ⊙ hh
  // Overwrites Z with (z, r, hh); writes h and rh (rh may be null: inference).
  void (*gru_cell_forward)(int B, int H, T* Z, int ldz, const T* R, int ldr, const T* b_rec, const T* h_prev,
                           int ldhp, T* h, int ldh, T* rh, int ldrh, Act act, Act rec_act);
  // Its backward, from gates (z, r, hh), rh, h_prev and dh (total gradient reaching h):
  //   gz = dh ⊙ (h_prev - hh) ⊙ ra'(z)   gh = dh ⊙ (1 - z) ⊙ a'(hh)   gr = gh ⊙ rh ⊙ ra'(r)
  //   dZ = (gz, gr, gh) (of x·W + b_in)   dZr = (gz, gr, gh ⊙ r) (of a_in·U + b_rec)
  //   dh_prev = dh ⊙ z (the direct path; the caller adds (dZr·U^T) ⊙ mask)
  void (*gru_cell_backward)(int B, int H, const T* gates, int ldg, const T* rh, int ldrh, const T* h_prev,
                            int ldhp, const T* dh, int lddh, T* dZ, int lddz, T* dZr, int lddzr, T* dh_prev,
                            int lddhp, Act act, Act rec_act);
  // reset_after=False, after Z_zr += a_in·U_zr: z = ra(Z_z), r = ra(Z_r) in place; q = r ⊙ a_in.
  void (*gru_gates_forward)(int B, int H, T* Z, int ldz, const T* a_in, int lda, T* q, int ldq, Act rec_act);
  // ... then after Z_h += q·U_h: hh = a(Z_h) in place; h = z ⊙ h_prev + (1 - z) ⊙ hh.
  void (*gru_output_forward)(int B, int H, T* Z, int ldz, const T* h_prev, int ldhp, T* h, int ldh, Act act);
  // Backward of gru_output_forward: dZ_z = gz, dZ_h = gh (as above), dh_prev = dh ⊙ z.
  void (*gru_output_backward)(int B, int H, const T* gates, int ldg, const T* h_prev, int ldhp, const T* dh,
                              int lddh, T* dZ, int lddz, T* dh_prev, int lddhp, Act act, Act rec_act);
  // Backward of q = r ⊙ a_in, given dq = dZ_h·U_h^T: dZ_r = dq ⊙ a_in ⊙ ra'(r); dq ⊙ r -> dq (in place).
  void (*gru_gates_backward)(int B, int H, const T* gates, int ldg, const T* a_in, int lda, T* dq, int lddq, T* dZ,
                             int lddz, Act rec_act);
  // SimpleRNN: Z (B,H) = x·W + b + a_in·U; h = a(Z), written to h and over Z.
  void (*rnn_cell_forward)(int B, int H, T* Z, int ldz, T* h, int ldh, Act act);
  // dZ = dh ⊙ a'(h), from the forward's output h.
  void (*rnn_cell_backward)(int B, int H, const T* hout, int ldo, const T* dh, int lddh, T* dZ, int lddz, Act act);
};

// Tables, one per ISA file. Null when the file was not built (another architecture).
const KernelOps<float>* ops_generic_f32();
const KernelOps<double>* ops_generic_f64();
const KernelOps<float>* ops_avx2_f32();
const KernelOps<float>* ops_avx512_f32();
const KernelOps<float>* ops_neon_f32();

// The float table chosen at import (FUSEDLSTM_ISA, or the best level the CPU has), and the
// double one (always generic).
const KernelOps<float>& ops_f32();
const KernelOps<double>& ops_f64();
template <class T> const KernelOps<T>& ops();
template <> inline const KernelOps<float>& ops<float>() { return ops_f32(); }
template <> inline const KernelOps<double>& ops<double>() { return ops_f64(); }

}  // namespace fusedlstm
