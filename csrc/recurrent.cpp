// recurrent.cpp — the sequence driver every recurrent cell runs in (see recurrent.h),
// and its instantiation for the LSTM, GRU and SimpleRNN cells.
//
// Layout. Everything per step is time-major in processing order s (s = t, or
// T-1-t with go_backwards), so step s's rows are one contiguous (B, ·) block:
// the projection Z = X·W + b of all steps is one GEMM with M = T·B, the step's
// products with U and its cell read and write whole blocks, and the backward's
// weight gradients dU = Hprev^T·dZ and dW = X^T·dZ are one GEMM each with K = T·B.
//
// Products. The driver's GEMMs have one call site each, named for what they
// compute: input_projection (X·W), the step's products with the packed U
// (PackedRecurrent::times_u / times_ut, recurrent_step.h), recurrent_weight_grad
// (A^T·dZ), input_weight_grad (X^T·dZ) and input_grad (dZ·W^T). Each product
// kind gets its GEMM once per call from gemm_fns_for(precision, full shape)
// (precision.h): float32, or bfloat16 operands summed in float32 where the size
// rule says bfloat16 pays; the cells never see the difference.
//
// Masks (Keras semantics). A masked step keeps the state: h_s = h_{s-1} (and
// c_s = c_{s-1}). Its output is the previous output, which starts as zeros (not
// h0); since h only changes at real steps, that is h_{s-1} once the row has had
// a real step and 0 before, so no separate output stream is kept. Backward is
// the exact gradient of that: at a masked step dZ = 0, the state gradients pass
// through unchanged, and the step's output gradient joins dh (reaching the last
// real step's h) if the row has had a real step, else it is dropped.
//
// Inference keeps no per-step state: Z is computed in chunks of steps (one GEMM
// per chunk, a few MiB) or, on the lookup path, gathered step by step by the
// thread that reads it; the state lives in ping-pong buffers.
#include "recurrent.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "cell_gru.h"
#include "cell_lstm.h"
#include "cell_simple_rnn.h"
#include "onehot.h"
#include "recurrent_step.h"

