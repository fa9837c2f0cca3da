// Loading a Hugging Face tokenizer.json: parses every section into the pieces of HfTokenizer and
// finds BOS / EOS (tokenizer_config.json or config.json beside it, else the post-processor and
// the usual token names).
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_util.h"
#include "tokenizer/file_util.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/json_util.h"

namespace longctx {
namespace {

using nlohmann::json;
using tok::json_fail;

std::vector<std::pair<std::string, std::string>> parse_merges(const json& model,
                                                              const std::string& where) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!model.contains("merges") || model["merges"].is_null()) return merges;
  const json& m = tok::json_array(model, "merges", where);
  merges.reserve(m.size());
  for (const auto& e : m) {
    if (e.is_string()) {  // "a b"
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        json_fail(where, "merge '" + s + "' is not two tokens separated by one space");
      }
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      json_fail(where, "model.merges entries must be \"a b\" strings or [a, b] pairs");
    }
  }
  return merges;
}

// Token ids index a table (BpeModel::id_to_token), so an id costs memory up to its value: a
// hostile id of 20,000,000 alone would take 640 MiB. Ids must lie below twice the number of
// tokens the file defines (real files are dense; this leaves room for gaps), which keeps the
// table proportional to the file, as the memory plan prices it.
struct IdLimit {
  int64_t tokens = 0;  // vocab entries + added tokens in the file
  int64_t limit = 0;   // ids must be below this
};

IdLimit id_limit(const json& j) {
  IdLimit l;
  if (j.contains("model") && j["model"].is_object() && j["model"].contains("vocab") &&
      j["model"]["vocab"].is_object())
    l.tokens += static_cast<int64_t>(j["model"]["vocab"].size());
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    l.tokens += static_cast<int64_t>(j["added_tokens"].size());
  l.limit = std::min<int64_t>(2 * l.tokens + 256, int64_t{INT32_MAX} + 1);
  return l;
}

void check_id(int64_t id, const IdLimit& l, const std::string& field, const std::string& token,
              const std::string& where) {
  if (id < l.limit) return;
  json_fail(where, field + " id " + std::to_string(id) + " of '" + token +
                       "' is out of range: the file defines " + std::to_string(l.tokens) +
                       " tokens, so ids must be below " + std::to_string(l.limit) +
                       "; the tokenizer.json is corrupt or hand-edited");
}

std::unique_ptr<tok::BpeModel> parse_model(const json& j, const std::string& where) {
  if (!j.contains("model") || !j["model"].is_object()) json_fail(where, "no \"model\" object");
  const json& model = j["model"];
  const std::string type = tok::json_string_or(model, "type", "BPE", where);
  if (type != "BPE") {
    throw Error(ErrorKind::kUnsupported,
                where + ": tokenizer.json model type '" + type +
                    "' is not supported; longctx supports BPE tokenizer.json files and "
                    "SentencePiece tokenizer.model files (use the model's tokenizer.model if it "
                    "has one)");
  }
  if (!tok::json_string_or(model, "continuing_subword_prefix", "", where).empty() ||
      !tok::json_string_or(model, "end_of_word_suffix", "", where).empty()) {
    throw Error(ErrorKind::kUnsupported,
                where + ": BPE continuing_subword_prefix / end_of_word_suffix are not supported");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    json_fail(where, "model.vocab must be an object of token -> id");
  }
  tok::Vocab vocab;
  vocab.reserve(model["vocab"].size());
  const IdLimit limit = id_limit(j);
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      json_fail(where, "model.vocab id of '" + token + "' is not a valid token id");
    }
    check_id(id.get<int64_t>(), limit, "model.vocab", token, where);
    vocab.emplace(token, id.get<int32_t>());
  }
  tok::BpeOptions opt;
  opt.unk_token = tok::json_string_or(model, "unk_token", "", where);
  opt.fuse_unk = tok::json_bool(model, "fuse_unk", false, where);
  opt.byte_fallback = tok::json_bool(model, "byte_fallback", false, where);
  opt.ignore_merges = tok::json_bool(model, "ignore_merges", false, where);
  return std::make_unique<tok::BpeModel>(std::move(vocab), parse_merges(model, where), opt, where);
}

std::vector<tok::AddedToken> parse_added(const json& j, const std::string& where) {
  std::vector<tok::AddedToken> out;
  if (!j.contains("added_tokens") || j["added_tokens"].is_null()) return out;
  const IdLimit limit = id_limit(j);
  for (const auto& a : tok::json_array(j, "added_tokens", where)) {
    tok::AddedToken t;
    const int64_t id = tok::json_int(a, "id", -1, where);
    if (id < 0 || id > INT32_MAX) json_fail(where, "added token without a valid \"id\"");
    t.id = static_cast<int32_t>(id);
    t.content = tok::json_string(a, "content", where);
    check_id(id, limit, "added_tokens", t.content, where);
    t.single_word = tok::json_bool(a, "single_word", false, where);
    t.lstrip = tok::json_bool(a, "lstrip", false, where);
    t.rstrip = tok::json_bool(a, "rstrip", false, where);
    t.special = tok::json_bool(a, "special", false, where);
    t.normalized = tok::json_bool(a, "normalized", !t.special, where);
    out.push_back(std::move(t));
  }
  return out;
}

