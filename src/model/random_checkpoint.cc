#include "model/random_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "config/arch.h"
#include "config/model_config.h"
#include "core/error.h"
#include "io/weights.h"
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
  if (cfg.contains("model_type") && cfg["model_type"].is_string()) {
    const ArchSpec& arch = arch_spec_for(cfg["model_type"].get<std::string>());
    if (!cfg.contains("architectures")) cfg["architectures"] = json::array({arch.hf_class});
    // llama.cpp's Phi-3 converter reads original_max_position_embeddings (every published Phi-3
    // config.json has it); write the class default that longctx assumes when it is absent.
    if (arch.original_max_position_embeddings > 0 && !cfg.contains("original_max_position_embeddings"))
      cfg["original_max_position_embeddings"] = arch.original_max_position_embeddings;
  }
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

namespace {

// Removes its folder (and what is left in it) unless released.
struct TempDir {
  explicit TempDir(fs::path p) : path(std::move(p)) {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (!fs::create_directory(path, ec) || ec)
      throw Error(ErrorKind::kIo, "cannot create " + path.string() + ": " +
                                      (ec ? ec.message() : std::string("it exists")) +
                                      "; check that the folder is writable");
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  fs::path path;
};

// Whether `target` exists (then as a folder that may be written to). Refuses a file, and a folder
// that holds anything unless `overwrite`.
bool check_target(const fs::path& target, bool overwrite) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(target, ec);
  if (ec || !fs::exists(st)) return false;
  const fs::file_status real = fs::status(target, ec);
  if (ec)
    throw Error(ErrorKind::kIo, target.string() + " cannot be used as the output folder (" +
                                    ec.message() + "); choose another -o");
  if (!fs::is_directory(real))
    throw Error(ErrorKind::kInvalidArg, target.string() +
                                            " exists and is not a folder; give -o a new or empty "
                                            "folder");
  std::vector<std::string> held;
  for (const auto& e : fs::directory_iterator(target, ec)) {
    held.push_back(e.path().filename().string());
    if (held.size() == 4) break;
  }
  if (ec) throw Error(ErrorKind::kIo, "cannot list " + target.string() + ": " + ec.message());
  if (!held.empty() && !overwrite) {
    std::string list;
    for (const std::string& h : held) list += (list.empty() ? "" : ", ") + h;
    throw Error(ErrorKind::kInvalidArg,
                target.string() + " is not empty (it holds " + list +
                    (held.size() == 4 ? ", ..." : "") +
                    "); random-model would replace its config.json, weights and tokenizer "
                    "files. Give -o a new or empty folder, or add --force to replace them");
  }
  return true;
}

// Moves the finished files of `staging` to `target`: the whole folder at once when there is
// nothing to keep, else file by file with config.json (which marks completion) removed first and
// renamed in last.
void publish(TempDir& staging, const fs::path& target, bool target_exists) {
  std::error_code ec;
  if (target_exists && fs::is_empty(target, ec)) {
    fs::remove(target, ec);
    target_exists = false;
  }
  if (!target_exists) {
    fs::rename(staging.path, target, ec);
    if (ec)
      throw Error(ErrorKind::kIo,
                  "cannot move the checkpoint to " + target.string() + ": " + ec.message());
    staging.path.clear();
    return;
  }
  fs::remove(target / "config.json", ec);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer.model"}) {
    const fs::path from = staging.path / f;
    if (!fs::exists(from)) {
      // A tokenizer.model left from before would not match this vocabulary.
      if (std::string(f) == "tokenizer.model") fs::remove(target / f, ec);
      continue;
    }
    fs::rename(from, target / f, ec);
    if (ec)
      throw Error(ErrorKind::kIo, "cannot move " + std::string(f) + " into " + target.string() +
                                      ": " + ec.message());
  }
  // Shards of an earlier checkpoint would be read instead of model.safetensors' neighbours.
  fs::remove(target / "model.safetensors.index.json", ec);
  fs::rename(staging.path / "config.json", target / "config.json", ec);
  if (ec)
    throw Error(ErrorKind::kIo,
                "cannot move config.json into " + target.string() + ": " + ec.message());
}

}  // namespace

void write_random_checkpoint(const std::string& dir, const RandomCheckpointOptions& opt) {
  const json cfg_json = make_config(opt);
  const ModelConfig cfg = parse_model_config(cfg_json.dump(), "generated config");
  fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();  // "out/"
  if (target.empty()) throw Error(ErrorKind::kInvalidArg, "give -o the folder to write");
  const bool target_exists = check_target(target, opt.overwrite);
  // Everything is written into a private folder beside the target (same file system, so the
  // renames below are atomic) and removed if anything fails.
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error(ErrorKind::kIo, "cannot create " + parent.string() + ": " + ec.message());
  std::string staging_name = ".longctx-tmp-" + std::to_string(static_cast<long>(::getpid()));
  staging_name += '-';
  staging_name += target.filename().string();
  TempDir staging(parent / staging_name);
  const fs::path d = staging.path;

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
  write_text_atomic(d / "config.json", cfg_json.dump(2) + "\n");
  publish(staging, target, target_exists);
}

}  // namespace longctx