namespace fusedlstm {
namespace {

// Z chunk size in inference: large enough for an efficient GEMM, small enough
// to stay in cache between the projection and the steps that read it.
constexpr size_t kChunkBytes = size_t(4) << 20;
constexpr int kMinChunkRows = 256;

const char* forward_name(CellKind k) {
  return k == CellKind::lstm ? "lstm_forward" : k == CellKind::gru ? "gru_forward" : "simple_rnn_forward";
}

// Step s reads time index t(s).
inline int time_of(int s, int T, bool backwards) { return backwards ? T - 1 - s : s; }

// ---- the time loop's row blocks -------------------------------------------
// The rows of a batch are independent recurrences: with one block of rows per
// thread, each thread runs the whole time loop on its rows with no
// synchronisation at all, where splitting each step's GEMM and cell across the
// threads costs two barriers per step (a step of a small model takes about as
// long as they do; in chars-seq, H = 256, they still cost 5-10%). Each block then
// reads all of U every step, which pays when U stays in a core's L2 or the block
// has the rows to amortise streaming it from L3. Otherwise (B = 32, H = 1024:
// 16 MB of U for 16 rows, 12% slower measured) the rows stay together and the
// GEMM's columns are split, so each thread streams only its part of U (inference
// splits the units instead where the step is large: unit_split below).
// A row's arithmetic is the same in either case (the GEMM never splits K), so
// results do not depend on this choice.
constexpr int kMinBlockRows = 4;            // fewer rows per thread: the GEMM tile runs mostly empty
constexpr double kMinLoopMacs = 1 << 16;    // a smaller whole loop is not worth waking a thread
constexpr double kL2Elements = 1 << 18;     // U (H x G floats) up to 1 MB: L2-resident
constexpr int kStreamRows = 32;             // rows per block that amortise streaming U from L3

int recurrence_blocks(int B, int T, int H, int G, int nt) {
  const double step = double(B) * H * G, u = double(H) * G;
  const int blocks = std::min(nt, B / kMinBlockRows);
  if (blocks <= 1 || step * T < kMinLoopMacs) return 1;
  if (u > kL2Elements && B / blocks < kStreamRows) return 1;
  return blocks;
}

inline int block_begin(int B, int blocks, int i) { return int(int64_t(B) * i / blocks); }

// ---- the unit split (inference) ------------------------------------------------
// Where row blocks do not pay (recurrence_blocks gives 1: too few rows per thread
// for the size of U), the step is shared by units instead of by the GEMM's
// columns: thread j owns units [u_j, u_j+1) with all their gate columns
// (UnitSplit, recurrent_step.h), runs its part of the step's product (all B rows,
// its kG·units columns of U, so it reads only its slice of U) and the cell on its
// units, and the step ends with one join so that h_s is whole before step s+1
// reads it. The column-split GEMM it replaces takes two joins per step (product,
// then cell) and runs the cell of a few rows on one thread.
// Measured (AMD EPYC Zen 4, 2 threads, load ~2.5, ms per inference forward,
// median, GEMM column split -> unit split):
//   B=32 T=200 H=1024 (xlarge)   1439 -> 1333 (1.08x)   part 67M MACs per step
//   B=32 T=50  H=512             39.8 -> 38.2 (1.04x)   part 16.7M
//   B=2  T=50  H=512             5.58 -> 5.59 (1.00x)   part 1M
//   B=1  T=20  H=1024            9.57 -> 12.1 (0.79x)   part 2M
// and where row blocks run, the split lost to them: chars-seq (B=128, H=256)
// 15.1 -> 16.0 (0.94x), seq2seq (B=21, H=150) 0.94x, chars (H=64) 0.73x: each
// block streaming all of U is not what limits those (one thread on 64 rows of
// chars-seq runs at numpy sgemm's per-core rate), the per-step join is.
// Inference only: training keeps the gates cache in the natural layout its
// backward reads. Float32 only (the bfloat16 level is chosen per product shape;
// a part's shape could choose another). A row's arithmetic is the same in every
// split (the GEMM never splits K, the cell is elementwise), so the bits are too.
constexpr double kMinPartMacs = 1 << 23;  // per step and part: below, the per-step join does not pay
constexpr int kSplitCols = 32;            // part boundaries on multiples of this many gate columns (NR)

bool cell_splits(CellKind cell) {
  return cell == CellKind::lstm ? LstmCell::kUnitSplit
         : cell == CellKind::gru ? GruCell::kUnitSplit
                                 : SimpleRnnCell::kUnitSplit;
}

UnitSplit unit_split(bool splits, int B, int T, int H, int kG, int nt, const RnnOptions& opt, bool inference,
                     bool rec_mask) {
  UnitSplit sp;
  if (!splits || !inference || rec_mask || opt.precision != Precision::float32 || nt < 2) return sp;
  if (recurrence_blocks(B, T, H, kG * H, nt) > 1) return sp;
  const int q = std::max(1, kSplitCols / kG);  // units per boundary step
  const int parts = std::min({nt, kMaxParts, H / q});
  if (parts < 2 || double(B) * H * kG * H / parts < kMinPartMacs) return sp;
  sp.parts = parts;
  for (int j = 0; j <= parts; ++j) sp.u[j] = j == parts ? H : int((int64_t(H) * j / parts + q / 2) / q * q);
  return sp;
}

// ---- the products outside the time loop --------------------------------------
// Each takes the GEMM its product kind was given for the call (gemm_fns_for with
// the kind's full shape, precision.h): float32, or bfloat16 operands with float32
// sums. Gradients are summed into float32 (add: beta = 1 onto the float32 C).
// Z (rows, G) = beta·Z + X (rows, I) · W
template <class Real>
void input_projection(const GemmFns<Real>& mm, int rows, int G, int I, const Real* X, const Real* W, Real beta,
                      Real* Z, int nt) {
  mm.gemm(false, false, rows, G, I, X, I, W, G, beta, Z, G, nt);
}
// dU[:, col0 : col0+n] (H, n) = [dU +] A^T·D over all M = T·B rows (A (M,H), D (M,n) of stride ldd)
template <class Real>
void recurrent_weight_grad(Precision p, int M, int H, int G, const Segment& seg, const Real* A, const Real* D,
                           bool add, Real* dU, int nt) {
  gemm_fns_for<Real>(p, H, seg.n, M).gemm(true, false, H, seg.n, M, A, H, D + seg.col0, G, Real(add),
                                          dU + seg.col0, G, nt);
}
// dW (I, G) = [dW +] X^T·dZ over all M rows
template <class Real>
void input_weight_grad(Precision p, int M, int I, int G, const Real* X, const Real* dZ, bool add, Real* dW,
                       int nt) {
  gemm_fns_for<Real>(p, I, G, M).gemm(true, false, I, G, M, X, I, dZ, G, Real(add), dW, G, nt);
}
// dX (M, I) = dZ·W^T
template <class Real>
void input_grad(Precision p, int M, int I, int G, const Real* dZ, const Real* W, Real* dX, int nt) {
  gemm_fns_for<Real>(p, M, I, G).gemm(false, true, M, I, G, dZ, G, W, G, Real(0), dX, I, nt);
}

// Columns [c0, c0+n) of one Z row on the lookup path: W[id] + b (id -1: b alone).
template <class Real>
inline void lookup_row(const Real* W, const Real* b, int G, int id, int c0, int n, Real* z) {
  const Real* w = id >= 0 ? W + size_t(id) * G + c0 : nullptr;
  if (b) b += c0;
  if (w && b)
    for (int j = 0; j < n; ++j) z[j] = w[j] + b[j];
  else if (w)
    std::memcpy(z, w, sizeof(Real) * n);
  else if (b)
    std::memcpy(z, b, sizeof(Real) * n);
  else
    std::memset(z, 0, sizeof(Real) * n);
}

// ---- input projection: Z rows of steps [s0, s0+n) ---------------------------
// Dense: xtm (n,B,I) = x[:, t(s), :] then Z = b + xtm·W (one GEMM).
// Lookup: Z[s,b] = W[id] + b (id -1: b alone).
// xw: the GEMM of X·W, decided once per call for all T·B rows (so every chunk
// of an inference call runs on the same level).
template <class Real>
void project(const GemmFns<Real>& xw, const RnnInputs<Real>& in, int G, const RnnOptions& opt,
             const int32_t* ids_tm, int s0, int n, Real* xtm, Real* Z, int nt) {
  const int B = in.B, T = in.T, I = in.I;
  const int rows = n * B;
  if (ids_tm) {
    parallel_rows(rows, size_t(rows) * G, nt, [&](int r0, int r1) {
      for (int r = r0; r < r1; ++r) lookup_row(in.W, in.b, G, ids_tm[size_t(s0) * B + r], 0, G, Z + size_t(r) * G);
    });
    return;
  }
  parallel_rows(rows, size_t(rows) * I, nt, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const int s = s0 + r / B, b = r % B;
      std::memcpy(xtm + size_t(r) * I, in.x + (size_t(b) * T + time_of(s, T, opt.go_backwards)) * I,
                  sizeof(Real) * I);
      if (in.b) std::memcpy(Z + size_t(r) * G, in.b, sizeof(Real) * G);
    }
  });
  input_projection(xw, rows, G, I, xtm, in.W, in.b ? Real(1) : Real(0), Z, nt);
}

