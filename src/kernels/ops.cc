// Run-time dispatch of the kernels in ops.h to one SIMD path (cpu/isa.h), plus the threading and
// scratch handling of matmul, and the per-token RoPE angles.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/scratch.h"
#include "kernels/reference/reference.h"

namespace longctx::kernels {

namespace {

const cpu::Isa& isa_of(SimdPath path) {
#if defined(LONGCTX_X86_PATHS)
  if (path == SimdPath::kAvx512) return cpu::avx512_isa();
  if (path == SimdPath::kAvx2) return cpu::avx2_isa();
#endif
  return cpu::scalar_isa();
}

SimdPath detect_best() {
#if defined(LONGCTX_X86_PATHS)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // avx512vnni (vpdpbusd, the block-type kernels): every CPU with avx512bf16 has it.
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16") &&
                      __builtin_cpu_supports("avx512vnni");
  if (avx512) return SimdPath::kAvx512;
  if (avx2) return SimdPath::kAvx2;
#endif
  return SimdPath::kScalar;
}

SimdPath initial_path() {
  SimdPath path = detect_best();
  if (const char* env = std::getenv("LONGCTX_SIMD")) {
    SimdPath want = path;
    if (std::strcmp(env, "scalar") == 0) want = SimdPath::kScalar;
    if (std::strcmp(env, "avx2") == 0) want = SimdPath::kAvx2;
    if (std::strcmp(env, "avx512") == 0) want = SimdPath::kAvx512;
    if (want < path) path = want;
  }
  return path;
}

struct Dispatch {
  SimdPath best = detect_best();
  SimdPath path = initial_path();
  const cpu::Isa* isa = &isa_of(path);
};

Dispatch& dispatch() {
  static Dispatch d;
  return d;
}

const cpu::Isa& isa() { return *dispatch().isa; }

}  // namespace

const char* simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::kScalar:
      return "scalar";
    case SimdPath::kAvx2:
      return "avx2";
    case SimdPath::kAvx512:
      return "avx512";
  }
  return "?";
}

SimdPath best_simd_path() { return dispatch().best; }
SimdPath active_simd_path() { return dispatch().path; }
SimdPath set_simd_path(SimdPath path) {
  Dispatch& d = dispatch();
  d.path = path > d.best ? d.best : path;
  d.isa = &isa_of(d.path);
  return d.path;
}
const char* simd_path() { return simd_path_name(active_simd_path()); }

WeightView weight_view(TensorType type, const void* data, int64_t rows, int64_t cols) {
  return WeightView{type, data, rows, cols, row_bytes(type, cols)};
}

void dequantize_row(TensorType t, const void* src, float* dst, int64_t n) {
  row_bytes(t, n);  // Error(kShape) unless n is a whole number of blocks
  reference::dequantize_row(t, src, dst, n);
}

void quantize_row(TensorType t, const float* src, void* dst, int64_t n) {
  row_bytes(t, n);
  reference::quantize_row(t, src, dst, n);
}

namespace {
// Refuses a view whose rows the kernels would misread: cols not a whole number of blocks (Error
// from row_bytes) or a row stride other than the packed row size.
void check_view(const WeightView& w) {
  const int64_t rb = row_bytes(w.type, w.cols);
  if (w.rows < 0 || w.row_bytes != rb)
    throw Error(ErrorKind::kShape,
                std::string("a weight view of ") + std::to_string(w.rows) + " x " +
                    std::to_string(w.cols) + " " + tensor_type_name(w.type) + " has row_bytes " +
                    std::to_string(w.row_bytes) + " but its packed rows take " +
                    std::to_string(rb) + " bytes; build views with kernels::weight_view()");
}

// x [n][cols] quantized for weights of `type` (cpu::QuantAct) in `scratch`; rows split over the
// threads when there are many (prefill).
cpu::QuantAct quantize_x(const cpu::Isa& k, ThreadPool& pool, cpu::Scratch& scratch, const float* x,
                         int64_t n, int64_t cols, TensorType type) {
  const int group = cpu::act_group(type);
  auto* mem = static_cast<uint8_t*>(scratch.get(cpu::quant_act_bytes(n, cols, group)));
  auto* q = reinterpret_cast<int8_t*>(mem);
  auto* d = reinterpret_cast<float*>(mem + cpu::round_up64(static_cast<size_t>(n * cols)));
  auto* bsum = reinterpret_cast<int16_t*>(
      reinterpret_cast<uint8_t*>(d) + cpu::round_up64(static_cast<size_t>(n * (cols / group)) * 4));
  const int64_t ng = cols / group, nb = cols / 16;
  auto rows = [&](int64_t b, int64_t e, int) {
    k.quantize_act(x + b * cols, e - b, cols, group, q + b * cols, d + b * ng, bsum + b * nb);
  };
  if (n >= kGemmMinRows)
    pool.parallel_for(n, 1, rows);
  else
    rows(0, n, 0);
  return cpu::QuantAct{q, d, bsum, cols, group};
}

// Decode (few x rows): x rounded to bf16 once per call when w's bf16 weights use the bf16 dot
// products, else nullptr. The rows live in the calling thread's scratch.
uint16_t* decode_x_bf16(const cpu::Isa& k, cpu::Scratch& scratch, const float* x, int64_t n,
                        const WeightView& w) {
  if (w.type != TensorType::kBF16 || !k.bf16_dot) return nullptr;
  const int64_t ldx = (w.cols + 1) & ~int64_t{1};
  auto* xb = static_cast<uint16_t*>(scratch.get(static_cast<size_t>(n * ldx) * 2));
  k.to_bf16_rows(x, n, w.cols, xb, ldx);
  return xb;
}
}  // namespace

