#include "tokenizer/gguf_vocab_export.h"

#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf_writer.h"
#include "tokenizer/file_util.h"
#include "tokenizer/gguf_pretokenizers.h"

namespace longctx::tok {
namespace {

using json = nlohmann::json;
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5,
                  kByte = 6;

json read_json_file(const std::string& path) {
  const std::string text = read_file(path, "JSON file");
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kFormat, path + " is not valid JSON: " + e.what());
  }
}

json optional_json(const std::string& path) {
  return file_exists(path) ? read_json_file(path) : json();
}

// llama.cpp's does_token_look_special: "<|...|>", "<｜...｜>", "<unused...>" and the common
// bracketed control names.
bool looks_special(const std::string& t) {
  auto wrapped = [&](const std::string& a, const std::string& b) {
    return t.size() >= a.size() + b.size() && t.compare(0, a.size(), a) == 0 &&
           t.compare(t.size() - b.size(), b.size(), b) == 0;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
         wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") ||
         wrapped("<unused", ">");
}

// A special token entry of tokenizer_config.json: a string, or an object with "content".
std::optional<std::string> config_token(const json& tc, const std::string& key) {
  if (!tc.is_object() || !tc.contains(key)) return std::nullopt;
  const json& e = tc[key];
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object() && e.contains("content") && e["content"].is_string())
    return e["content"].get<std::string>();
  return std::nullopt;
}

void load_sentencepiece(const std::string& dir, int64_t vocab, ExportedVocab& v) {
  const std::string path = dir + "/tokenizer.model";
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path);
  if (!status.ok())
    throw Error(ErrorKind::kFormat, path + " is not a SentencePiece model: " + status.ToString());
  v.model = "llama";
  v.pre = "default";
  v.tokens.resize(static_cast<size_t>(vocab));
  v.scores.assign(static_cast<size_t>(vocab), -10000.f);
  v.types.assign(static_cast<size_t>(vocab), kUnused);
  for (int64_t i = 0; i < vocab; ++i) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  const int n = std::min<int64_t>(sp.GetPieceSize(), vocab);
  for (int id = 0; id < n; ++id) {
    v.tokens[id] = sp.IdToPiece(id);
    v.scores[id] = sp.GetScore(id);
    v.types[id] = sp.IsUnknown(id)   ? kUnknown
                  : sp.IsControl(id) ? kControl
                  : sp.IsUnused(id)  ? kUnused
                  : sp.IsByte(id)    ? kByte
                                     : kNormal;
  }
  const json added = optional_json(dir + "/added_tokens.json");
  if (added.is_object())
    for (const auto& [text, id] : added.items())
      if (id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab) {
        const size_t i = id.get<size_t>();
        v.tokens[i] = text;
        v.scores[i] = -1000.f;
        v.types[i] = kUserDefined;
      }
  const json tc = optional_json(dir + "/tokenizer_config.json");
  if (tc.is_object() && tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object())
    for (const auto& [key, data] : tc["added_tokens_decoder"].items()) {
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        continue;
      }
      if (id < 0 || id >= vocab || !data.is_object() || !data.contains("content")) continue;
      std::string text = data["content"].get<std::string>();
      const bool special = data.value("special", false) || looks_special(text);
      if (!special) {  // user-defined spaces are written pre-normalized, as llama.cpp does
        for (size_t at; (at = text.find("\xE2\x96\x81")) != std::string::npos;)
          text.replace(at, 3, " ");
      }
      v.tokens[static_cast<size_t>(id)] = text;
      v.scores[static_cast<size_t>(id)] = -1000.f;
      v.types[static_cast<size_t>(id)] = special ? kControl : kUserDefined;
    }
}

// tokenizer.ggml.pre for a tokenizer.json's normalizer + pre_tokenizer; "" when none fits.
std::string pre_tokenizer_name(const json& tj) {
  const json& norm = tj.contains("normalizer") ? tj["normalizer"] : json();
  const json& pre = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : json();
  if (!pre.is_object()) return "";
  auto byte_level = [](const json& p, bool use_regex) {
    return p.is_object() && p.value("type", "") == "ByteLevel" &&
           p.value("use_regex", true) == use_regex && !p.value("add_prefix_space", false);
  };
  const bool nfc = norm.is_object() && norm.value("type", "") == "NFC";
  if (!norm.is_null() && !nfc) return "";
  if (byte_level(pre, true)) return nfc ? "" : "gpt-2";
  if (pre.value("type", "") != "Sequence" || !pre.contains("pretokenizers")) return "";
  const json& seq = pre["pretokenizers"];
  if (seq.size() != 2) return "";
  if (!nfc && seq[0].value("type", "") == "Digits" && seq[0].value("individual_digits", false) &&
      byte_level(seq[1], true))
    return "smollm";
  if (seq[0].value("type", "") == "Split" && byte_level(seq[1], false) &&
      seq[0].contains("pattern") && seq[0]["pattern"].contains("Regex") &&
      seq[0].value("behavior", "") == "Isolated" && !seq[0].value("invert", false)) {
    const std::string rx = seq[0]["pattern"]["Regex"].get<std::string>();
    for (const char* name : {"llama-bpe", "qwen2"}) {
      const GgufPreTokenizer* p = find_gguf_pre_tokenizer(name);
      if (p && p->regexes.size() == 1 && p->regexes[0] == rx && (nfc == (name[0] == 'q')))
        return name;
    }
  }
  return "";
}

