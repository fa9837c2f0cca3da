// Attention driver shared by every SIMD path: splits the work into items (kv head x block of
// queries x key range), walks the keys of each item a tile at a time (tiles never cross a KV
// block), and leaves the arithmetic of a tile to the path's attn_tile. GQA: the query heads that
// share a kv head are rows of the same item, so each K/V tile is read once for all of them.
// Decode (few query blocks) splits the keys of each head across threads and merges the partial
// (max, sum, acc) triples afterwards (flash-decoding). Scratch is O(threads x tile).
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "kernels/cpu/kv_quant.h"
#include "kernels/cpu/scratch.h"

namespace longctx::kernels::cpu {

namespace {

constexpr int64_t kMinKeysPerSplit = 128;

struct Plan {
  int group = 0;   // query heads per kv head
  int64_t qb = 0;  // queries per block
  int rows = 0;    // qb * group
  int64_t n_qblocks = 0;
  int splits_max = 1;  // key splits per (kv head, query block)
  size_t thread_bytes = 0;
  size_t partial_bytes = 0;
};

Plan make_plan(int threads, const AttentionParams& p, int64_t n_q, const KVView& kv) {
  Plan pl;
  const int hd = kv.head_dim;
  pl.group = p.n_heads / kv.n_kv_heads;
  const int rows_target = std::clamp(4096 / std::max(hd, 1), 8, 64);
  pl.qb = std::max<int64_t>(1, std::min<int64_t>(n_q, rows_target / pl.group));
  pl.rows = static_cast<int>(pl.qb) * pl.group;
  pl.n_qblocks = (n_q + pl.qb - 1) / pl.qb;
  const int64_t base = kv.n_kv_heads * pl.n_qblocks;
  const int split_threads = p.split_threads > 0 ? p.split_threads : threads;
  const int64_t target = 8 * static_cast<int64_t>(split_threads);
  if (split_threads > 1 && base < target) pl.splits_max = static_cast<int>((target + base - 1) / base);
  const size_t f = sizeof(float), rh = static_cast<size_t>(pl.rows) * hd;
  // Must match the carving in attention_run: q, acc, m, l, lo, hi, scores, k tile, v tile.
  pl.thread_bytes = 2 * round_up64(rh * f) + 2 * round_up64(pl.rows * f) +
                    2 * round_up64(pl.rows * sizeof(int)) +
                    round_up64(static_cast<size_t>(pl.rows) * kAttnTile * f) +
                    2 * round_up64(static_cast<size_t>(kAttnTile) * hd * f);
  if (pl.splits_max > 1)
    pl.partial_bytes =
        round_up64(static_cast<size_t>(base) * pl.splits_max * pl.rows * (hd + 2) * f);
  return pl;
}

}  // namespace

size_t attention_scratch(int threads, const AttentionParams& p, int64_t n_q, const KVView& kv) {
  const Plan pl = make_plan(threads, p, n_q, kv);
  return pl.thread_bytes * threads + pl.partial_bytes;
}

void attention_run(const Isa& isa, ThreadPool& pool, const AttentionParams& p, const float* q,
                   int64_t n_q, int64_t q_pos0, const KVView& kv, float* out) {
  if (n_q <= 0) return;
  assert(p.n_heads % kv.n_kv_heads == 0 && q_pos0 + n_q <= kv.n_tokens);
  const int threads = pool.size(), hd = kv.head_dim, bs = kv.block_size;
  const Plan pl = make_plan(threads, p, n_q, kv);
  // Coded (quantized / mixed) caches: tiles get the block starts, cpu/kv_quant_attention.cc decodes.
  const size_t esz = kv.coded ? 0 : dtype_size(kv.dtype);
  const int64_t window = p.window;
  // Visible keys of the query at position i: [vis_lo(i), i + 1).
  auto vis_lo = [window](int64_t i) {
    return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
  };

  // Splits: only when there are few (head, query block) pairs, and never below a minimum span.
  int splits = 1;
  if (pl.splits_max > 1) {
    const int64_t span = q_pos0 + n_q - vis_lo(q_pos0);
    splits = static_cast<int>(std::clamp<int64_t>(span / kMinKeysPerSplit, 1, pl.splits_max));
  }
  const int64_t n_items = kv.n_kv_heads * pl.n_qblocks * splits;

  thread_local Scratch scratch;
  auto* base = static_cast<uint8_t*>(scratch.get(pl.thread_bytes * threads + pl.partial_bytes));
  float* partials = reinterpret_cast<float*>(base + pl.thread_bytes * threads);
  const size_t part_stride = static_cast<size_t>(pl.rows) * (hd + 2);

  // Threads take runs of items as they come (ThreadPool::parallel_for), so one the OS has not
  // scheduled yet never holds the others up.
  pool.parallel_for(n_items, 1, [&](int64_t it0, int64_t it1, int t) {
    uint8_t* mem = base + pl.thread_bytes * t;
    auto carve = [&mem](size_t bytes) {
      void* r = mem;
      mem += round_up64(bytes);
      return r;
    };
    const size_t rh = static_cast<size_t>(pl.rows) * hd;
    float* qs = static_cast<float*>(carve(rh * 4));
    float* acc = static_cast<float*>(carve(rh * 4));
    float* m = static_cast<float*>(carve(pl.rows * 4));
    float* l = static_cast<float*>(carve(pl.rows * 4));
    int* lo = static_cast<int*>(carve(pl.rows * sizeof(int)));
    int* hi = static_cast<int*>(carve(pl.rows * sizeof(int)));
    float* s = static_cast<float*>(carve(static_cast<size_t>(pl.rows) * kAttnTile * 4));
    float* kf = static_cast<float*>(carve(static_cast<size_t>(kAttnTile) * hd * 4));
    float* vf = static_cast<float*>(carve(static_cast<size_t>(kAttnTile) * hd * 4));
    for (int64_t it = it0; it < it1; ++it) {
      // Latest query blocks first: they have the most keys (better balance at the end).
      const int split = static_cast<int>(it % splits);
      const int64_t rest = it / splits;
      const int g = static_cast<int>(rest % kv.n_kv_heads);
      const int64_t qblock = pl.n_qblocks - 1 - rest / kv.n_kv_heads;
      const int64_t t0 = qblock * pl.qb, t1 = std::min(n_q, t0 + pl.qb);
      const int rows = static_cast<int>(t1 - t0) * pl.group;
      for (int64_t tq = t0; tq < t1; ++tq)
        for (int hh = 0; hh < pl.group; ++hh) {
          const float* src = q + (tq * p.n_heads + g * pl.group + hh) * hd;
          float* dst = qs + ((tq - t0) * pl.group + hh) * hd;
          for (int d = 0; d < hd; ++d) dst[d] = src[d] * p.scale;
        }
      const CodedItem coded = kv.coded ? coded_attn_begin(isa, kv, qs, rows) : CodedItem{};
      std::fill(acc, acc + static_cast<size_t>(rows) * hd, 0.f);
      std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
      std::fill(l, l + rows, 0.f);
      // Keys this item covers.
      int64_t a = vis_lo(q_pos0 + t0), b = q_pos0 + t1;
      if (splits > 1) {
        const int64_t span = b - a;
        const int64_t a2 = a + span * split / splits;
        b = a + span * (split + 1) / splits;
        a = a2;
      }
      for (int64_t j = a; j < b;) {
        const int64_t blk = j / bs, off = j % bs;
        const int n = static_cast<int>(std::min<int64_t>({kAttnTile, bs - off, b - j}));
        bool any = false;
        for (int r = 0; r < rows; ++r) {
          const int64_t i = q_pos0 + t0 + r / pl.group;
          const int64_t vl = std::max(vis_lo(i), j), vh = std::min(i + 1, j + n);
          lo[r] = vl < vh ? static_cast<int>(vl - j) : 0;
          hi[r] = vl < vh ? static_cast<int>(vh - j) : 0;
          any |= vl < vh;
        }
        if (any) {
          const size_t head_off = (static_cast<size_t>(g) * bs + off) * hd * esz;
          AttnTile tile{qs,
                        rows,
                        hd,
                        kv.dtype,
                        static_cast<const uint8_t*>(kv.k_blocks[blk]) + head_off,
                        static_cast<const uint8_t*>(kv.v_blocks[blk]) + head_off,
                        n,
                        lo,
                        hi,
                        m,
                        l,
                        acc,
                        kf,
                        vf,
                        s};
          if (kv.coded) coded_attn_tile(isa, tile, kv, coded, g, j);
          else isa.attn_tile(tile);
        }
        j += n;
      }
      if (splits == 1) {
        for (int r = 0; r < rows; ++r) {
          const int64_t tq = t0 + r / pl.group;
          const int h = g * pl.group + r % pl.group;
          float* o = out + (tq * p.n_heads + h) * hd;
          const float inv = 1.f / l[r];
          for (int d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(r) * hd + d] * inv;
        }
      } else {
        float* part = partials + it * part_stride;
        for (int r = 0; r < rows; ++r) {
          part[r * (hd + 2)] = m[r];
          part[r * (hd + 2) + 1] = l[r];
          std::copy(acc + static_cast<size_t>(r) * hd, acc + static_cast<size_t>(r + 1) * hd,
                    part + r * (hd + 2) + 2);
        }
      }
    }
  });
  if (splits == 1) return;
  // Merge the splits of each (kv head, query block) row: weights exp(m_s - M).
  for (int64_t rest = 0; rest < kv.n_kv_heads * pl.n_qblocks; ++rest) {
    const int g = static_cast<int>(rest % kv.n_kv_heads);
    const int64_t qblock = pl.n_qblocks - 1 - rest / kv.n_kv_heads;
    const int64_t t0 = qblock * pl.qb, t1 = std::min(n_q, t0 + pl.qb);
    const int rows = static_cast<int>(t1 - t0) * pl.group;
    for (int r = 0; r < rows; ++r) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int sp = 0; sp < splits; ++sp)
        mx = std::max(mx, partials[(rest * splits + sp) * part_stride + r * (hd + 2)]);
      const int64_t tq = t0 + r / pl.group;
      float* o = out + (tq * p.n_heads + g * pl.group + r % pl.group) * hd;
      std::fill(o, o + hd, 0.f);
      float lsum = 0.f;
      for (int sp = 0; sp < splits; ++sp) {
        const float* part = partials + (rest * splits + sp) * part_stride + r * (hd + 2);
        if (part[1] == 0.f) continue;
        const float w = std::exp(part[0] - mx);
        lsum += part[1] * w;
        for (int d = 0; d < hd; ++d) o[d] += part[2 + d] * w;
      }
      const float inv = 1.f / lsum;
      for (int d = 0; d < hd; ++d) o[d] *= inv;
    }
  }
}

}  // namespace longctx::kernels::cpu
