#include "tokenizer/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/gguf_pretokenizers.h"
#include "tokenizer/gguf_spm.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/hf_tokenizer.h"

namespace longctx {
namespace {

using nlohmann::json;

void check_special(const tok::GgufVocab& v, bool add, int32_t id, const char* add_key,
                   const char* id_key) {
  if (add && id < 0) {
    throw Error(ErrorKind::kFormat, v.where + ": " + add_key + " is true but the file has no " +
                                        id_key + "; convert the model again");
  }
}

// A "gpt2" vocabulary is a Hugging Face byte-level BPE tokenizer whose pieces come from the
// metadata: described as tokenizer.json sections, it reuses their parsers and HfTokenizer.
std::unique_ptr<Tokenizer> build_bpe(tok::GgufVocab v, const tok::GgufPreTokenizer& pre,
                                     bool add_bos, bool add_eos) {
  if (v.merges.empty()) {
    throw Error(ErrorKind::kFormat, v.where +
                                        ": a 'gpt2' vocabulary needs tokenizer.ggml.merges, which "
                                        "this file lacks; convert the model again");
  }
  tok::HfTokenizerParts p;
  p.path = v.where;
  json seq = json::array();
  for (const std::string& re : pre.regexes) {
    seq.push_back({{"type", "Split"},
                   {"pattern", {{"Regex", re}}},
                   {"behavior", "Isolated"},
                   {"invert", false}});
  }
  seq.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  p.pre_tokenizer =
      tok::parse_pre_tokenizer(json{{"type", "Sequence"}, {"pretokenizers", seq}}, v.where);
  p.decoder = tok::parse_decoder(json{{"type", "ByteLevel"}}, v.where);

  tok::Vocab vocab;
  vocab.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab.emplace(v.tokens[i], static_cast<int32_t>(i));
  tok::BpeOptions opt;
  opt.ignore_merges = pre.ignore_merges;
  p.model = std::make_unique<tok::BpeModel>(std::move(vocab), v.merges, opt, v.where);
  p.added = tok::gguf_special_tokens(v);
  if (add_bos) p.post.prefix.push_back(v.bos);
  if (add_eos) p.post.suffix.push_back(v.eos);
  p.bos_id = v.bos;
  p.eos_id = v.eos;
  return std::make_unique<tok::HfTokenizer>(std::move(p));
}

}  // namespace

std::unique_ptr<GgufTokenizer> load_gguf_tokenizer(const io::GgufFile& f) {
  tok::GgufVocab v = tok::read_gguf_vocab(f);
  GgufTokenizer::Info info;
  info.model = v.model;
  info.pre = v.pre;
  info.chat_template = v.chat_template;
  std::unique_ptr<Tokenizer> impl;
  if (v.model == "llama") {
    // llama.cpp's defaults for SentencePiece vocabularies: BOS 1, EOS 2, unknown 0.
    const auto n = static_cast<int32_t>(v.tokens.size());
    if (!f.has("tokenizer.ggml.bos_token_id") && n > 1) v.bos = 1;
    if (!f.has("tokenizer.ggml.eos_token_id") && n > 2) v.eos = 2;
    if (!f.has("tokenizer.ggml.unknown_token_id") && n > 0) v.unk = 0;
    info.add_bos = v.add_bos.value_or(true);
    info.add_eos = v.add_eos.value_or(false);
    check_special(v, info.add_bos, v.bos, "tokenizer.ggml.add_bos_token",
                  "tokenizer.ggml.bos_token_id");
    check_special(v, info.add_eos, v.eos, "tokenizer.ggml.add_eos_token",
                  "tokenizer.ggml.eos_token_id");
    impl = std::make_unique<tok::SpmScoreTokenizer>(std::move(v));
  } else if (v.model == "gpt2") {
    const tok::GgufPreTokenizer* pre = tok::find_gguf_pre_tokenizer(v.pre);
    if (pre == nullptr) {
      throw Error(ErrorKind::kUnsupported,
                  v.where + ": tokenizer.ggml.pre '" + v.pre +
                      "' is not a pre-tokenizer longctx knows; supported: " +
                      tok::gguf_pre_tokenizer_names() +
                      " (or use the model's Hugging Face folder with its tokenizer.json)");
    }
    info.add_bos = v.add_bos.value_or(pre->add_bos);
    info.add_eos = v.add_eos.value_or(false);
    check_special(v, info.add_bos, v.bos, "tokenizer.ggml.add_bos_token",
                  "tokenizer.ggml.bos_token_id");
    check_special(v, info.add_eos, v.eos, "tokenizer.ggml.add_eos_token",
                  "tokenizer.ggml.eos_token_id");
    impl = build_bpe(std::move(v), *pre, info.add_bos, info.add_eos);
  } else {
    throw Error(
        ErrorKind::kUnsupported,
        v.where + ": tokenizer.ggml.model '" + v.model +
            "' is not supported; longctx reads 'llama' (SentencePiece-style BPE) and "
            "'gpt2' (byte-level BPE) vocabularies (or use the model's Hugging Face folder)");
  }
  return std::make_unique<GgufTokenizer>(std::move(impl), std::move(info));
}

std::unique_ptr<GgufTokenizer> load_gguf_tokenizer(const std::string& path) {
  const std::unique_ptr<io::GgufFile> f = io::GgufFile::open(path);
  return load_gguf_tokenizer(*f);
}

}  // namespace longctx
