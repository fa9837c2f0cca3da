// Normalizers of Hugging Face tokenizer.json ("normalizer" section): text -> text, applied to
// each piece of input text between added tokens, before pre-tokenization.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace longctx::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;  // s is valid UTF-8 and stays so
};

// Builds the normalizer described by j (null gives nullptr). Supported types: Sequence, Prepend,
// Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents. Throws Error(kUnsupported)
// naming `where` for other types, Error(kFormat) for malformed entries.
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace longctx::tok
