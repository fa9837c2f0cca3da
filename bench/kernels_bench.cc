// Micro-benchmarks of the hot kernels against their rooflines: memory read bandwidth (streaming
// read, for decode matvec and attention) and GEMM throughput (prefill). Weight sets are replicated
// past the last-level cache so every matvec iteration reads from DRAM.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/huge_pages.h"
#include "core/tensor_type.h"
#include "core/thread_pool.h"
#include "kernels/kv_quant.h"
#include "kernels/ops.h"

namespace longctx::kernels {
namespace {

constexpr size_t kColdBytes = size_t{512} << 20;  // working set well past the 32 MiB L3

ThreadPool& pool(int threads) {
  static std::unique_ptr<ThreadPool> p;
  if (!p || p->size() != threads) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

std::vector<uint8_t> random_bytes(DType t, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> f(n);
  for (auto& v : f) v = d(rng);
  std::vector<uint8_t> out(n * dtype_size(t));
  from_f32(t, f.data(), out.data(), n);
  return out;
}

// Copies of one weight matrix laid end to end on huge pages (where Model::load puts the weights),
// past the last-level cache: at(i) is the i-th use's copy, so every use reads W from DRAM.
struct ColdWeights {
  explicit ColdWeights(const std::vector<uint8_t>& w)
      : bytes(w.size()), copies(std::max<size_t>(2, kColdBytes / w.size())), all(bytes * copies) {
    for (size_t c = 0; c < copies; ++c) std::memcpy(all.data() + c * bytes, w.data(), bytes);
  }
  uint8_t* at(size_t i) { return all.data() + (i % copies) * bytes; }
  size_t bytes, copies;
  HugePageBuffer all;
};

// Streaming read of a 512 MiB buffer split over the threads: the bandwidth roofline. Args:
// threads, huge (1: on 2 MiB huge pages, as the weights and KV cache are; 0: 4 KiB pages).
void BM_StreamRead(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  const bool huge = st.range(1) != 0;
  const size_t n = kColdBytes / sizeof(float);
  HugePageBuffer hp(huge ? n * sizeof(float) : 0);
  std::vector<float> small(huge ? 0 : n);
  float* buf = huge ? reinterpret_cast<float*>(hp.data()) : small.data();
  std::fill(buf, buf + n, 1.f);
  for (auto _ : st) benchmark::DoNotOptimize(sum(pool(threads), buf, static_cast<int64_t>(n)));
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * n * sizeof(float)));
  st.SetLabel(std::string(huge ? "huge pages " : "4 KiB pages ") + simd_path());
}
BENCHMARK(BM_StreamRead)
    ->ArgsProduct({{1, 2}, {1, 0}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One fork-join of the pool with no work in it: what every parallel kernel call pays on top of
// its work (decode makes ~5 such calls per layer). Args: threads.
void BM_ForkJoin(benchmark::State& st) {
  ThreadPool& tp = pool(static_cast<int>(st.range(0)));
  for (auto _ : st)
    tp.parallel_for(64, 1, [](int64_t b, int64_t e, int) { benchmark::DoNotOptimize(b + e); });
}
BENCHMARK(BM_ForkJoin)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Decode matvec (n = 1): args dtype, rows, cols, threads. Cycles through copies of W past L3.
void BM_Matvec(benchmark::State& st) {
  const DType dt = static_cast<DType>(st.range(0));
  const int64_t rows = st.range(1), cols = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  ColdWeights cold(random_bytes(dt, rows * cols, 1));
  const size_t wbytes = cold.bytes;
  std::vector<float> x(cols, 0.5f), y(rows);
  size_t c = 0;
  for (auto _ : st) {
    const WeightView wv = weight_view(tensor_type(dt), cold.at(c++), rows, cols);
    matmul(pool(threads), x.data(), 1, wv, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * wbytes));
  st.SetLabel(std::string(dtype_name(dt)) + " " + simd_path());
}
void MatvecArgs(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {
      {2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
  for (int dt : {0, 1, 2})
    for (auto& s : shapes) b->Args({dt, s[0], s[1], 2});
  b->Args({2, 5632, 2048, 1});
  // SmolLM2-135M: q/o, k/v, gate/up, down, lm_head.
  for (int64_t r : {576, 192, 1536}) b->Args({2, r, 576, 2});
  b->Args({2, 576, 1536, 2});
  b->Args({2, 32000, 576, 2});
}
BENCHMARK(BM_Matvec)->Apply(MatvecArgs)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Batched decode (issue 18): n x rows summed in the one-row decode order, weights read once per
// call. Args: dtype, rows, cols, n, threads. items/s = output rows x x rows per second, so the
// ratio of n = 8 to n = 1 is the kernel's share of the serving throughput gain.
void BM_MatvecRows(benchmark::State& st) {
  const DType dt = static_cast<DType>(st.range(0));
  const int64_t rows = st.range(1), cols = st.range(2), n = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  ColdWeights cold(random_bytes(dt, rows * cols, 1));
  std::vector<float> x(n * cols, 0.5f), y(n * rows);
  size_t c = 0;
  for (auto _ : st) {
    const WeightView wv = weight_view(tensor_type(dt), cold.at(c++), rows, cols);
    matmul(pool(threads), x.data(), n, wv, nullptr, y.data(), n);
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * rows * n));
  st.SetLabel(std::string(dtype_name(dt)) + " " + simd_path());
}
void MatvecRowsArgs(benchmark::internal::Benchmark* b) {
  // SmolLM2-135M's gate/up and lm_head in BF16 and F32, TinyLlama's gate/up in BF16; 1-8
  // sequences.
  for (int dt : {0, 2})
    for (int64_t r : {1536, 49152})
      for (int64_t n : {1, 2, 4, 8}) b->Args({dt, r, 576, n, 2});
  for (int64_t n : {1, 2, 4, 8}) b->Args({2, 5632, 2048, n, 2});
}
BENCHMARK(BM_MatvecRows)->Apply(MatvecRowsArgs)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Prefill GEMM: args dtype, rows, cols, n (x rows), threads. Reports FLOP/s.
void BM_Gemm(benchmark::State& st) {
  const DType dt = static_cast<DType>(st.range(0));
  const int64_t rows = st.range(1), cols = st.range(2), n = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  const auto w = random_bytes(dt, rows * cols, 2);
  std::vector<float> x(n * cols, 0.25f), y(n * rows);
  const WeightView wv = weight_view(tensor_type(dt), w.data(), rows, cols);
  for (auto _ : st) {
    matmul(pool(threads), x.data(), n, wv, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  st.counters["FLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * rows * cols) * st.iterations(), benchmark::Counter::kIsRate);
  st.SetLabel(std::string(dtype_name(dt)) + " " + simd_path());
}
void GemmArgs(benchmark::internal::Benchmark* b) {
  for (int dt : {0, 1, 2})
    for (int64_t n : {64, 512}) b->Args({dt, 2048, 2048, n, 2});
  for (int64_t n : {128, 256}) b->Args({2, 2048, 2048, n, 2});
  b->Args({2, 5632, 2048, 512, 2});
  b->Args({2, 2048, 5632, 512, 2});
  b->Args({2, 2048, 2048, 512, 1});
}
BENCHMARK(BM_Gemm)->Apply(GemmArgs)->UseRealTime()->Unit(benchmark::kMillisecond);

// rows x cols weights of a block type: random codes with modest f16 scales (speed does not depend
// on the values; quantizing 10M weights with the K-quant search would take seconds).
std::vector<uint8_t> random_blocks(TensorType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(static_cast<size_t>(tensor_bytes(t, rows, cols)));
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  const BlockLayout bl = block_layout(t);
  const uint16_t d = f32_to_f16(0.001f);
  const size_t d_off = t == TensorType::kQ6_K ? 208 : 0;
  for (size_t off = 0; off < out.size(); off += bl.bytes) {
    std::memcpy(&out[off + d_off], &d, 2);
    if (t == TensorType::kQ4_K || t == TensorType::kQ5_K) std::memcpy(&out[off + 2], &d, 2);
  }
  return out;
}

// Decode matvec (n = 1) over block-type weights: args TensorType, rows, cols, threads; bytes =
// the weights' stored size, so bytes/s compares with BM_Matvec and BM_StreamRead.
void BM_QuantMatvec(benchmark::State& st) {
  const auto t = static_cast<TensorType>(st.range(0));
  const int64_t rows = st.range(1), cols = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  ColdWeights cold(random_blocks(t, rows, cols, 1));
  const size_t wbytes = cold.bytes;
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  std::vector<float> x(cols), y(rows);
  for (auto& v : x) v = nd(rng);
  size_t c = 0;
  for (auto _ : st) {
    const WeightView wv = weight_view(t, cold.at(c++), rows, cols);
    matmul(pool(threads), x.data(), 1, wv, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * wbytes));
  st.SetLabel(std::string(tensor_type_name(t)) + " " + simd_path());
}
void QuantMatvecArgs(benchmark::internal::Benchmark* b) {
  for (auto t : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K,
                 TensorType::kQ6_K}) {
    b->Args({static_cast<int64_t>(t), 2048, 5632, 2});  // TinyLlama-1.1B ffn_down
    b->Args({static_cast<int64_t>(t), 576, 1536, 2});   // SmolLM2-135M ffn_down
  }
  b->Args({static_cast<int64_t>(TensorType::kQ4_K), 2048, 5632, 1});
}
BENCHMARK(BM_QuantMatvec)->Apply(QuantMatvecArgs)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Prefill over block-type weights: args TensorType, rows, cols, n (x rows), threads. FLOP/s.
void BM_QuantGemm(benchmark::State& st) {
  const auto t = static_cast<TensorType>(st.range(0));
  const int64_t rows = st.range(1), cols = st.range(2), n = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  const auto w = random_blocks(t, rows, cols, 3);
  std::vector<float> x(n * cols), y(n * rows);
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  const WeightView wv = weight_view(t, w.data(), rows, cols);
  for (auto _ : st) {
    matmul(pool(threads), x.data(), n, wv, nullptr, y.data());
    benchmark::ClobberMemory();
  }
  st.counters["FLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * rows * cols) * st.iterations(), benchmark::Counter::kIsRate);
  st.SetLabel(std::string(tensor_type_name(t)) + " " + simd_path());
}
void QuantGemmArgs(benchmark::internal::Benchmark* b) {
  for (auto t : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K,
                 TensorType::kQ6_K})
    b->Args({static_cast<int64_t>(t), 2048, 5632, 512, 2});
}
BENCHMARK(BM_QuantGemm)->Apply(QuantGemmArgs)->UseRealTime()->Unit(benchmark::kMillisecond);

// A KV cache of random values laid out as KVCache lays it out: 256-token blocks, all on 2 MiB
// huge pages.
struct Cache {
  HugePageBuffer mem;
  std::vector<const void*> kp, vp;
  KVView view;
  Cache(DType dt, int n_kv, int hd, int64_t n_tokens, int bs = 256) {
    const int64_t nb = (n_tokens + bs - 1) / bs;
    const size_t block = static_cast<size_t>(n_kv) * bs * hd * dtype_size(dt);
    mem = HugePageBuffer(2 * nb * block);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* kb = mem.data() + 2 * b * block;
      uint8_t* vb = kb + block;
      const auto kr = random_bytes(dt, block / dtype_size(dt), 3 + b);
      const auto vr = random_bytes(dt, block / dtype_size(dt), 4 + b);
      std::copy(kr.begin(), kr.end(), kb);
      std::copy(vr.begin(), vr.end(), vb);
      kp.push_back(kb);
      vp.push_back(vb);
    }
    view = KVView{dt, bs, n_kv, hd, kp.data(), vp.data(), n_tokens};
  }
};

// One decode token's attention for one layer: args depth, n_heads, n_kv_heads, head_dim, dtype,
// threads. Bytes = K and V of the whole context.
void BM_AttentionDecode(benchmark::State& st) {
  const int64_t depth = st.range(0);
  const int nh = static_cast<int>(st.range(1)), nkv = static_cast<int>(st.range(2));
  const int hd = static_cast<int>(st.range(3));
  const DType dt = static_cast<DType>(st.range(4));
  const int threads = static_cast<int>(st.range(5));
  Cache c(dt, nkv, hd, depth);
  std::vector<float> q(nh * hd, 0.1f), out(nh * hd);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(hd)), 0};
  for (auto _ : st) {
    attention(pool(threads), p, q.data(), 1, depth - 1, c.view, out.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(
      static_cast<int64_t>(st.iterations() * 2 * depth * nkv * hd * dtype_size(dt)));
  st.SetLabel(std::string(dtype_name(dt)) + " " + simd_path());
}
BENCHMARK(BM_AttentionDecode)
    ->ArgsProduct({{512, 2048, 8192}, {9}, {3}, {64}, {1}, {2}})  // SmolLM2-135M
    ->ArgsProduct({{2048, 8192}, {32}, {4}, {64}, {1}, {2}})      // TinyLlama-1.1B
    ->ArgsProduct({{2048, 8192}, {32}, {8}, {128}, {1}, {1, 2}})  // Llama-3-8B
    ->Args({512, 9, 3, 64, 1, 1})
    ->Args({8192, 9, 3, 64, 1, 1})
    ->Args({65536, 9, 3, 64, 1, 1})
    ->Args({65536, 9, 3, 64, 1, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same over a quantized cache (kernels/kv_quant.h): args KV type (3: int8, 4: int4, as
// KvType), depth, n_heads, n_kv_heads, head_dim, threads. int4 keys are coded per channel over
// groups of kKvChannelGroup tokens, as KVCache stores them. Bytes = the coded K and V (scales and
// minima included) of the whole context.
void BM_AttentionDecodeQuant(benchmark::State& st) {
  const KvType t = static_cast<KvType>(st.range(0));
  const int64_t depth = st.range(1);
  const int nh = static_cast<int>(st.range(2)), nkv = static_cast<int>(st.range(3));
  const int hd = static_cast<int>(st.range(4)), threads = static_cast<int>(st.range(5));
  constexpr int bs = 256;
  const size_t k_sec = kv_row_bytes(t, hd, true) * bs, v_sec = kv_row_bytes(t, hd, false) * bs;
  std::vector<std::vector<uint8_t>> k, v;
  std::vector<const void*> kp, vp;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> rows(static_cast<size_t>(bs) * hd);
  for (int64_t b = 0; b < (depth + bs - 1) / bs; ++b) {
    k.emplace_back(k_sec * nkv);
    v.emplace_back(v_sec * nkv);
    for (int g = 0; g < nkv; ++g) {
      for (auto& x : rows) x = d(rng);
      if (kv_per_channel(t, true))
        for (int r = 0; r < bs; r += kKvChannelGroup)
          kv_encode_key_group(rows.data() + static_cast<size_t>(r) * hd, hd,
                              k.back().data() + g * k_sec, bs, r);
      else
        kv_encode(t, rows.data(), hd, bs, hd, k.back().data() + g * k_sec, bs, 0);
      for (auto& x : rows) x = d(rng);
      kv_encode(t, rows.data(), hd, bs, hd, v.back().data() + g * v_sec, bs, 0);
    }
  }
  for (auto& m : k) kp.push_back(m.data());
  for (auto& m : v) vp.push_back(m.data());
  const KVView view = coded_kv_view(t, t, bs, nkv, hd, kp.data(), vp.data(), depth);
  std::vector<float> q(nh * hd, 0.1f), out(nh * hd);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(hd)), 0};
  for (auto _ : st) {
    attention(pool(threads), p, q.data(), 1, depth - 1, view, out.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<int64_t>(
      st.iterations() * depth * nkv * (kv_row_bytes(t, hd, true) + kv_row_bytes(t, hd, false))));
  st.SetLabel(std::string(kv_type_name(t)) + " " + simd_path());
}
BENCHMARK(BM_AttentionDecodeQuant)
    ->ArgsProduct({{3, 4}, {512, 2048, 8192}, {9}, {3}, {64}, {2}})
    ->ArgsProduct({{3, 4}, {2048, 8192}, {32}, {4}, {64}, {2}})
    ->ArgsProduct({{3, 4}, {8192}, {32}, {8}, {128}, {2}})  // Llama-3-8B
    ->ArgsProduct({{3, 4}, {512, 8192}, {9}, {3}, {64}, {1}})
    ->ArgsProduct({{3, 4}, {65536}, {9}, {3}, {64}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Prefill attention: a chunk of n_q queries ending at depth. Args n_q, depth, n_heads, n_kv, hd.
void BM_AttentionPrefill(benchmark::State& st) {
  const int64_t n_q = st.range(0), depth = st.range(1);
  const int nh = static_cast<int>(st.range(2)), nkv = static_cast<int>(st.range(3));
  const int hd = static_cast<int>(st.range(4));
  Cache c(DType::kF16, nkv, hd, depth);
  std::vector<float> q(n_q * nh * hd, 0.1f), out(n_q * nh * hd);
  const AttentionParams p{nh, 1.f / std::sqrt(static_cast<float>(hd)), 0};
  for (auto _ : st) {
    attention(pool(2), p, q.data(), n_q, depth - n_q, c.view, out.data());
    benchmark::ClobberMemory();
  }
  // Causal: sum over queries of visible keys, 4 FLOP per (key, dim) (QK and PV).
  const double pairs = static_cast<double>(n_q) * (depth - n_q) + n_q * (n_q + 1) / 2.0;
  st.counters["FLOP/s"] =
      benchmark::Counter(4.0 * pairs * nh * hd * st.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AttentionPrefill)
    ->Args({512, 512, 32, 4, 64})
    ->Args({512, 4096, 9, 3, 64})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// TinyLlama-1.1B prefill of 512 tokens, matmuls + attention of one layer with BF16 weights;
// tok/s counter extrapolates to 22 layers (norms, RoPE, SiLU and the final logits excluded).
void BM_TinyLlamaLayerPrefill(benchmark::State& st) {
  const int64_t n = 512, d = 2048, ff = 5632, kvd = 256;
  const int threads = static_cast<int>(st.range(0));
  const DType dt = DType::kBF16;
  const TensorType tt = tensor_type(dt);
  const auto wq = random_bytes(dt, d * d, 5), wk = random_bytes(dt, kvd * d, 6),
             wv = random_bytes(dt, kvd * d, 7), wo = random_bytes(dt, d * d, 8),
             wg = random_bytes(dt, ff * d, 9), wu = random_bytes(dt, ff * d, 10),
             wd = random_bytes(dt, d * ff, 11);
  std::vector<float> x(n * d, 0.1f), q(n * d), k(n * kvd), v(n * kvd), a(n * d), o(n * d),
      g(n * ff), u(n * ff);
  Cache c(DType::kF16, 4, 64, n);
  const AttentionParams p{32, 0.125f, 0};
  ThreadPool& tp = pool(threads);
  for (auto _ : st) {
    matmul(tp, x.data(), n, weight_view(tt, wq.data(), d, d), nullptr, q.data());
    matmul(tp, x.data(), n, weight_view(tt, wk.data(), kvd, d), nullptr, k.data());
    matmul(tp, x.data(), n, weight_view(tt, wv.data(), kvd, d), nullptr, v.data());
    attention(tp, p, q.data(), n, 0, c.view, a.data());
    matmul(tp, a.data(), n, weight_view(tt, wo.data(), d, d), nullptr, o.data());
    matmul(tp, o.data(), n, weight_view(tt, wg.data(), ff, d), nullptr, g.data());
    matmul(tp, o.data(), n, weight_view(tt, wu.data(), ff, d), nullptr, u.data());
    silu_mul(g.data(), u.data(), n * ff, g.data());
    matmul(tp, g.data(), n, weight_view(tt, wd.data(), d, ff), nullptr, x.data());
    benchmark::ClobberMemory();
  }
  st.counters["model_tok/s"] = benchmark::Counter(static_cast<double>(n) * st.iterations() / 22.0,
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TinyLlamaLayerPrefill)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace longctx::kernels

BENCHMARK_MAIN();