void load_byte_level_bpe(const std::string& dir, const json& tj, int64_t vocab, ExportedVocab& v) {
  const std::string path = dir + "/tokenizer.json";
  const json& model = tj.contains("model") ? tj["model"] : json();
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") ||
      model.value("byte_fallback", false))
    throw Error(ErrorKind::kUnsupported,
                path + ": only byte-level BPE tokenizer.json files (or a SentencePiece "
                       "tokenizer.model beside them) can be written as a GGUF vocabulary; add the "
                       "model's tokenizer.model to the folder");
  v.model = "gpt2";
  v.pre = pre_tokenizer_name(tj);
  if (v.pre.empty())
    throw Error(ErrorKind::kUnsupported,
                path + ": its normalizer/pre_tokenizer is none that longctx can name in "
                       "tokenizer.ggml.pre (it recognises byte-level BPE as gpt-2, smollm, "
                       "llama-bpe and qwen2); convert this model with llama.cpp's "
                       "convert_hf_to_gguf.py instead");
  v.tokens.assign(static_cast<size_t>(vocab), std::string());
  v.types.assign(static_cast<size_t>(vocab), kUnused);
  std::vector<bool> set(static_cast<size_t>(vocab), false);
  auto put = [&](const std::string& text, int64_t id, int32_t type) {
    if (id < 0 || id >= vocab) return;
    v.tokens[static_cast<size_t>(id)] = text;
    v.types[static_cast<size_t>(id)] = type;
    set[static_cast<size_t>(id)] = true;
  };
  for (const auto& [text, id] : model["vocab"].items())
    if (id.is_number_integer()) put(text, id.get<int64_t>(), kNormal);
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (const json& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
      const std::string text = a["content"].get<std::string>();
      const bool special = a.value("special", false) || looks_special(text);
      put(text, a["id"].get<int64_t>(), special ? kControl : kUserDefined);
    }
  for (int64_t i = 0; i < vocab; ++i)
    if (!set[static_cast<size_t>(i)]) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  if (model.contains("merges") && model["merges"].is_array())
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {
        // Pairs may hold spaces; llama.cpp writes them as U+0120 ("Ġ") in its "a b" form.
        std::string s;
        for (int k = 0; k < 2; ++k) {
          if (k) s += ' ';
          for (char c : m[k].get<std::string>()) s += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
        }
        v.merges.push_back(s);
      } else {
        throw Error(ErrorKind::kFormat, path + ": model.merges holds an entry that is neither "
                                               "\"a b\" nor [a, b]");
      }
    }
}