// Token ids (B,T) -> time-major (T,B) in processing order, checking [-1, V).
template <class Int>
void ids_to_time_major(const char* fn, const Int* ids, int B, int T, int V, bool backwards, int32_t* ids_tm) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const Int v = ids[size_t(b) * T + t];
      if (v < Int(-1) || v >= Int(V))
        throw std::invalid_argument(str(fn, ": x[", b, ", ", t, "] = ", +v, " is not a token id of W with V = ", V,
                                        " rows (ids must be in [-1, ", V, "))"));
      ids_tm[size_t(time_of(t, T, backwards)) * B + b] = int32_t(v);
    }
}

// ============================================================================
// Forward
// ============================================================================
// Per step s (processing order), with r the recurrent-dropout mask (1 if none):
//   a = h_{s-1} ⊙ r;  the cell's step from Z_s, a, h_{s-1} (and c_{s-1})
//   masked row: h_s = h_{s-1} (c_s = c_{s-1})
//   y_s = h_s for real rows; for masked rows h_s once the row has had a real
//         step, else 0 (always 0 with zero_output_for_mask)
template <class Cell, class Real>
std::unique_ptr<RnnCache<Real>> forward(const RnnInputs<Real>& in, const RnnOptions& opt,
                                        const RnnOutputs<Real>& out, int nt) {
  FpModeGuard fp_guard;
  const KernelOps<Real>& k = ops<Real>();
  const char* fn = forward_name(Cell::kind);
  const int B = in.B, T = in.T, H = in.H, G = Cell::kGates * H;
  const int I = in.I;
  const size_t BH = size_t(B) * H, BG = size_t(B) * G, TB = size_t(T) * B;
  const bool rec = in.rec_mask != nullptr;
  const bool aux = Cell::has_aux(opt);
  const int scols = Cell::scratch_cols(opt, H);

  // Lookup path: token ids, or a dense x whose rows are all one-hot or zero.
  Buffer<int32_t> ids_tm;  // (T,B)
  if (in.ids32 || in.ids64) {
    ids_tm.reset(TB);
    if (in.ids32)
      ids_to_time_major(fn, in.ids32, B, T, I, opt.go_backwards, ids_tm.data());
    else
      ids_to_time_major(fn, in.ids64, B, T, I, opt.go_backwards, ids_tm.data());
  } else if (opt.onehot_auto) {
    Buffer<int32_t> ids_bt(TB);  // (B,T)
    std::atomic<bool> onehot{true};
    parallel_rows(int(TB), TB * size_t(I), nt, [&](int r0, int r1) {
      if (onehot.load(std::memory_order_relaxed) &&
          !onehot_ids(in.x + size_t(r0) * I, size_t(r1 - r0), I, ids_bt.data() + r0))
        onehot.store(false, std::memory_order_relaxed);
    });
    if (onehot.load()) {
      ids_tm.reset(TB);
      ids_to_time_major(fn, ids_bt.data(), B, T, I, opt.go_backwards, ids_tm.data());
    }
  }
  const bool lookup = ids_tm.size() > 0;

  // Mask in processing order, and each row's first real step (T if none).
  Buffer<uint8_t> mask_tm;  // (T,B)
  std::vector<int> first_real;
  if (in.mask) {
    mask_tm.reset(TB);
    first_real.assign(B, T);
    for (int s = 0; s < T; ++s)
      for (int b = 0; b < B; ++b) {
        const uint8_t m = in.mask[size_t(b) * T + time_of(s, T, opt.go_backwards)] ? 1 : 0;
        mask_tm.data()[size_t(s) * B + b] = m;
        if (m && first_real[b] == T) first_real[b] = s;
      }
  }

  std::unique_ptr<RnnCache<Real>> cache;
  if (opt.training) {
    cache = std::make_unique<RnnCache<Real>>();
    RnnCache<Real>& C = *cache;
    C.cell = Cell::kind;
    C.B = B, C.T = T, C.H = H, C.I = I, C.G = G;
    C.lookup = lookup;
    C.dense_input = in.x != nullptr;
    C.has_bias = in.b != nullptr;
    C.has_rec_bias = in.b_rec != nullptr;
    C.opt = opt;
    C.W = in.W, C.U = in.U;
    C.gates.reset(TB * G);
    if constexpr (Cell::kHasC) C.c.reset((TB + B) * H);
    if (aux) C.aux.reset(TB * H);
    C.hprev.reset(TB * H);
    if (Cell::kNeedsRawH && rec) C.hraw.reset(TB * H);
    if (lookup)
      C.ids = std::move(ids_tm);
    else
      C.x.reset(TB * I);
    if (in.mask) {
      C.mask = std::move(mask_tm);
      C.first_real = first_real;
    }
    if (rec) {
      C.rec_mask.reset(BH);
      std::memcpy(C.rec_mask.data(), in.rec_mask, sizeof(Real) * BH);
    }
  }
  const int32_t* ids = cache ? (lookup ? cache->ids.data() : nullptr) : (lookup ? ids_tm.data() : nullptr);
  const uint8_t* mask = !in.mask ? nullptr : cache ? cache->mask.data() : mask_tm.data();

  // Z chunks: the whole sequence in training (Z becomes the gates cache), a few
  // MiB of steps in inference.
  // Inference on the lookup path has no product to batch: each step's Z rows are
  // gathered by the thread that reads them, just before its product (into its
  // rows of one (B,G) block that stays in its L2), instead of a chunk of steps
  // written by all threads in one pass and read back from L3 (chars-seq: 2.5%
  // of the call in the chunk's pass; and one parallel region per call for the
  // row blocks instead of two per chunk).
  const bool gather = !cache && lookup;
  int chunk = T;
  Buffer<Real> zbuf, xbuf;
  if (gather) {
    zbuf.reset(BG);
  } else if (!cache) {
    const size_t rows = std::max(size_t(kMinChunkRows), kChunkBytes / (size_t(G) * sizeof(Real)));
    chunk = int(std::min<size_t>(T, std::max<size_t>(1, rows / B)));
    zbuf.reset(size_t(chunk) * BG);
    if (!lookup) xbuf.reset(size_t(chunk) * B * I);
  }

  // How the steps share the threads: the unit split, or row blocks (1: one block,
  // the step's product split by the GEMM itself).
  const UnitSplit split = unit_split(Cell::kUnitSplit, B, T, H, Cell::kGates, nt, opt, !cache, rec);
  const int blocks = split.parts ? 1 : recurrence_blocks(B, T, H, G, nt);
  const int inner_nt = blocks > 1 || split.parts ? 1 : nt;

  Segment segs[kMaxParts];
  const int nseg = split.parts ? split.parts : Cell::segments(opt, H, segs);
  for (int j = 0; j < split.parts; ++j) segs[j] = {Cell::kGates * split.u[j], Cell::kGates * split.units(j)};
  // U packed once per model (RnnInputs::U_packed) serves when it is what this call would
  // pack: the same segments (and split) through the same level (precision and batch decide it).
  std::unique_ptr<PackedRecurrent<Real>> own_Up;
  const PackedRecurrent<Real>* Upp = in.U_packed;
  if (!Upp || !Upp->matches(opt.precision, B, segs, nseg, split))
    Upp = (own_Up = split.parts ? std::make_unique<PackedRecurrent<Real>>(opt.precision, B, in.U, H, Cell::kGates, split)
                                : std::make_unique<PackedRecurrent<Real>>(opt.precision, B, in.U, H, G, segs, nseg, false))
              .get();
  const PackedRecurrent<Real>& Up = *Upp;
  // A split runs on Z in its layout: W's and b's columns permuted once per call.
  RnnInputs<Real> pin = in;
  Buffer<Real> Wsplit(split.parts ? size_t(I) * G : 0), bsplit(split.parts && in.b ? G : 0);
  if (split.parts) {
    permute_gate_columns(in.W, G, I, H, Cell::kGates, split, Wsplit.data(), G);
    pin.W = Wsplit.data();
    if (in.b) permute_gate_columns(in.b, G, 1, H, Cell::kGates, split, bsplit.data(), G), pin.b = bsplit.data();
  }
  // The token-id path has no product here: Z rows are W's rows, exact.
  const GemmFns<Real> xw = gemm_fns_for<Real>(opt.precision, int(TB), G, I);

  // Where step s writes its state (so where step s+1 reads it). Training keeps
  // c_s in the cache, h_{s-1} ⊙ r as the step's product input and, for a cell
  // that reads h_{s-1} itself when r is given, h_{s-1} too; without r the product
  // input is h_{s-1} itself, so the step writes h there.
  Buffer<Real> hbuf(2 * BH), cbuf(!cache && Cell::kHasC ? 2 * BH : 0), abuf(!cache && rec ? BH : 0);
  Buffer<Real> scratch(size_t(B) * scols);
  Real* hraw = cache && cache->hraw.size() ? cache->hraw.data() : nullptr;
  if constexpr (Cell::kHasC)
    if (cache) std::memcpy(cache->c.data(), in.c0, sizeof(Real) * BH);
  auto c_out = [&](int s) -> Real* {
    return cache ? cache->c.data() + size_t(s + 1) * BH : s == T - 1 ? out.cT : cbuf.data() + (s & 1) * BH;
  };
  auto h_out = [&](int s) -> Real* {
    return s == T - 1          ? out.hT
           : hraw              ? hraw + size_t(s + 1) * BH
           : (cache && !rec)   ? cache->hprev.data() + size_t(s + 1) * BH
                               : hbuf.data() + (s & 1) * BH;
  };
  auto c_in = [&](int s) -> const Real* { return s ? c_out(s - 1) : cache ? cache->c.data() : in.c0; };
  auto h_in = [&](int s) -> const Real* { return s ? h_out(s - 1) : in.h0; };
  const Real* r = in.rec_mask;

  // Steps [sa, sb) for batch rows [r0, r1) and part j's units (all units without
  // a split); Z holds the projections of the steps from s0 on.
  auto run_steps = [&](int s0, int sa, int sb, Real* Z, int r0, int r1, int j) {
    const int m = r1 - r0;
    const int u0 = split.parts ? split.u[j] : 0, nu = split.parts ? split.units(j) : H;
    const size_t o = size_t(r0) * H, mH = size_t(m) * H;
    const int c0 = Cell::kGates * u0, nc = Cell::kGates * nu;  // the Z columns of the units
    for (int s = sa; s < sb; ++s) {
      Real* Gs = Z + (gather ? 0 : size_t(s - s0) * BG) + size_t(r0) * G + c0;
      if (gather)
        for (int b = r0; b < r1; ++b)
          lookup_row(pin.W, pin.b, G, ids[size_t(s) * B + b], c0, nc, Gs + size_t(b - r0) * G);
      const Real* h_prev = h_in(s);
      if (hraw && hraw + size_t(s) * BH != h_prev) {  // step 0: keep h0 as h_{-1}
        std::memcpy(hraw + size_t(s) * BH + o, h_prev + o, sizeof(Real) * mH);
        h_prev = hraw + size_t(s) * BH;
      }
      // The input of the products with U: a = h_{s-1} ⊙ r.
      const Real* a = h_prev;
      if (cache) {
        Real* hp = cache->hprev.data() + size_t(s) * BH;
        if (hp != h_prev) {
          if (rec)
            for (size_t e = o; e < o + mH; ++e) hp[e] = h_prev[e] * r[e];
          else
            std::memcpy(hp + o, h_prev + o, sizeof(Real) * mH);
        }
        a = hp;
      } else if (rec) {
        for (size_t e = o; e < o + mH; ++e) abuf.data()[e] = h_prev[e] * r[e];
        a = abuf.data();
      }

      Real* h_new = h_out(s);
      StepForward<Real> st;
      st.m = m, st.H = nu, st.G = G, st.ld = H, st.seg = split.parts ? j : 0;
      st.Z = Gs, st.a = a + o, st.h_prev = h_prev + o + u0, st.h = h_new + o + u0;
      st.aux = cache && aux ? cache->aux.data() + size_t(s) * BH + o : nullptr;
      st.b_rec = in.b_rec;
      st.scratch = scols ? scratch.data() + size_t(r0) * scols : nullptr;
      st.nt = inner_nt;
      const Real* c_prev = nullptr;
      Real* c_new = nullptr;
      if constexpr (Cell::kHasC) {
        c_prev = c_in(s), c_new = c_out(s);
        st.c_prev = c_prev + o + u0, st.c = c_new + o + u0;
      }
      Cell::forward(k, Up, st, opt);

      const uint8_t* ms = mask ? mask + size_t(s) * B : nullptr;
      const size_t row_part = sizeof(Real) * nu;
      if (ms)
        for (int b = r0; b < r1; ++b)
          if (!ms[b]) {
            const size_t e = size_t(b) * H + u0;
            if constexpr (Cell::kHasC) std::memcpy(c_new + e, c_prev + e, row_part);
            std::memcpy(h_new + e, h_prev + e, row_part);
          }
      if (opt.return_sequences)
        for (int b = r0; b < r1; ++b) {
          Real* y = out.y + (size_t(b) * T + s) * H + u0;
          const bool shown = !ms || ms[b] || (!opt.zero_output_for_mask && first_real[b] < s);
          if (shown)
            std::memcpy(y, h_new + size_t(b) * H + u0, row_part);
          else
            std::memset(y, 0, row_part);
        }
    }
  };

  for (int s0 = 0; s0 < T; s0 += chunk) {
    const int n = std::min(chunk, T - s0);
    Real* Z = cache ? cache->gates.data() : zbuf.data();
    Real* xtm = cache ? (lookup ? nullptr : cache->x.data()) : xbuf.data();
    if (!gather) project(xw, pin, G, opt, ids, s0, n, xtm, Z, nt);
    if (split.parts)  // one join per step: h_s whole before step s+1
      for (int s = s0; s < s0 + n; ++s)
        parallel(split.parts, split.parts, [&](int j) { run_steps(s0, s, s + 1, Z, 0, B, j); });
    else
      parallel(blocks, blocks, [&](int i) {
        run_steps(s0, s0, s0 + n, Z, block_begin(B, blocks, i), block_begin(B, blocks, i + 1), 0);
      });
  }

  if constexpr (Cell::kHasC)
    if (cache) std::memcpy(out.cT, c_out(T - 1), sizeof(Real) * BH);
  if (!opt.return_sequences)
    for (int b = 0; b < B; ++b) {
      const bool shown = !mask || (opt.zero_output_for_mask ? mask[size_t(T - 1) * B + b] != 0 : first_real[b] < T);
      if (shown)
        std::memcpy(out.y + size_t(b) * H, out.hT + size_t(b) * H, sizeof(Real) * H);
      else
        std::memset(out.y + size_t(b) * H, 0, sizeof(Real) * H);
    }
  return cache;
}

