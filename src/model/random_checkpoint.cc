#include "model/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "config/model_config.h"
#include "core/error.h"
#include "io/weights.h"
#include "config/arch.h"
#include "model/presets.h"
#include "model/synthetic_spm.h"

namespace longctx {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A tensor filled with uniform values in [center - amp, center + amp], in `dtype`.
std::vector<uint8_t> random_tensor(const std::string& name, int64_t numel, DType dtype,
                                   float center, float amp, uint64_t seed) {
  std::vector<uint8_t> out(static_cast<size_t>(numel) * dtype_size(dtype));
  uint64_t s = hash_name(name, seed);
  constexpr int64_t kChunk = 4096;
  std::vector<float> buf(kChunk);
  for (int64_t i = 0; i < numel; i += kChunk) {
    const int64_t n = std::min(kChunk, numel - i);
    for (int64_t j = 0; j < n; j += 2) {
      const uint64_t r = splitmix64(s);
      const float u0 = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
      const float u1 = static_cast<float>((r >> 16) & 0xffffff) * (1.0f / 16777216.0f);
      buf[j] = center + amp * (2 * u0 - 1);
      if (j + 1 < n) buf[j + 1] = center + amp * (2 * u1 - 1);
    }
    from_f32(dtype, buf.data(), out.data() + i * dtype_size(dtype), n);
  }
  return out;
}

// GPT-2 byte-level alphabet: byte -> printable code point, as UTF-8.
std::vector<std::string> byte_alphabet() {
  std::vector<int> cps(256, -1);
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cps[b] = b;
  for (int b = 0; b < 256; ++b)
    if (cps[b] < 0) cps[b] = 256 + n++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    const int cp = cps[b];
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

// A byte-level BPE tokenizer.json with exactly `vocab` tokens: <unk>, <s>, </s>, the 256 bytes,
// then deterministic merges of lowercase letters (with the space marker "Ġ" as a word start).
json synthetic_tokenizer(int64_t vocab, uint64_t seed) {
  const std::vector<std::string> bytes = byte_alphabet();
  json v = json::object();
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (const auto& b : bytes) tokens.push_back(b);
  json merges = json::array();
  std::set<std::string> seen(tokens.begin(), tokens.end());
  std::vector<std::string> letters_only, word_starts;
  for (char c = 'a'; c <= 'z'; ++c) letters_only.push_back(std::string(1, c));
  const std::string space = bytes[' '];
  for (char c = 'a'; c <= 'z' && static_cast<int64_t>(tokens.size()) < vocab; ++c) {
    const std::string t = space + c;
    merges.push_back(space + " " + c);
    tokens.push_back(t);
    seen.insert(t);
    word_starts.push_back(t);
  }
  uint64_t s = seed ^ 0x5eedull;
  int guard = 0;
  while (static_cast<int64_t>(tokens.size()) < vocab && guard < 50000000) {
    ++guard;
    const uint64_t r = splitmix64(s);
    const bool from_start = (r & 1) != 0;
    const auto& pool_a = from_start ? word_starts : letters_only;
    const std::string& a = pool_a[(r >> 8) % pool_a.size()];
    const std::string& b = letters_only[(r >> 36) % std::min<size_t>(letters_only.size(), 4096)];
    if (a.size() + b.size() > 12) continue;
    const std::string t = a + b;
    if (!seen.insert(t).second) continue;
    merges.push_back(a + " " + b);
    tokens.push_back(t);
    (from_start ? word_starts : letters_only).push_back(t);
  }
  if (static_cast<int64_t>(tokens.size()) < vocab)
    throw Error(ErrorKind::kInternal, "could not build a synthetic vocabulary of that size");
  for (size_t i = 0; i < tokens.size(); ++i) v[tokens[i]] = i;

  json added = json::array();
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  json tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] = added;
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}};
  tok["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", json::array({1})}, {"tokens", json::array({"<s>"})}}}}}};
  tok["decoder"] = {{"type", "ByteLevel"},
                    {"add_prefix_space", true},
                    {"trim_offsets", true},
                    {"use_regex", true}};
  tok["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"vocab", v},
                  {"merges", merges}};
  return tok;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw Error(ErrorKind::kIo, "cannot write " + tmp.string() + "; check disk space");
  }
  fs::rename(tmp, path);
}

std::string fingerprint(const RandomCheckpointOptions& o) {
  std::ostringstream s;
  s << "longctx-random v3 preset=" << (o.config_json.empty() ? o.preset : "custom")
    << " layers=" << o.layers << " maxpos=" << o.max_position_embeddings
    << " dtype=" << dtype_name(o.dtype) << " seed=" << o.seed << " cfg=" << hash_name(o.config_json, 0);
  return s.str();
}

