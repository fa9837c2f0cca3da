// Our block decoding is llama.cpp's: the tensors of llama.cpp-made GGUF files (shared/gguf/
// llama-kq-tiny, written by llama-quantize) decode to within each type's quantization error of
// the F32 checkpoint they were made from. A misread field (a swapped nibble, a wrong scale bit)
// would put the relative RMS error near 1. The same F32 tensors quantized by our quantize_row lose
// no more than llama.cpp's did (the K-quant search is ggml's reference algorithm).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/weights.h"
#include "kernels/ops.h"

namespace longctx::kernels {
namespace {

const std::string kDir = std::string(LONGCTX_SHARED_DIR) + "/gguf/llama-kq-tiny";

// Largest relative RMS error accepted per type: our measured figures on normal data
// (quant_test.cc: 0.53%, 8.6%, 7.1%, 3.6%, 1.8%) with 50% headroom for these weights' shape.
double max_rel_rms(TensorType t) {
  switch (t) {
    case TensorType::kQ8_0:
      return 0.008;
    case TensorType::kQ4_0:
      return 0.13;
    case TensorType::kQ4_K:
      return 0.11;
    case TensorType::kQ5_K:
      return 0.055;
    case TensorType::kQ6_K:
      return 0.027;
    default:
      return 0.0;
  }
}

// The Hugging Face name of a GGUF matrix, and whether llama.cpp permuted its rows (attn_q with
// the query heads, attn_k with the kv heads: row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i).
struct Mapped {
  std::string hf;
  int perm_heads = 0;
};

std::map<std::string, Mapped> name_map(int layers, int n_head, int n_kv) {
  std::map<std::string, Mapped> m{{"token_embd.weight", {"model.embed_tokens.weight"}},
                                  {"output.weight", {"lm_head.weight"}}};
  for (int l = 0; l < layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".",
                      h = "model.layers." + std::to_string(l) + ".";
    m[g + "attn_q.weight"] = {h + "self_attn.q_proj.weight", n_head};
    m[g + "attn_k.weight"] = {h + "self_attn.k_proj.weight", n_kv};
    m[g + "attn_v.weight"] = {h + "self_attn.v_proj.weight"};
    m[g + "attn_output.weight"] = {h + "self_attn.o_proj.weight"};
    m[g + "ffn_gate.weight"] = {h + "mlp.gate_proj.weight"};
    m[g + "ffn_up.weight"] = {h + "mlp.up_proj.weight"};
    m[g + "ffn_down.weight"] = {h + "mlp.down_proj.weight"};
  }
  return m;
}

TEST(QuantGguf, LlamaCppTensorsDecodeToTheirF32Originals) {
  if (!std::filesystem::exists(kDir + "/model.safetensors")) GTEST_SKIP() << kDir << " missing";
  const auto hf = io::WeightSource::open_dir(kDir);
  int checked_types = 0;
  for (const char* file : {"q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"}) {
    SCOPED_TRACE(file);
    const auto g = io::GgufFile::open(kDir + "/llama-kq-tiny-" + file + ".gguf");
    const auto names = name_map(static_cast<int>(g->get_int("llama.block_count")),
                                static_cast<int>(g->get_int("llama.attention.head_count")),
                                static_cast<int>(g->get_int("llama.attention.head_count_kv")));
    std::map<TensorType, int> seen;
    for (const io::GgufTensor& t : g->tensors()) {
      if (!t.type || !is_quantized(*t.type)) continue;
      SCOPED_TRACE(t.name);
      const auto it = names.find(t.name);
      ASSERT_NE(it, names.end()) << "unexpected quantized tensor";
      const io::TensorInfo& ref = hf->get(it->second.hf);
      ASSERT_EQ(ref.type, TensorType::kF32);
      ASSERT_EQ(ref.shape, t.shape);
      const int64_t rows = t.shape[0], cols = t.shape[1];
      const TensorType type = *t.type;
      const int64_t rb = row_bytes(type, cols);
      ASSERT_EQ(static_cast<uint64_t>(rows * rb), t.nbytes);
      const int64_t hd = it->second.perm_heads ? rows / it->second.perm_heads : 0;
      std::vector<float> got(cols), ours(cols);
      std::vector<uint8_t> q(rb);
      double err = 0, err_ours = 0, norm = 0;
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(type, t.data + r * rb, got.data(), cols);
        int64_t hr = r;  // the HF row of GGUF row r
        if (hd) hr = r / hd * hd + (r % hd % 2) * (hd / 2) + (r % hd) / 2;
        const float* x = static_cast<const float*>(ref.data) + hr * cols;
        quantize_row(type, x, q.data(), cols);
        dequantize_row(type, q.data(), ours.data(), cols);
        for (int64_t c = 0; c < cols; ++c) {
          err += (double(got[c]) - x[c]) * (double(got[c]) - x[c]);
          err_ours += (double(ours[c]) - x[c]) * (double(ours[c]) - x[c]);
          norm += double(x[c]) * x[c];
        }
      }
      const double rel = std::sqrt(err / norm), rel_ours = std::sqrt(err_ours / norm);
      if (seen[type]++ == 0)
        std::printf("%-7s %-26s %-5s llama.cpp %.5f  ours %.5f\n", file, t.name.c_str(),
                    tensor_type_name(type), rel, rel_ours);
      EXPECT_LT(rel, max_rel_rms(type)) << tensor_type_name(type);
      EXPECT_GT(rel, max_rel_rms(type) / 20) << "suspiciously exact";
      EXPECT_LE(rel_ours, rel * 1.02) << "our quantizer loses more than llama.cpp's";
    }
    checked_types += static_cast<int>(seen.size());
    EXPECT_FALSE(seen.empty());
  }
  EXPECT_GE(checked_types, 5);  // every block type occurs in some file
}

}  // namespace
}  // namespace longctx::kernels