namespace {

// Rows in the decode order: Isa::matvec / Isa::qmatvec, whose result for a row never depends on
// the other rows (see docs/kernels.md, "Batch invariance"). Weights are read once for all rows.
void decode_part(const cpu::Isa& k, ThreadPool& pool, cpu::Scratch& scratch, const float* x,
                 int64_t n, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.type)) {
    const cpu::QuantAct qx = quantize_x(k, pool, scratch, x, n, w.cols, w.type);
    pool.parallel_for(w.rows, 16,
                      [&](int64_t b, int64_t e, int) { k.qmatvec(qx, n, w, bias, y, b, e); });
    return;
  }
  const uint16_t* xb = decode_x_bf16(k, scratch, x, n, w);
  // 16 output rows = one cache line of y per x row: threads never share a line of y.
  pool.parallel_for(w.rows, 16,
                    [&](int64_t b, int64_t e, int) { k.matvec(x, xb, n, w, bias, y, b, e); });
}

// Rows in the prefill order: the packed GEMMs (the decode kernels on a path without one).
void gemm_part(const cpu::Isa& k, ThreadPool& pool, cpu::Scratch& scratch, const float* x,
               int64_t n, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.type)) {
    if (!k.qgemm) return decode_part(k, pool, scratch, x, n, w, bias, y);
    const cpu::QuantAct qx = quantize_x(k, pool, scratch, x, n, w.cols, w.type);
    // The quantized x lives in this thread's scratch: the panels take a second one per thread.
    pool.parallel_for(w.rows, 16, [&](int64_t b, int64_t e, int) {
      thread_local cpu::Scratch panel;
      k.qgemm(qx, n, w, bias, y, b, e, panel.get(k.qgemm_pack_bytes(w.type, w.cols)));
    });
    return;
  }
  if (k.gemm_pack_bytes == 0) return decode_part(k, pool, scratch, x, n, w, bias, y);
  const size_t pack = cpu::round_up64(k.gemm_pack_bytes);
  const bool bf16 = w.type == TensorType::kBF16 && k.bf16_dot;
  const int64_t ldx = (w.cols + 1) & ~int64_t{1};
  const size_t xb_bytes = bf16 ? cpu::round_up64(static_cast<size_t>(n * ldx) * 2) : 0;
  auto* mem = static_cast<uint8_t*>(scratch.get(pack * pool.size() + xb_bytes));
  uint16_t* xb = bf16 ? reinterpret_cast<uint16_t*>(mem + pack * pool.size()) : nullptr;
  if (bf16) {
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
      k.to_bf16_rows(x + b * w.cols, e - b, w.cols, xb + b * ldx, ldx);
    });
  }
  pool.parallel_for(w.rows, k.gemm_geometry.nr, [&](int64_t b, int64_t e, int t) {
    k.gemm(x, xb, n, w, bias, y, b, e, mem + pack * t);
  });
}

}  // namespace

int64_t default_decode_rows(int64_t n) { return n < kGemmMinRows ? n : 0; }

void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightView& w, const float* bias,
            float* y) {
  matmul(pool, x, n, w, bias, y, default_decode_rows(n));
}

void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightView& w, const float* bias,
            float* y, int64_t decode_rows) {
  check_view(w);
  if (n <= 0 || w.rows <= 0) return;
  const cpu::Isa& k = isa();
  thread_local cpu::Scratch scratch;
  const int64_t d = std::clamp<int64_t>(decode_rows, 0, n);
  if (d > 0) decode_part(k, pool, scratch, x, d, w, bias, y);
  if (d < n) gemm_part(k, pool, scratch, x + d * w.cols, n - d, w, bias, y + d * w.rows);
}

void matmul_many(ThreadPool& pool, const float* x, int64_t n, const MatmulOut* outs, int n_outs) {
  matmul_many(pool, x, n, outs, n_outs, default_decode_rows(n));
}