// ============================================================================
// Backward (BPTT)
// ============================================================================
// Per step s = T-1 .. 0, with dh (and dc) the gradients reaching h_s (and c_s):
//   real row:   dh_tot = dh + dy_s;  the cell's step gives dZ_s, dh_{s-1} (and dc_{s-1})
//   masked row: dZ_s = 0, dh (and dc) unchanged; dh += dy_s if the row had a real step before s
// then, over all steps at once:
//   dU = A^T·dZ per segment of U   dW = X^T·dZ (dense) or dW[id] += dZ row (lookup)
//   db = Σ dZ rows   (db_rec = Σ dZr rows)   dX = dZ·W^T, back to (B,T,I)
template <class Cell, class Real>
void backward(const RnnCache<Real>& C, const Real* dy, const Real* dhT, const Real* dcT, const RnnGrads<Real>& g,
              int nt) {
  FpModeGuard fp_guard;
  const KernelOps<Real>& k = ops<Real>();
  const int B = C.B, T = C.T, H = C.H, I = C.I, G = C.G;
  const size_t BH = size_t(B) * H, BG = size_t(B) * G, TB = size_t(T) * B;
  const RnnOptions& opt = C.opt;
  const uint8_t* mask = C.mask.size() ? C.mask.data() : nullptr;
  const Real* r = C.rec_mask.size() ? C.rec_mask.data() : nullptr;
  const bool has_dZr = Cell::has_dZr(opt);
  const int scols = Cell::scratch_cols(opt, H);

  Buffer<Real> dZ(TB * G);                    // (T,B,G) gradient of x·W + b
  Buffer<Real> dZr(has_dZr ? TB * G : 0);     // (T,B,G) gradient of h·U + b_rec, when it differs
  Segment segs[kMaxSegments];
  const int nseg = Cell::segments(opt, H, segs);
  const Precision prec = g.precision;
  const PackedRecurrent<Real> Ut(prec, B, C.U, H, G, segs, nseg, true);

  Buffer<Real> dhb(2 * BH), dc(Cell::kHasC ? BH : 0), dhtot(BH), dcsave(mask && Cell::kHasC ? BH : 0);
  Buffer<Real> scratch(size_t(B) * scols);
  if (dhT)
    std::memcpy(dhb.data(), dhT, sizeof(Real) * BH);
  else
    std::fill(dhb.data(), dhb.data() + BH, Real(0));
  if constexpr (Cell::kHasC) {
    if (dcT)
      std::memcpy(dc.data(), dcT, sizeof(Real) * BH);
    else
      dc.zero();
  }

  const int blocks = recurrence_blocks(B, T, H, G, nt);
  const int inner_nt = blocks > 1 ? 1 : nt;
  // All steps for batch rows [r0, r1). dh ping-pongs between the halves of dhb:
  // after step s it is in half (T - s) & 1.
  auto run_steps = [&](int r0, int r1) {
    const int m = r1 - r0;
    const size_t o = size_t(r0) * H, og = size_t(r0) * G;
    Real* dh = dhb.data();
    for (int s = T - 1; s >= 0; --s) {
      // dy_s rows, stride T*H for sequences; only the last step for a last-output y.
      const Real* dys = !dy ? nullptr : opt.return_sequences ? dy + size_t(s) * H : (s == T - 1 ? dy : nullptr);
      const size_t dys_ld = opt.return_sequences ? size_t(T) * H : size_t(H);
      const uint8_t* ms = mask ? mask + size_t(s) * B : nullptr;
      bool any_masked = false;
      for (int b = r0; b < r1; ++b) {
        Real* dt = dhtot.data() + size_t(b) * H;
        Real* dhr = dh + size_t(b) * H;
        const Real* d = dys ? dys + size_t(b) * dys_ld : nullptr;
        if (!ms || ms[b]) {
          if (d)
            for (int j = 0; j < H; ++j) dt[j] = dhr[j] + d[j];
          else
            std::memcpy(dt, dhr, sizeof(Real) * H);
        } else {
          any_masked = true;
          std::fill(dt, dt + H, Real(0));
          if (d && !opt.zero_output_for_mask && C.first_real[b] < s)
            for (int j = 0; j < H; ++j) dhr[j] += d[j];
        }
      }
      if constexpr (Cell::kHasC)
        if (any_masked) std::memcpy(dcsave.data() + o, dc.data() + o, sizeof(Real) * m * H);

      Real* dZs = dZ.data() + size_t(s) * BG;
      Real* dZrs = has_dZr ? dZr.data() + size_t(s) * BG : nullptr;
      Real* dh_prev = dh == dhb.data() ? dhb.data() + BH : dhb.data();
      StepBackward<Real> st;
      st.m = m, st.H = H, st.G = G;
      st.gates = C.gates.data() + size_t(s) * BG + og;
      st.a = C.hprev.data() + size_t(s) * BH + o;
      st.h_prev = C.h_before(s) + o;
      st.aux = C.aux.size() ? C.aux.data() + size_t(s) * BH + o : nullptr;
      st.rec_mask = r ? r + o : nullptr;
      st.dh = dhtot.data() + o;
      st.dZ = dZs + og;
      st.dZr = dZrs ? dZrs + og : nullptr;
      st.dh_prev = dh_prev + o;
      st.scratch = scols ? scratch.data() + size_t(r0) * scols : nullptr;
      st.nt = inner_nt;
      if constexpr (Cell::kHasC) st.c_prev = C.c.data() + size_t(s) * BH + o, st.dc = dc.data() + o;
      Cell::backward(k, Ut, st, opt);

      if (any_masked)
        for (int b = r0; b < r1; ++b)
          if (!ms[b]) {
            std::fill(dZs + size_t(b) * G, dZs + size_t(b + 1) * G, Real(0));
            if (dZrs) std::fill(dZrs + size_t(b) * G, dZrs + size_t(b + 1) * G, Real(0));
            if constexpr (Cell::kHasC)
              std::memcpy(dc.data() + size_t(b) * H, dcsave.data() + size_t(b) * H, sizeof(Real) * H);
            std::memcpy(dh_prev + size_t(b) * H, dh + size_t(b) * H, sizeof(Real) * H);
          }
      dh = dh_prev;
    }
  };
  parallel(blocks, blocks, [&](int i) { run_steps(block_begin(B, blocks, i), block_begin(B, blocks, i + 1)); });
  std::memcpy(g.dh0, dhb.data() + (T & 1) * BH, sizeof(Real) * BH);
  if constexpr (Cell::kHasC) std::memcpy(g.dc0, dc.data(), sizeof(Real) * BH);

  const int M = int(TB);  // fits: checked by the bindings
  const Real* dZrec = has_dZr ? dZr.data() : dZ.data();
  for (int p = 0; p < nseg; ++p)
    recurrent_weight_grad(prec, M, H, G, segs[p], Cell::rec_grad_input(C, p), dZrec, g.add_dU, g.dU, nt);

  // Column-block loops below: every column sums its rows in row order, so the
  // result does not depend on the thread count.
  if (C.lookup) {
    if (!g.add_dW) std::fill(g.dW, g.dW + size_t(I) * G, Real(0));
    const int32_t* ids = C.ids.data();
    parallel_rows(G, TB * G, nt, [&](int j0, int j1) {  // db in the same pass over dZ
      k.scatter_add_rows(TB, j1 - j0, ids, dZ.data() + j0, G, g.dW + j0, G, g.db ? g.db + j0 : nullptr, g.add_db);
    });
  } else {
    input_weight_grad(prec, M, I, G, C.x.data(), dZ.data(), g.add_dW, g.dW, nt);
    if (g.db)
      parallel_rows(G, TB * G, nt, [&](int j0, int j1) {
        k.sum_rows(TB, j1 - j0, dZ.data() + j0, G, g.db + j0, g.add_db);
      });
  }
  if (has_dZr && g.db_rec)
    parallel_rows(G, TB * G, nt, [&](int j0, int j1) {
      k.sum_rows(TB, j1 - j0, dZr.data() + j0, G, g.db_rec + j0, g.add_db);
    });

  if (g.dx && C.dense_input) {
    Buffer<Real> dxtm(TB * I);  // (T,B,I)
    input_grad(prec, M, I, G, dZ.data(), C.W, dxtm.data(), nt);
    parallel_rows(int(TB), TB * I, nt, [&](int r0, int r1) {
      for (int row = r0; row < r1; ++row) {
        const int s = row / B, b = row % B;
        std::memcpy(g.dx + (size_t(b) * T + time_of(s, T, opt.go_backwards)) * I, dxtm.data() + size_t(row) * I,
                    sizeof(Real) * I);
      }
    });
  }
}

}  // namespace