// Special ids and add_bos/add_eos, as llama.cpp's SpecialVocab finds them.
void special_tokens(const std::string& dir, const json& tj, ExportedVocab& v) {
  const json tc = optional_json(dir + "/tokenizer_config.json");
  const json cfg = optional_json(dir + "/config.json");
  const int64_t n = static_cast<int64_t>(v.tokens.size());
  const json added = tj.is_object() && tj.contains("added_tokens") ? tj["added_tokens"] : json();
  std::optional<std::string> bos_text = config_token(tc, "bos_token");
  std::optional<std::string> eos_text = config_token(tc, "eos_token");
  // TemplateProcessing: a leading special token is BOS added, a trailing one EOS added.
  if (tj.is_object() && tj.contains("post_processor") && tj["post_processor"].is_object()) {
    const json& pp = tj["post_processor"];
    const json procs = pp.contains("processors") ? pp["processors"] : json::array({pp});
    for (const json& p : procs) {
      if (!p.is_object() || p.value("type", "") != "TemplateProcessing" || !p.contains("single"))
        continue;
      const json& single = p["single"];
      if (!single.is_array() || single.size() < 2) continue;
      auto special_at = [&](size_t i) -> std::optional<std::string> {
        const json& e = single[i];
        if (e.is_object() && e.contains("SpecialToken")) return e["SpecialToken"].value("id", "");
        return std::nullopt;
      };
      if (auto first = special_at(0)) {
        if (!tc.is_object()) bos_text = first;
        v.add_bos = bos_text && *first == *bos_text;
      }
      if (auto last = special_at(single.size() - 1)) {
        if (!tc.is_object()) eos_text = last;
        v.add_eos = eos_text && *last == *eos_text;
      }
    }
  }
  auto set = [&](std::optional<int32_t>& slot, const json& id) {
    if (!slot && id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < n)
      slot = id.get<int32_t>();
  };
  struct Slot {
    const char* typ;
    std::optional<int32_t>* id;
    std::optional<bool>* add;
  };
  const Slot slots[] = {{"bos", &v.bos, &v.add_bos},
                        {"eos", &v.eos, &v.add_eos},
                        {"unk", &v.unk, nullptr},
                        {"pad", &v.pad, nullptr}};
  for (const Slot& s : slots) {
    const std::string typ = s.typ;
    if (s.add && tc.is_object() && tc.contains("add_" + typ + "_token") &&
        tc["add_" + typ + "_token"].is_boolean())
      *s.add = tc["add_" + typ + "_token"].get<bool>();
    std::optional<std::string> text = config_token(tc, typ + "_token");
    if (typ == "bos" && !text) text = bos_text;
    if (typ == "eos" && !text) text = eos_text;
    if (text && added.is_array())
      for (const json& a : added)
        if (a.is_object() && a.value("content", "") == *text && a.contains("id")) {
          set(*s.id, a["id"]);
          break;
        }
  }
  if (cfg.is_object())
    for (const Slot& s : slots) {
      const std::string key = std::string(s.typ) + "_token_id";
      if (cfg.contains(key)) set(*s.id, cfg[key]);
    }
  if (tc.is_object() && tc.contains("chat_template") && tc["chat_template"].is_string())
    v.chat_template = tc["chat_template"].get<std::string>();
  else if (file_exists(dir + "/chat_template.jinja"))
    v.chat_template = read_file(dir + "/chat_template.jinja", "chat template");
}

}  // namespace

ExportedVocab export_vocab(const std::string& dir, int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > (int64_t{1} << 24))
    throw Error(ErrorKind::kInvalidArg,
                dir + ": vocab_size " + std::to_string(vocab_size) + " is out of range");
  ExportedVocab v;
  json tj;
  // The tokenizer longctx runs the folder with: a byte-level BPE tokenizer.json it can name,
  // else tokenizer.model (Llama 2, Mistral and Phi-3 folders ship a byte-fallback tokenizer.json
  // beside it, which is SentencePiece's vocabulary: llama.cpp's converter reads tokenizer.model).
  const bool has_json = file_exists(dir + "/tokenizer.json");
  if (has_json) tj = read_json_file(dir + "/tokenizer.json");
  const bool byte_level = has_json && tj.is_object() && tj.contains("model") &&
                          tj["model"].is_object() && tj["model"].value("type", "") == "BPE" &&
                          !tj["model"].value("byte_fallback", false) &&
                          !pre_tokenizer_name(tj).empty();
  if (byte_level || (has_json && !file_exists(dir + "/tokenizer.model"))) {
    load_byte_level_bpe(dir, tj, vocab_size, v);
  } else if (file_exists(dir + "/tokenizer.model")) {
    load_sentencepiece(dir, vocab_size, v);
  } else {
    throw Error(ErrorKind::kIo, dir + " has neither tokenizer.model nor tokenizer.json; a GGUF "
                                      "file carries its tokenizer, so add the model's tokenizer "
                                      "files to the folder");
  }
  special_tokens(dir, tj, v);
  return v;
}

void write_vocab_metadata(const ExportedVocab& v, io::GgufWriter& w) {
  w.set_string("tokenizer.ggml.model", v.model);
  w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_strings("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) w.set_f32s("tokenizer.ggml.scores", v.scores);
  w.set_i32s("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) w.set_strings("tokenizer.ggml.merges", v.merges);
  auto id = [&](const char* key, const std::optional<int32_t>& x) {
    if (x) w.set_u32(key, static_cast<uint32_t>(*x));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  if (v.add_bos) w.set_bool("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) w.set_bool("tokenizer.ggml.add_eos_token", *v.add_eos);
  if (!v.chat_template.empty()) w.set_string("tokenizer.chat_template", v.chat_template);
}

}  // namespace longctx::tok
