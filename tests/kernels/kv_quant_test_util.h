// Helpers for the KV codec tests: coded sections and a coded one-layer KV cache built with the
// codecs of kernels/kv_quant.h, plus their dequantized f32 copies.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/kv_quant.h"

namespace longctx::kernels::testing {

// One kv head's section of `n` tokens (block_size = n) holding rows x [n][hd].
struct CodedSection {
  KvType type;
  bool keys;
  int hd, block_size;
  size_t code_bytes;
  std::vector<uint8_t> bytes;

  CodedSection(KvType t, bool k, int head_dim, int n, const std::vector<float>& x)
      : type(t), keys(k), hd(head_dim), block_size(n), code_bytes(kv_code_bytes(t, head_dim)) {
    bytes.assign(size_t(n) * kv_row_bytes(t, hd, keys), 0xff);
    if (kv_per_channel(t, keys)) {
      for (int r = 0; r < n; r += kKvChannelGroup)
        kv_encode_key_group(x.data() + size_t(r) * hd, hd, bytes.data(), n, r);
    } else {
      kv_encode(t, x.data(), hd, n, hd, bytes.data(), n, 0);
    }
  }
};

// A one-layer cache of n_tokens in blocks of block_size, keys stored as kt and values as vt.
// With int4 keys, the tokens after the last whole group of 16 stay in f32 in `pending` (as
// KVCache keeps them). k_f32 / v_f32: what the cache holds, dequantized, [n_tokens][n_kv][hd].
struct CodedKV {
  std::vector<std::vector<uint8_t>> mem;
  std::vector<const void*> k_ptrs, v_ptrs;
  std::vector<float> pending, k_f32, v_f32;
  KVView view;

  CodedKV(KvType kt, KvType vt, int block_size, int n_kv, int hd, int64_t n_tokens, uint32_t seed) {
    auto k = random_floats(size_t(n_tokens) * n_kv * hd, seed, -2.f, 2.f);
    for (size_t i = 0; i < k.size(); ++i) k[i] = k[i] * (1 + i % 7) + float(i % 3);  // channels
    const auto v = random_floats(size_t(n_tokens) * n_kv * hd, seed + 1);
    const size_t k_sec = kv_row_bytes(kt, hd, true) * block_size;
    const size_t v_sec = kv_row_bytes(vt, hd, false) * block_size;
    const int64_t n_blocks = (n_tokens + block_size - 1) / block_size;
    const bool per_channel = kv_per_channel(kt, true);
    const int64_t coded_end = per_channel ? n_tokens / kKvChannelGroup * kKvChannelGroup : n_tokens;
    pending.assign(size_t(n_kv) * kKvChannelGroup * hd, NAN);
    k_f32.assign(k.size(), 0.f);
    v_f32.assign(v.size(), 0.f);
    std::vector<float> rows(size_t(block_size) * hd), out(size_t(block_size) * hd);
    for (int64_t b = 0; b < n_blocks; ++b) {
      mem.emplace_back(n_kv * (k_sec + v_sec), 0xff);  // unwritten rows hold NaN patterns
      uint8_t* kb = mem.back().data();
      uint8_t* vb = kb + n_kv * k_sec;
      const int64_t p0 = b * block_size;
      const int n = int(std::min<int64_t>(block_size, n_tokens - p0));
      for (int g = 0; g < n_kv; ++g) {
        for (int part = 0; part < 2; ++part) {
          const std::vector<float>& src = part == 0 ? k : v;
          std::vector<float>& dq = part == 0 ? k_f32 : v_f32;
          for (int r = 0; r < n; ++r)
            std::copy_n(src.data() + ((p0 + r) * n_kv + g) * hd, hd, rows.data() + size_t(r) * hd);
          const KvType t = part == 0 ? kt : vt;
          uint8_t* sec = part == 0 ? kb + g * k_sec : vb + g * v_sec;
          const int nc = part == 0 ? int(std::clamp<int64_t>(coded_end - p0, 0, n)) : n;
          if (part == 0 && per_channel) {
            for (int r = 0; r < nc; r += kKvChannelGroup)
              kv_encode_key_group(rows.data() + size_t(r) * hd, hd, sec, block_size, r);
          } else {
            kv_encode(t, rows.data(), hd, nc, hd, sec, block_size, 0);
          }
          kv_decode(t, part == 0, sec, block_size, 0, nc, hd, out.data());
          for (int r = 0; r < n; ++r) {
            const float* from = r < nc ? out.data() + size_t(r) * hd : rows.data() + size_t(r) * hd;
            std::copy_n(from, hd, dq.data() + ((p0 + r) * n_kv + g) * hd);
            if (r >= nc)  // the f32 pending group
              std::copy_n(from, hd,
                          pending.data() + (size_t(g) * kKvChannelGroup + (p0 + r - coded_end)) * hd);
          }
        }
      }
      k_ptrs.push_back(kb);
      v_ptrs.push_back(vb);
    }
    view = coded_kv_view(kt, vt, block_size, n_kv, hd, k_ptrs.data(), v_ptrs.data(), n_tokens);
    if (per_channel) {
      view.k_pending = pending.data();
      view.k_pending_from = coded_end;
    }
  }

  // The same cache as f32 blocks (layout [n_kv][block_size][hd]): the "dequantize everything"
  // input of the reference kernel.
  PagedKV dequantized(int block_size, int n_kv, int hd, int64_t n_tokens) const {
    PagedKV p(DType::kF32, block_size, n_kv, hd, n_tokens, 0);
    for (int64_t j = 0; j < n_tokens; ++j)
      for (int g = 0; g < n_kv; ++g) {
        const size_t src = (j * n_kv + g) * hd;
        const size_t dst = (size_t(g) * block_size + j % block_size) * hd * 4;
        std::memcpy(p.k_mem[j / block_size].data() + dst, k_f32.data() + src, hd * 4);
        std::memcpy(p.v_mem[j / block_size].data() + dst, v_f32.data() + src, hd * 4);
      }
    p.k_f32 = k_f32;
    p.v_f32 = v_f32;
    return p;
  }
};

}  // namespace longctx::kernels::testing