// A token given as "<s>" or {"content": "<s>", ...} in tokenizer_config.json.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return {};
}

// An id from config.json: a hint like the rest, so one outside [0, vocab) is dropped (-1) rather
// than handed out by encode() (the model's config check reports a bad id on its own).
int32_t config_id(const json& cfg, const char* key, int64_t vocab) {
  if (!cfg.is_object() || !cfg.contains(key)) return -1;
  const json* v = &cfg[key];
  if (v->is_array() && !v->empty()) v = &(*v)[0];
  if (!v->is_number_integer()) return -1;
  const bool in_vocab = v->is_number_unsigned()
                            ? v->get<uint64_t>() < uint64_t(vocab)
                            : v->get<int64_t>() >= 0 && v->get<int64_t>() < vocab;
  return in_vocab ? static_cast<int32_t>(v->get<int64_t>()) : -1;
}

// The text of a side file ("" when absent or unreadable).
std::string read_side_text(const std::string& path) {
  if (!tok::file_exists(path)) return "";
  try {
    return tok::read_file(path, "JSON file");
  } catch (const std::exception&) {
    return "";
  }
}

json parse_side_json(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const std::exception&) {
    return json();  // a broken side file only loses the BOS/EOS hint
  }
}

// The vocabulary HfTokenizer will have: the model's tokens and the added ones.
int64_t vocab_size_of(const tok::HfTokenizerParts& p) {
  int64_t vocab = static_cast<int64_t>(p.model->id_to_token().size());
  for (const auto& a : p.added) vocab = std::max<int64_t>(vocab, int64_t{a.id} + 1);
  return vocab;
}

void find_bos_eos(tok::HfTokenizerParts& p, const tok::BpeModel& model,
                  const std::string& tokenizer_config_text, const std::string& config_text) {
  auto id_of = [&](const std::string& s) -> int32_t {
    if (s.empty()) return -1;
    for (const auto& a : p.added) {
      if (a.content == s) return a.id;
    }
    return model.token_to_id(s);
  };
  const json tc = parse_side_json(tokenizer_config_text);
  p.bos_id = id_of(config_token(tc, "bos_token"));
  p.eos_id = id_of(config_token(tc, "eos_token"));
  const json mc = parse_side_json(config_text);
  const int64_t vocab = vocab_size_of(p);
  if (p.bos_id < 0) p.bos_id = config_id(mc, "bos_token_id", vocab);
  if (p.eos_id < 0) p.eos_id = config_id(mc, "eos_token_id", vocab);
  if (p.bos_id < 0 && !p.post.prefix.empty()) p.bos_id = p.post.prefix.front();
  for (const char* name : {"<s>", "<|begin_of_text|>", "<bos>"}) {
    if (p.bos_id < 0) p.bos_id = id_of(name);
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"}) {
    if (p.eos_id < 0) p.eos_id = id_of(name);
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) {
  const std::string text = tok::read_file(path, "tokenizer.json");
  const std::string dir = path.substr(0, path.find_last_of('/') + 1);
  return parse_tokenizer_json(text, path, read_side_text(dir + "tokenizer_config.json"),
                              read_side_text(dir + "config.json"));
}

std::unique_ptr<Tokenizer> parse_tokenizer_json(const std::string& text, const std::string& path,
                                                const std::string& tokenizer_config_text,
                                                const std::string& config_text) {
  json j;
  try {
    j = json::parse(text, io::json_depth_limit(path));  // values are printed in messages
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kFormat, path + ": malformed tokenizer.json (" + e.what() +
                                        "); the file is truncated or not JSON, download it again");
  }
  if (!j.is_object()) json_fail(path, "the top level is not an object");
  try {
    tok::HfTokenizerParts p;
    p.path = path;
    p.model = parse_model(j, path);
    p.added = parse_added(j, path);
    const json null;
    p.normalizer = tok::parse_normalizer(j.contains("normalizer") ? j["normalizer"] : null, path);
    p.pre_tokenizer =
        tok::parse_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : null, path);
    p.decoder = tok::parse_decoder(j.contains("decoder") ? j["decoder"] : null, path);
    p.post =
        tok::parse_post_processor(j.contains("post_processor") ? j["post_processor"] : null, path);
    // The post-processor's ids are added to every encoding with special tokens.
    const int64_t vocab = vocab_size_of(p);
    if (vocab == 0)
      json_fail(path, "the vocabulary is empty (model.vocab and added_tokens define no token); "
                      "the tokenizer.json is truncated or not the model's");
    for (const std::vector<int32_t>* ids : {&p.post.prefix, &p.post.suffix})
      for (int32_t id : *ids)
        if (id < 0 || id >= vocab)
          json_fail(path, "post_processor adds token id " + std::to_string(id) +
                              ", outside the vocabulary of " + std::to_string(vocab) + " tokens");
    find_bos_eos(p, *p.model, tokenizer_config_text, config_text);
    return std::make_unique<tok::HfTokenizer>(std::move(p));
  } catch (const json::exception& e) {
    // Any mistyped value that slipped past the checked accessors.
    throw Error(ErrorKind::kFormat, path + ": malformed tokenizer.json (" + e.what() +
                                        "); re-export it with Hugging Face tokenizers");
  }
}

}  // namespace longctx
