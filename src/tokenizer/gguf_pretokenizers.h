// The pre-tokenizers that tokenizer.ggml.pre names for "gpt2" (byte-level BPE) vocabularies: the
// regexes that split text into words before BPE, as llama.cpp's llm_tokenizer_bpe lists them,
// written here as the patterns of the models' own tokenizer.json files where those differ only in
// spelling (PCRE2 supports (?i:...) and Unicode properties, so no rewriting is needed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace longctx::tok {

struct GgufPreTokenizer {
  std::vector<std::string> regexes;  // applied in turn; each splits every piece (matches isolated)
  bool ignore_merges = false;        // a word that is a token is taken whole (Llama 3, Tekken)
  bool add_bos = false;              // llama.cpp's default when the file has no add_bos_token
};

// The pre-tokenizer for NAME ("" means "default", as in llama.cpp); nullptr when unknown.
const GgufPreTokenizer* find_gguf_pre_tokenizer(std::string_view name);
// The supported names, comma-separated, for messages.
std::string gguf_pre_tokenizer_names();

}  // namespace longctx::tok
