#include "model/gguf_export.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <thread>
#include <vector>

#include "config/arch.h"
#include "config/model_config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/weights.h"
#include "kernels/ops.h"
#include "model/quant_scheme.h"
#include "tokenizer/gguf_vocab_export.h"

namespace longctx {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<ExportType> parse_export_type(std::string_view s) {
  std::string low(s);
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (ExportType t : {ExportType::kQ8_0, ExportType::kQ4_0, ExportType::kQ4_K_M, ExportType::kQ5_0,
                       ExportType::kQ5_1, ExportType::kF16, ExportType::kF32})
    if (low == export_type_name(t)) return t;
  return std::nullopt;
}

const char* export_type_name(ExportType t) {
  switch (t) {
    case ExportType::kF32:
      return "f32";
    case ExportType::kF16:
      return "f16";
    case ExportType::kQ8_0:
      return "q8_0";
    case ExportType::kQ4_0:
      return "q4_0";
    case ExportType::kQ4_K_M:
      return "q4_k_m";
    case ExportType::kQ5_0:
      return "q5_0";
    case ExportType::kQ5_1:
      return "q5_1";
  }
  return "?";
}

std::string export_type_names() { return "q8_0, q4_0, q4_k_m, q5_0, q5_1, f16, f32"; }

uint32_t export_file_type(ExportType t) {
  switch (t) {
    case ExportType::kF32:
      return 0;
    case ExportType::kF16:
      return 1;
    case ExportType::kQ4_0:
      return 2;
    case ExportType::kQ8_0:
      return 7;
    case ExportType::kQ4_K_M:
      return 15;
    case ExportType::kQ5_0:
      return 8;
    case ExportType::kQ5_1:
      return 9;
  }
  return 0;
}

namespace {

// One tensor of the output file.
struct Item {
  std::string gguf_name, hf_name;
  std::vector<int64_t> shape;  // outermost first
  TensorType type = TensorType::kF32;
  int permute_heads = 0;  // > 0: llama's q/k row permutation over this many heads
};

TensorType matrix_type(ExportType t, WeightRole role, int layer, int n_layers, int64_t cols) {
  switch (t) {
    case ExportType::kF32:
      return TensorType::kF32;
    case ExportType::kF16:
      return TensorType::kF16;
    case ExportType::kQ8_0:
      return quant_type_for(QuantScheme::kQ8_0, role, layer, n_layers, cols);
    case ExportType::kQ4_0:
      return quant_type_for(QuantScheme::kQ4_0, role, layer, n_layers, cols);
    case ExportType::kQ4_K_M:
      return quant_type_for(QuantScheme::kQ4_K_M, role, layer, n_layers, cols);
    case ExportType::kQ5_0:
      return quant_type_for(QuantScheme::kQ5_0, role, layer, n_layers, cols);
    case ExportType::kQ5_1:
      return quant_type_for(QuantScheme::kQ5_1, role, layer, n_layers, cols);
  }
  return TensorType::kF32;
}

std::string bias_of(const std::string& weight) {
  return weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
}

// The tensors of `cfg`'s model, in llama.cpp's names and the types `type` gives them.
std::vector<Item> plan_tensors(const ModelConfig& c, const ArchSpec& a, ExportType type) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t qd = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kvd = int64_t{c.num_key_value_heads} * c.head_dim;
  const int L = c.num_hidden_layers;
  std::vector<Item> items;
  auto matrix = [&](const std::string& g, const std::string& h, WeightRole role, int layer,
                    int64_t rows, int64_t cols, int permute = 0) {
    items.push_back({layer_tensor_name(g, layer),
                     layer_tensor_name(h, layer),
                     {rows, cols},
                     matrix_type(type, role, layer, L, cols),
                     permute});
  };
  auto vec = [&](const std::string& g, const std::string& h, int layer, int64_t n,
                 int permute = 0) {
    items.push_back(
        {layer_tensor_name(g, layer), layer_tensor_name(h, layer), {n}, TensorType::kF32, permute});
  };
  // A tied embedding is llama.cpp's output head too, and is typed as one.
  matrix(a.gguf.embed, a.hf.embed, c.tie_word_embeddings ? WeightRole::kOutput : WeightRole::kEmbed,
         0, V, H);
  const int qh = a.gguf_qk_interleaved ? c.num_attention_heads : 0;
  const int kh = a.gguf_qk_interleaved ? c.num_key_value_heads : 0;
  for (int l = 0; l < L; ++l) {
    vec(a.gguf.attn_norm, a.hf.attn_norm, l, H);
    if (!a.hf.qkv.empty()) {
      matrix(a.gguf.qkv, a.hf.qkv, WeightRole::kQkv, l, qd + 2 * kvd, H);
      if (c.attention_bias) vec(bias_of(a.gguf.qkv), bias_of(a.hf.qkv), l, qd + 2 * kvd);
    } else {
      matrix(a.gguf.q, a.hf.q, WeightRole::kQ, l, qd, H, qh);
      matrix(a.gguf.k, a.hf.k, WeightRole::kK, l, kvd, H, kh);
      matrix(a.gguf.v, a.hf.v, WeightRole::kV, l, kvd, H);
      if (c.attention_bias) {
        vec(bias_of(a.gguf.q), bias_of(a.hf.q), l, qd, qh);
        vec(bias_of(a.gguf.k), bias_of(a.hf.k), l, kvd, kh);
        vec(bias_of(a.gguf.v), bias_of(a.hf.v), l, kvd);
      }
    }
    matrix(a.gguf.o, a.hf.o, WeightRole::kO, l, H, qd);
    if (c.o_bias) vec(bias_of(a.gguf.o), bias_of(a.hf.o), l, H);
    vec(a.gguf.mlp_norm, a.hf.mlp_norm, l, H);
    if (!a.hf.gate_up.empty()) {
      matrix(a.gguf.gate_up, a.hf.gate_up, WeightRole::kGateUp, l, 2 * I, H);
    } else {
      matrix(a.gguf.gate, a.hf.gate, WeightRole::kGate, l, I, H);
      matrix(a.gguf.up, a.hf.up, WeightRole::kUp, l, I, H);
    }
    matrix(a.gguf.down, a.hf.down, WeightRole::kDown, l, H, I);
    if (c.mlp_bias)
      throw Error(ErrorKind::kUnsupported,
                  "config.json: mlp_bias has no GGUF form that longctx "
                  "reads back; run the folder itself");
  }
  vec(a.gguf.final_norm, a.hf.final_norm, 0, H);
  if (!c.tie_word_embeddings) matrix(a.gguf.lm_head, a.hf.lm_head, WeightRole::kOutput, 0, V, H);
  return items;
}

// The tensor's values as f32, rows permuted for llama.cpp's adjacent-pair RoPE when asked:
// GGUF row 2i+s of a head is Hugging Face row i + s * head_size / 2.
void load_f32(const io::WeightSource& ws, const Item& it, std::vector<float>& out) {
  const io::TensorInfo& t = ws.get(it.hf_name);
  if (t.shape != it.shape) {
    std::string want, got;
    for (int64_t d : it.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
    for (int64_t d : t.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
    throw Error(ErrorKind::kShape, t.file + ": tensor " + it.hf_name + " has shape [" + got +
                                       "] but config.json implies [" + want +
                                       "]; the checkpoint and its config.json disagree");
  }
  const std::optional<DType> dt = float_dtype(t.type);
  if (!dt)
    throw Error(ErrorKind::kUnsupported, t.file + ": tensor " + it.hf_name +
                                             " is not a float "
                                             "tensor; quantize reads F32, F16 and BF16");
  const int64_t rows = it.shape[0];
  const int64_t cols = it.shape.size() == 2 ? it.shape[1] : 1;
  out.resize(static_cast<size_t>(rows * cols));
  const auto* src = static_cast<const uint8_t*>(t.data);
  const size_t es = dtype_size(*dt);
  const int64_t hs = it.permute_heads > 0 ? rows / it.permute_heads : 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t from = r;
    if (hs > 0) {
      const int64_t h = r / hs, i = (r % hs) / 2, s = (r % hs) % 2;
      from = h * hs + i + s * (hs / 2);
    }
    to_f32(*dt, src + static_cast<size_t>(from * cols) * es, out.data() + r * cols,
           static_cast<size_t>(cols));
  }
  // Done with the source: drop its pages, so the process holds one tensor at a time, not the
  // whole mapped checkpoint (they are clean pages of a read-only mapping).
  for (const auto& mf : ws.files())
    if (mf->path() == t.file) mf->advise(t.data, t.nbytes, io::MappedFile::Advice::kDontNeed);
}

void encode(ThreadPool& pool, const Item& it, const std::vector<float>& f, uint8_t* dst) {
  const int64_t cols = it.shape.back();
  const int64_t rows = static_cast<int64_t>(f.size()) / cols;
  if (it.type == TensorType::kF32) {
    std::memcpy(dst, f.data(), f.size() * sizeof(float));
    return;
  }
  const int64_t rb = row_bytes(it.type, cols);
  pool.parallel_for(rows, std::max<int64_t>(1, 65536 / cols), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      kernels::quantize_row(it.type, f.data() + r * cols, dst + r * rb, cols);
  });
}

// Llama 3.1's scaling as llama.cpp stores it: per-dimension divisors of the default inv_freq.
std::vector<float> llama3_factors(const ModelConfig& c) {
  const RopeScaling& rs = c.rope_scaling;
  const int dim = c.rot_dim();
  const double orig = static_cast<double>(rs.original_max_position_embeddings);
  const double lo = rs.low_freq_factor, hi = rs.high_freq_factor, f = rs.factor;
  std::vector<float> out;
  for (int i = 0; i < dim / 2; ++i) {
    const double freq = 1.0 / std::pow(c.rope_theta, 2.0 * i / dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < orig / hi) {
      out.push_back(1.f);
    } else if (wavelen > orig / lo) {
      out.push_back(static_cast<float>(f));
    } else {
      const double smooth = (orig / wavelen - lo) / (hi - lo);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / f + smooth)));
    }
  }
  return out;
}

