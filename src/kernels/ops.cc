// Run-time dispatch of the kernels in ops.h to one SIMD path (cpu/isa.h), plus the threading and
// scratch handling of matmul, and the per-token RoPE angles.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/scratch.h"

namespace longctx::kernels {

namespace {

// x rows from which matmul uses the packed GEMM instead of streaming matvec.
constexpr int64_t kGemmMinRows = 8;

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
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
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

namespace {
// Few x rows (decode), or a path without a packed GEMM: the matvec kernel takes them.
bool uses_matvec(const cpu::Isa& k, int64_t n) {
  return n < kGemmMinRows || k.gemm_pack_bytes == 0;
}

// Decode (few x rows): x rounded to bf16 once per call when w's bf16 weights use the bf16 dot
// products, else nullptr. The rows live in the calling thread's scratch.
uint16_t* decode_x_bf16(const cpu::Isa& k, cpu::Scratch& scratch, const float* x, int64_t n,
                        const WeightView& w) {
  if (w.dtype != DType::kBF16 || !k.bf16_dot) return nullptr;
  const int64_t ldx = (w.cols + 1) & ~int64_t{1};
  auto* xb = static_cast<uint16_t*>(scratch.get(static_cast<size_t>(n * ldx) * 2));
  k.to_bf16_rows(x, n, w.cols, xb, ldx);
  return xb;
}
}  // namespace

void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightView& w, const float* bias,
            float* y) {
  if (n <= 0 || w.rows <= 0) return;
  const cpu::Isa& k = isa();
  thread_local cpu::Scratch scratch;
  if (uses_matvec(k, n)) {
    const uint16_t* xb = decode_x_bf16(k, scratch, x, n, w);
    // 16 output rows = one cache line of y per x row: threads never share a line of y.
    pool.parallel_for(w.rows, 16,
                      [&](int64_t b, int64_t e, int) { k.matvec(x, xb, n, w, bias, y, b, e); });
    return;
  }
  const size_t pack = cpu::round_up64(k.gemm_pack_bytes);
  const bool bf16 = w.dtype == DType::kBF16 && k.bf16_dot;
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

void matmul_many(ThreadPool& pool, const float* x, int64_t n, const MatmulOut* outs, int n_outs) {
  const cpu::Isa& k = isa();
  bool decode = n > 0 && uses_matvec(k, n);
  int64_t total = 0;
  for (int j = 0; j < n_outs; ++j) {
    decode = decode && outs[j].w->cols == outs[0].w->cols && outs[j].w->dtype == outs[0].w->dtype;
    total += outs[j].w->rows;
  }
  if (!decode || n_outs == 1) {
    for (int j = 0; j < n_outs; ++j) matmul(pool, x, n, *outs[j].w, outs[j].bias, outs[j].y);
    return;
  }
  thread_local cpu::Scratch scratch;
  const uint16_t* xb = decode_x_bf16(k, scratch, x, n, *outs[0].w);
  // Rows of the concatenation [W_0; W_1; ...]: a thread's range may span two matrices.
  pool.parallel_for(total, 16, [&](int64_t b, int64_t e, int) {
    int64_t base = 0;
    for (int j = 0; j < n_outs && base < e; ++j) {
      const int64_t rows = outs[j].w->rows;
      const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + rows) - base;
      if (lo < hi) k.matvec(x, xb, n, *outs[j].w, outs[j].bias, outs[j].y, lo, hi);
      base += rows;
    }
  });
}

void embedding_row(const WeightView& w, int64_t row, float* dst) {
  const size_t off = static_cast<size_t>(row * w.cols) * dtype_size(w.dtype);
  isa().to_f32(w.dtype, static_cast<const uint8_t*>(w.data) + off, dst, w.cols);
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
  return cpu::attention_scratch(pool.size(), p, n_q, kv) + cpu::coded_attn_scratch(pool.size(), kv);
}

void attention(ThreadPool& pool, const AttentionParams& p, const float* q, int64_t n_q,
               int64_t q_pos0, const KVView& kv, float* out) {
  cpu::attention_run(isa(), pool, p, q, n_q, q_pos0, kv, out);
}

}  // namespace longctx::kernels