// ============================================================================
// Memory estimates (bytes) for the MemoryError check before allocating.
// ============================================================================
size_t rnn_forward_bytes(CellKind cell, size_t elem, int B, int T, int I, int H, bool training,
                         bool return_sequences, bool dense_x, bool rec_mask) {
  const bool lstm = cell == CellKind::lstm, gru = cell == CellKind::gru;
  const size_t BH = mul_size(size_t(B), size_t(H)), G = mul_size(size_t(gates_per_unit(cell)), size_t(H));
  const size_t TB = mul_size(size_t(T), size_t(B));
  size_t n = add_size(return_sequences ? mul_size(BH, size_t(T)) : BH, mul_size(lstm ? 2 : 1, BH));  // y, hT, cT
  n = add_size(n, mul_size(size_t(H), G));                                                          // packed U
  if (gru) n = add_size(n, mul_size(size_t(B), G));                                                  // step scratch
  size_t bytes = mul_size(n, elem);
  bytes = add_size(bytes, mul_size(TB, 2 * sizeof(int32_t) + 1));  // ids / one-hot ids, mask
  if (training) {
    // gates, hprev, c (T+1) and aux (LSTM); aux and h_{s-1} (GRU)
    const size_t per_step = lstm ? 3 : gru ? (rec_mask ? 3 : 2) : 1;
    size_t c = add_size(mul_size(TB, G), mul_size(per_step, TB, size_t(H)));
    if (lstm) c = add_size(c, BH);
    if (dense_x) c = add_size(c, mul_size(TB, size_t(I)));
    bytes = add_size(bytes, mul_size(c, elem));
  } else {
    // chunk buffers (Z and x) plus the state ping-pong buffers
    const size_t rows = std::max(size_t(kMinChunkRows), kChunkBytes / std::max<size_t>(1, mul_size(G, elem)));
    const size_t chunk = std::min(TB, std::max(size_t(B), rows));
    bytes = add_size(bytes, mul_size(add_size(mul_size(chunk, G), dense_x ? mul_size(chunk, size_t(I)) : 0), elem));
    bytes = add_size(bytes, mul_size(5, BH, elem));
    bytes = add_size(bytes, mul_size(add_size(size_t(I), 1 + size_t(H)), G, elem));  // a unit split's W, b, U copies
  }
  return bytes;
}