std::string folder_name(const std::string& dir, const json& raw) {
  std::string n = raw.value("_name_or_path", std::string());
  if (n.empty()) n = fs::path(dir).lexically_normal().filename().string();
  if (n.empty()) n = fs::path(dir).lexically_normal().parent_path().filename().string();
  const auto slash = n.find_last_of('/');
  return slash == std::string::npos ? n : n.substr(slash + 1);
}

}  // namespace

GgufExportResult export_gguf(const std::string& dir, const std::string& out,
                             const GgufExportOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(ErrorKind::kIo, dir +
                                    " is not a folder; quantize reads a Hugging Face model "
                                    "folder (config.json, model.safetensors, tokenizer)");
  if (!fs::exists(fs::path(dir) / "config.json", ec))
    throw Error(ErrorKind::kIo, dir +
                                    " has no config.json; point -m at a Hugging Face model "
                                    "folder");
  (void)io::free_bytes_at(out);  // the output folder must exist: fail before any work
  if (fs::is_directory(out, ec))
    throw Error(ErrorKind::kInvalidArg, out + " is a folder; give -o a file name (model.gguf)");

  const ModelConfig c = load_model_config(dir);
  json raw;
  {
    std::ifstream f(fs::path(dir) / "config.json");
    raw = json::parse(f, nullptr, false);
  }
  const ArchSpec& a = arch_spec_for(c.model_type, dir + "/config.json");
  const std::string ar = a.gguf_arch + ".";
  const std::string cfg_file = dir + "/config.json";

  io::GgufWriter w;
  w.set_string("general.architecture", a.gguf_arch);
  w.set_string("general.type", "model");
  w.set_string("general.name", folder_name(dir, raw));
  w.set_u32(ar + "block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.set_u32(ar + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.set_u32(ar + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.set_u32(ar + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.set_u32(ar + "attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.set_u32(ar + "attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.set_f32(ar + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_f32(ar + "attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  if ((raw.is_object() && raw.contains("head_dim")) ||
      c.head_dim * c.num_attention_heads != c.hidden_size) {
    w.set_u32(ar + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(ar + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  w.set_u32("general.file_type", export_file_type(opt.type));
  // As llama.cpp's converter: its llama (and Mistral) writer adds vocab_size and the rotary
  // dimensions, phi3's the rotary dimensions; qwen2's neither (all rotary).
  if (a.gguf_arch == "llama") w.set_u32(ar + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (a.gguf_arch != "qwen2" || c.rot_dim() != c.head_dim)
    w.set_u32(ar + "rope.dimension_count", static_cast<uint32_t>(c.rot_dim()));

  // Sliding window: GGUF holds one window for every layer.
  const int64_t w0 = c.layer_window.empty() ? 0 : c.layer_window[0];
  for (int64_t lw : c.layer_window)
    if (lw != w0)
      throw Error(ErrorKind::kUnsupported,
                  cfg_file +
                      ": layers use different sliding windows (use_sliding_window with "
                      "max_window_layers); a GGUF file holds one window for all layers");
  if (w0 > 0) w.set_u32(ar + "attention.sliding_window", static_cast<uint32_t>(w0));

  // RoPE scaling (config/gguf_config.cc reads these back).
  const RopeScaling& rs = c.rope_scaling;
  std::vector<float> rope_freqs, long_f, short_f;
  switch (rs.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      w.set_string(ar + "rope.scaling.type", "linear");
      w.set_f32(ar + "rope.scaling.factor", static_cast<float>(rs.factor));
      break;
    case RopeType::kYarn:
      w.set_string(ar + "rope.scaling.type", "yarn");
      w.set_f32(ar + "rope.scaling.factor", static_cast<float>(rs.factor));
      w.set_u32(ar + "rope.scaling.original_context_length",
                static_cast<uint32_t>(rs.original_max_position_embeddings));
      w.set_f32(ar + "rope.scaling.yarn_beta_fast", static_cast<float>(rs.beta_fast));
      w.set_f32(ar + "rope.scaling.yarn_beta_slow", static_cast<float>(rs.beta_slow));
      break;
    case RopeType::kLlama3:
      rope_freqs = llama3_factors(c);
      break;
    case RopeType::kLongRope:
      long_f.assign(rs.long_factor.begin(), rs.long_factor.end());
      short_f.assign(rs.short_factor.begin(), rs.short_factor.end());
      w.set_u32(ar + "rope.scaling.original_context_length",
                static_cast<uint32_t>(rs.original_max_position_embeddings));
      w.set_f32(ar + "rope.scaling.attn_factor", static_cast<float>(rs.attention_factor));
      break;
    case RopeType::kDynamic:
      throw Error(ErrorKind::kUnsupported,
                  cfg_file +
                      ": rope_scaling type dynamic has no GGUF form that llama.cpp and "
                      "longctx read; run the folder itself");
  }

  const tok::ExportedVocab vocab = tok::export_vocab(dir, c.vocab_size);
  tok::write_vocab_metadata(vocab, w);
  w.set_u32("general.quantization_version", 2);

  const auto ws = io::WeightSource::open_dir(dir);
  const std::vector<Item> items = plan_tensors(c, a, opt.type);
  for (const Item& it : items) {
    if (!ws->find(it.hf_name))
      throw Error(ErrorKind::kShape, dir + ": has no tensor " + it.hf_name + ", which a " +
                                         c.model_type + " model of this config.json needs");
    w.add_tensor_deferred(it.gguf_name, it.type, it.shape);
  }
  auto add_small = [&](const char* name, const std::vector<float>& v) {
    if (!v.empty())
      w.add_tensor(name, TensorType::kF32, {static_cast<int64_t>(v.size())}, v.data(),
                   v.size() * sizeof(float));
  };
  add_small("rope_freqs.weight", rope_freqs);
  add_small("rope_factors_long.weight", long_f);
  add_small("rope_factors_short.weight", short_f);

  ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  std::vector<float> f32;  // the one f32 copy
  const size_t count = w.tensor_count();
  w.write(out, [&](size_t k, uint8_t* dst, uint64_t nbytes) {
    if (k >= items.size()) return;  // small tensors carry their data
    const Item& it = items[k];
    load_f32(*ws, it, f32);
    encode(pool, it, f32, dst);
    if (opt.progress) opt.progress(k, count, it.gguf_name, it.type, nbytes);
  });
  GgufExportResult r;
  r.tensors = count;
  r.file_bytes = w.file_bytes();
  return r;
}

}  // namespace longctx
