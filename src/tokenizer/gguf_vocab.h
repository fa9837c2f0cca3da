// The vocabulary that a GGUF file carries in its tokenizer.ggml.* metadata (llama.cpp's
// convert_hf_to_gguf.py writes it), read and checked once so that the tokenizers built from it
// can trust every id, count and merge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"

namespace longctx::io {
class GgufFile;
}

namespace longctx::tok {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class GgufTokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct GgufVocab {
  std::string where;                 // the file, for messages
  std::string model;                 // tokenizer.ggml.model: "llama", "gpt2"
  std::string pre;                   // tokenizer.ggml.pre; "" when absent
  std::string name;                  // general.name; "" when absent
  std::vector<std::string> tokens;   // an empty token becomes "[EMPTY_<id>]", as in llama.cpp
  std::vector<float> scores;         // one per token (0 when the file has none)
  std::vector<GgufTokenType> types;  // one per token (kNormal when the file has none)
  std::vector<std::pair<std::string, std::string>> merges;  // ranked; gpt2 only
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;           // -1: none
  std::optional<bool> add_bos, add_eos, add_space_prefix;   // absent: the model type's default
  std::string chat_template;                                // "" when absent

  bool is_special_type(int32_t id) const;  // control, user-defined or unknown
};

// Reads and validates the tokenizer metadata of f. Error(kFormat) naming the file and key when a
// required key is missing, an array's length differs from tokenizer.ggml.tokens, a token id or
// token type is out of range, a token is duplicated, or a merge names tokens the vocabulary lacks.
// The model name itself is not checked here (load_gguf_tokenizer does that).
GgufVocab read_gguf_vocab(const io::GgufFile& f);

// The tokens recognised when written in the text (llama.cpp's special-token cache, with
// parse_special): control, user-defined and unknown tokens; control and unknown ones are skipped
// by decode(skip_special). Phi-3 vocabularies (general.name "phi3"/"phi-3") strip whitespace
// after their chat tokens, as llama.cpp and the model's tokenizer.json do.
std::vector<AddedToken> gguf_special_tokens(const GgufVocab& v);

}  // namespace longctx::tok