size_t rnn_backward_bytes(CellKind cell, size_t elem, int B, int T, int I, int H, bool dx, bool reset_after) {
  const bool gru = cell == CellKind::gru;
  const size_t TB = mul_size(size_t(T), size_t(B)), G = mul_size(size_t(gates_per_unit(cell)), size_t(H));
  size_t n = mul_size(TB, G);                                        // dZ
  if (gru && reset_after) n = add_size(n, mul_size(TB, G));          // dZr
  if (dx) n = add_size(n, mul_size(2, TB, size_t(I)));               // dX time-major + dx
  n = add_size(n, mul_size(add_size(size_t(I), 2 * size_t(H)), G));  // dW, dU, packed U^T
  n = add_size(n, mul_size(7, size_t(B), size_t(H)));                // dh0, dc0, dh x2, dc, dhtot, dcsave
  if (gru) n = add_size(n, mul_size(size_t(B), G));                  // step scratch
  return mul_size(n, elem);
}

RecurrentSchedule recurrent_schedule(CellKind cell, int B, int T, int H, int nt, const RnnOptions& opt,
                                     bool rec_mask) {
  const int kG = gates_per_unit(cell);
  RecurrentSchedule r;
  const UnitSplit sp = unit_split(cell_splits(cell), B, T, H, kG, nt, opt, !opt.training, rec_mask);
  if (sp.parts) {
    r.kind = "units", r.parts = sp.parts;
    r.bounds.assign(sp.u, sp.u + sp.parts + 1);
    return r;
  }
  r.parts = recurrence_blocks(B, T, H, kG * H, nt);
  if (r.parts > 1) {
    r.kind = "rows";
    for (int i = 0; i <= r.parts; ++i) r.bounds.push_back(block_begin(B, r.parts, i));
  }
  return r;
}