json make_config(const RandomCheckpointOptions& o) {
  json cfg = json::parse(o.config_json.empty() ? find_preset(o.preset).config_json : o.config_json);
  if (o.layers > 0) cfg["num_hidden_layers"] = o.layers;
  if (o.max_position_embeddings > 0) cfg["max_position_embeddings"] = o.max_position_embeddings;
  cfg["torch_dtype"] = o.dtype == DType::kF32 ? "float32"
                       : o.dtype == DType::kF16 ? "float16" : "bfloat16";
  cfg["longctx_random_weights"] = fingerprint(o);
  // A proper Hugging Face folder: tools detect the family from "architectures".
  if (!cfg.contains("architectures") && cfg.contains("model_type") && cfg["model_type"].is_string())
    cfg["architectures"] = json::array({arch_spec_for(cfg["model_type"].get<std::string>()).hf_class});
  return cfg;
}

}  // namespace

bool random_checkpoint_matches(const std::string& dir, const RandomCheckpointOptions& opt) {
  const fs::path d(dir);
  if (!fs::exists(d / "model.safetensors") || !fs::exists(d / "tokenizer.json")) return false;
  std::ifstream f(d / "config.json");
  if (!f) return false;
  try {
    const json cfg = json::parse(f);
    return cfg.value("longctx_random_weights", std::string()) == fingerprint(opt);
  } catch (const json::exception&) {
    return false;
  }
}

void write_random_checkpoint(const std::string& dir, const RandomCheckpointOptions& opt) {
  const json cfg_json = make_config(opt);
  const ModelConfig cfg = parse_model_config(cfg_json.dump(), "generated config");
  const fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw Error(ErrorKind::kIo, "cannot create " + dir + ": " + ec.message());
  fs::remove(d / "config.json", ec);  // an incomplete folder never looks complete

  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
  const int64_t qd = int64_t{cfg.num_attention_heads} * cfg.head_dim;
  const int64_t kvd = int64_t{cfg.num_key_value_heads} * cfg.head_dim;
  std::vector<std::vector<uint8_t>> store;
  std::vector<io::TensorToWrite> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float center, float amp) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    store.push_back(random_tensor(name, n, opt.dtype, center, amp, opt.seed));
    tensors.push_back({name, opt.dtype, shape, nullptr});
  };
  // Tensor names and biases come from the architecture's ArchSpec, as the decoder reads them.
  const TensorNames& names = arch_spec_for(cfg.model_type).hf;
  auto bias_of = [](const std::string& weight) {
    return weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
  };
  // Uniform amplitude a gives std a/sqrt(3); 1/sqrt(fan_in) keeps activations of order one.
  const float a_h = 1.0f / std::sqrt(static_cast<float>(H));
  const float a_i = 1.0f / std::sqrt(static_cast<float>(I));
  add(names.embed, {V, H}, 0, 1.0f);
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto name = [&](const std::string& t) { return layer_tensor_name(t, l); };
    add(name(names.attn_norm), {H}, 1, 0.1f);
    add(name(names.mlp_norm), {H}, 1, 0.1f);
    if (!names.qkv.empty()) {
      add(name(names.qkv), {qd + 2 * kvd, H}, 0, a_h);
      if (cfg.attention_bias) add(bias_of(name(names.qkv)), {qd + 2 * kvd}, 0, 0.1f);
    } else {
      const std::pair<const std::string*, int64_t> qkv[] = {
          {&names.q, qd}, {&names.k, kvd}, {&names.v, kvd}};
      for (const auto& [t, rows] : qkv) add(name(*t), {rows, H}, 0, a_h);
      if (cfg.attention_bias)
        for (const auto& [t, rows] : qkv) add(bias_of(name(*t)), {rows}, 0, 0.1f);
    }
    add(name(names.o), {H, qd}, 0, a_h);
    if (cfg.o_bias) add(bias_of(name(names.o)), {H}, 0, 0.1f);
    if (!names.gate_up.empty()) {
      add(name(names.gate_up), {2 * I, H}, 0, a_h);
    } else {
      add(name(names.gate), {I, H}, 0, a_h);
      add(name(names.up), {I, H}, 0, a_h);
    }
    add(name(names.down), {H, I}, 0, a_i);
  }
  add(names.final_norm, {H}, 1, 0.1f);
  if (!cfg.tie_word_embeddings) add(names.lm_head, {V, H}, 0, a_h);
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = store[i].data();

  io::write_safetensors((d / "model.safetensors").string(), tensors,
                        {{"format", "pt"}, {"longctx", "random weights: meaningless text"}});
  store.clear();
  const json tokenizer = synthetic_tokenizer(V, opt.seed);
  write_text_atomic(d / "tokenizer.json", tokenizer.dump());
  // The same words as a SentencePiece model, for llama.cpp's converter (synthetic_spm.h).
  std::vector<std::string> words;
  const std::string g = "\xC4\xA0";  // byte-level BPE's word-start marker "Ġ"
  for (const auto& m : tokenizer["model"]["merges"]) {
    std::string w = m.get<std::string>();
    w.erase(w.find(' '), 1);
    if (w.rfind(g, 0) == 0) w = "\xE2\x96\x81" + w.substr(g.size());
    words.push_back(w);
  }
  const std::string spm = synthetic_spm_model(words, V);
  if (!spm.empty()) write_text_atomic(d / "tokenizer.model", spm);
  write_text_atomic(d / "config.json", cfg_json.dump(2) + "\n");  // last: marks completion
}

}  // namespace longctx
