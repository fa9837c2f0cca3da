#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/bpe.h"

namespace longctx::tok {
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::kFormat, where + ": " + what +
                                      "; the GGUF file's tokenizer metadata is malformed, "
                                      "convert the model again with llama.cpp's "
                                      "convert_hf_to_gguf.py");
}

// An optional per-token array must have exactly one entry per token.
void check_count(const std::string& where, const char* key, size_t n, size_t n_tokens) {
  if (n != n_tokens) {
    fail(where, std::string(key) + " has " + std::to_string(n) +
                    " entries but tokenizer.ggml.tokens has " + std::to_string(n_tokens));
  }
}

int32_t opt_id(const io::GgufFile& f, const char* key, size_t n_tokens) {
  const std::optional<int64_t> v = f.opt_int(key);
  if (!v) return -1;
  if (*v < 0 || static_cast<uint64_t>(*v) >= n_tokens) {
    fail(f.path(), std::string(key) + " = " + std::to_string(*v) + " is outside the vocabulary (" +
                       std::to_string(n_tokens) + " tokens)");
  }
  return static_cast<int32_t>(*v);
}

}  // namespace

bool GgufVocab::is_special_type(int32_t id) const {
  const GgufTokenType t = types[static_cast<size_t>(id)];
  return t == GgufTokenType::kControl || t == GgufTokenType::kUserDefined ||
         t == GgufTokenType::kUnknown;
}

std::vector<AddedToken> gguf_special_tokens(const GgufVocab& v) {
  std::string name = v.name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool phi3 =
      name.find("phi3") != std::string::npos || name.find("phi-3") != std::string::npos;
  std::vector<AddedToken> out;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const GgufTokenType t = v.types[i];
    const std::string& text = v.tokens[i];
    const bool rstrip = phi3 && text != "<unk>" && text != "<s>" && text != "<|endoftext|>";
    if (v.is_special_type(id)) {
      AddedToken a;
      a.id = id;
      a.content = text;
      a.rstrip = rstrip;
      a.special = t != GgufTokenType::kUserDefined;
      out.push_back(std::move(a));
    }
  }
  return out;
}

GgufVocab read_gguf_vocab(const io::GgufFile& f) {
  GgufVocab v;
  v.where = f.path();
  const std::string& where = v.where;
  if (!f.has("tokenizer.ggml.model")) {
    throw Error(ErrorKind::kFormat,
                where +
                    ": no tokenizer.ggml.model key, so this GGUF file carries no tokenizer; "
                    "use a GGUF file converted with its vocabulary, or the model's Hugging "
                    "Face folder");
  }
  v.model = f.get_string("tokenizer.ggml.model");
  v.pre = f.opt_string("tokenizer.ggml.pre").value_or("");
  v.name = f.opt_string("general.name").value_or("");
  v.chat_template = f.opt_string("tokenizer.chat_template").value_or("");
  if (!f.has("tokenizer.ggml.tokens")) fail(where, "tokenizer.ggml.tokens is missing");

  const std::vector<std::string_view> tokens = f.get_strings("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  if (n == 0) fail(where, "tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) fail(where, "tokenizer.ggml.tokens is too long");
  v.tokens.reserve(n);
  Vocab seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string t(tokens[i]);
    if (t.empty()) t = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp names them
    const auto [it, fresh] = seen.emplace(t, static_cast<int32_t>(i));
    if (!fresh) {
      fail(where, "token '" + t + "' appears twice in tokenizer.ggml.tokens (ids " +
                      std::to_string(it->second) + " and " + std::to_string(i) + ")");
    }
    v.tokens.push_back(std::move(t));
  }

  if (f.has("tokenizer.ggml.scores")) {
    v.scores = f.get_floats("tokenizer.ggml.scores");
    check_count(where, "tokenizer.ggml.scores", v.scores.size(), n);
  } else {
    v.scores.assign(n, 0.0f);
  }
  v.types.assign(n, GgufTokenType::kNormal);
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<int32_t> types = f.get_ints("tokenizer.ggml.token_type");
    check_count(where, "tokenizer.ggml.token_type", types.size(), n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > static_cast<int32_t>(GgufTokenType::kByte)) {
        fail(where, "tokenizer.ggml.token_type of token " + std::to_string(i) + " is " +
                        std::to_string(types[i]) + " (valid types are 0..6)");
      }
      v.types[i] = static_cast<GgufTokenType>(types[i]);
    }
  }

  if (f.has("tokenizer.ggml.merges")) {
    const std::vector<std::string_view> merges = f.get_strings("tokenizer.ggml.merges");
    v.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string_view m = merges[r];
      // The first token may itself be a space-like character, so split at a space after it.
      const size_t sp = m.size() < 2 ? std::string_view::npos : m.find(' ', 1);
      const auto where_merge = [&] {
        return "tokenizer.ggml.merges[" + std::to_string(r) + "] '" + std::string(m) + "'";
      };
      if (sp == std::string_view::npos || sp + 1 >= m.size()) {
        fail(where, where_merge() + " is not two tokens separated by a space");
      }
      std::string a(m.substr(0, sp)), b(m.substr(sp + 1));
      if (!seen.count(a) || !seen.count(b) || !seen.count(a + b)) {
        fail(where, where_merge() + " names a token that tokenizer.ggml.tokens lacks");
      }
      v.merges.emplace_back(std::move(a), std::move(b));
    }
  }

  v.bos = opt_id(f, "tokenizer.ggml.bos_token_id", n);
  v.eos = opt_id(f, "tokenizer.ggml.eos_token_id", n);
  v.unk = opt_id(f, "tokenizer.ggml.unknown_token_id", n);
  v.pad = opt_id(f, "tokenizer.ggml.padding_token_id", n);
  v.add_bos = f.opt_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = f.opt_bool("tokenizer.ggml.add_eos_token");
  v.add_space_prefix = f.opt_bool("tokenizer.ggml.add_space_prefix");
  return v;
}

}  // namespace longctx::tok