// ============================================================================
// Entry points: one instantiation of the driver per cell
// ============================================================================
template <class Real>
std::unique_ptr<RnnCache<Real>> rnn_forward(CellKind cell, const RnnInputs<Real>& in, const RnnOptions& opt,
                                            const RnnOutputs<Real>& out, int nt) {
  switch (cell) {
    case CellKind::lstm: return forward<LstmCell>(in, opt, out, nt);
    case CellKind::gru: return forward<GruCell>(in, opt, out, nt);
    case CellKind::simple_rnn: return forward<SimpleRnnCell>(in, opt, out, nt);
  }
  throw std::invalid_argument("rnn_forward: unknown cell");
}

template <class Real>
std::unique_ptr<PackedRecurrent<Real>> pack_recurrent(CellKind cell, const Real* U, int H, const RnnOptions& opt,
                                                      int B) {
  // As an inference call without a recurrent-dropout mask at today's thread count splits
  // (T only decides whether a loop is worth threads at all: take it long).
  const UnitSplit sp = unit_split(cell_splits(cell), B, 1 << 20, H, gates_per_unit(cell), num_threads(), opt, true,
                                  false);
  if (sp.parts) return std::make_unique<PackedRecurrent<Real>>(opt.precision, B, U, H, gates_per_unit(cell), sp);
  Segment segs[kMaxSegments];
  int nseg = 0;
  switch (cell) {
    case CellKind::lstm: nseg = LstmCell::segments(opt, H, segs); break;
    case CellKind::gru: nseg = GruCell::segments(opt, H, segs); break;
    case CellKind::simple_rnn: nseg = SimpleRnnCell::segments(opt, H, segs); break;
  }
  return std::make_unique<PackedRecurrent<Real>>(opt.precision, B, U, H, gates_per_unit(cell) * H, segs, nseg, false);
}