void matmul_many(ThreadPool& pool, const float* x, int64_t n, const MatmulOut* outs, int n_outs,
                 int64_t decode_rows) {
  if (n_outs <= 0 || n <= 0) return;
  const int64_t d = std::clamp<int64_t>(decode_rows, 0, n);
  for (int j = 0; j < n_outs; ++j) check_view(*outs[j].w);
  // The prefill rows: one GEMM per matrix.
  if (d < n)
    for (int j = 0; j < n_outs; ++j) {
      const WeightView& w = *outs[j].w;
      matmul(pool, x + d * w.cols, n - d, w, outs[j].bias, outs[j].y + d * w.rows, 0);
    }
  if (d == 0) return;
  // The decode rows: one pass for all when every W takes the same kernel input (the same float
  // type, or block types sharing one activation format: Q4_K and Q6_K in a Q4_K_M file).
  const cpu::Isa& k = isa();
  const WeightView& w0 = *outs[0].w;
  const bool quant = is_quantized(w0.type);
  bool shared = n_outs > 1;
  int64_t total = 0;
  for (int j = 0; j < n_outs; ++j) {
    const WeightView& w = *outs[j].w;
    shared = shared && w.cols == w0.cols && is_quantized(w.type) == quant &&
             (quant ? cpu::act_group(w.type) == cpu::act_group(w0.type) : w.type == w0.type);
    total += w.rows;
  }
  if (!shared) {
    for (int j = 0; j < n_outs; ++j) matmul(pool, x, d, *outs[j].w, outs[j].bias, outs[j].y, d);
    return;
  }
  thread_local cpu::Scratch scratch;
  cpu::QuantAct qx{};
  const uint16_t* xb = nullptr;
  if (quant)
    qx = quantize_x(k, pool, scratch, x, d, w0.cols, w0.type);
  else
    xb = decode_x_bf16(k, scratch, x, d, w0);
  // Rows of the concatenation [W_0; W_1; ...]: a thread's range may span two matrices. The y rows
  // of the decode rows are y_j's first d rows (stride w_j.rows), as matmul() writes them.
  pool.parallel_for(total, 16, [&](int64_t b, int64_t e, int) {
    int64_t base = 0;
    for (int j = 0; j < n_outs && base < e; ++j) {
      const int64_t rows = outs[j].w->rows;
      const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + rows) - base;
      if (lo < hi && quant) k.qmatvec(qx, d, *outs[j].w, outs[j].bias, outs[j].y, lo, hi);
      if (lo < hi && !quant) k.matvec(x, xb, d, *outs[j].w, outs[j].bias, outs[j].y, lo, hi);
      base += rows;
    }
  });
}

void embedding_row(const WeightView& w, int64_t row, float* dst) {
  check_view(w);
  if (row < 0 || row >= w.rows)
    throw Error(ErrorKind::kOutOfRange, "embedding row " + std::to_string(row) +
                                            " is outside the table of " + std::to_string(w.rows) +
                                            " rows");
  const uint8_t* src = static_cast<const uint8_t*>(w.data) + row * w.row_bytes;
  if (const auto dt = float_dtype(w.type))
    isa().to_f32(*dt, src, dst, w.cols);
  else
    reference::dequantize_row(w.type, src, dst, w.cols);
}

void rmsnorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y) {
  const cpu::Isa& k = isa();
  for (int64_t i = 0; i < n; ++i) k.rmsnorm_row(x + i * dim, weight, dim, eps, y + i * dim);
}

void rope(float* x, int64_t n_tokens, int n_heads, int head_dim, int rot_dim, const int64_t* pos,
          const float* inv_freq, float attn_factor) {
  const cpu::Isa& k = isa();
  const int half = rot_dim / 2;
  thread_local cpu::Scratch scratch;
  float* cs = static_cast<float*>(scratch.get(2 * sizeof(float) * half + 64));
  float* sn = cs + half;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos[t]) * static_cast<double>(inv_freq[i]);
      cs[i] = static_cast<float>(std::cos(a) * attn_factor);
      sn[i] = static_cast<float>(std::sin(a) * attn_factor);
    }
    k.rope_apply(x + t * n_heads * head_dim, n_heads, head_dim, half, cs, sn);
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  isa().silu_mul(gate, up, n, out);
}

double sum(ThreadPool& pool, const float* x, int64_t n) {
  const cpu::Isa& k = isa();
  // One 64-byte line per thread's partial: no false sharing between the threads.
  struct alignas(64) Partial {
    double v = 0.0;
  };
  thread_local cpu::Scratch scratch;
  auto* part = static_cast<Partial*>(scratch.get(sizeof(Partial) * pool.size()));
  for (int t = 0; t < pool.size(); ++t) part[t].v = 0.0;
  pool.parallel_for(n, 4096, [&](int64_t b, int64_t e, int t) {
    // Blocks of 4 Ki floats keep the f32 partial sums short (exact to ~1e-4 relative).
    double s = 0.0;
    for (int64_t i = b; i < e; i += 4096) s += k.sum(x + i, std::min<int64_t>(4096, e - i));
    part[t].v += s;
  });
  double s = 0.0;
  for (int t = 0; t < pool.size(); ++t) s += part[t].v;
  return s;
}

size_t attention_scratch_bytes(const ThreadPool& pool, const AttentionParams& p, int64_t n_q,
                               const KVView& kv) {
  return cpu::attention_scratch(pool.size(), p, n_q, kv) +
         cpu::coded_attn_scratch(isa(), pool.size(), kv);
}

void attention(ThreadPool& pool, const AttentionParams& p, const float* q, int64_t n_q,
               int64_t q_pos0, const KVView& kv, float* out) {
  cpu::attention_run(isa(), pool, p, q, n_q, q_pos0, kv, out);
}

}  // namespace longctx::kernels