template <class Real>
void rnn_backward(const RnnCache<Real>& C, const Real* dy, const Real* dhT, const Real* dcT, const RnnGrads<Real>& g,
                  int nt) {
  switch (C.cell) {
    case CellKind::lstm: return backward<LstmCell>(C, dy, dhT, dcT, g, nt);
    case CellKind::gru: return backward<GruCell>(C, dy, dhT, dcT, g, nt);
    case CellKind::simple_rnn: return backward<SimpleRnnCell>(C, dy, dhT, dcT, g, nt);
  }
  throw std::invalid_argument("rnn_backward: unknown cell");
}

#define FUSEDLSTM_INSTANTIATE(Real)                                                                              \
  template std::unique_ptr<RnnCache<Real>> rnn_forward<Real>(CellKind, const RnnInputs<Real>&, const RnnOptions&, \
                                                             const RnnOutputs<Real>&, int);                     \
  template std::unique_ptr<PackedRecurrent<Real>> pack_recurrent<Real>(CellKind, const Real*, int,              \
                                                                       const RnnOptions&, int);                \
  template void rnn_backward<Real>(const RnnCache<Real>&, const Real*, const Real*, const Real*,                \
                                   const RnnGrads<Real>&, int);
FUSEDLSTM_INSTANTIATE(float)
FUSEDLSTM_INSTANTIATE(double)
#undef FUSEDLSTM_INSTANTIATE

}  // namespace fusedlstm
