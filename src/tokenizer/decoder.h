// Decoders of Hugging Face tokenizer.json ("decoder" section): token strings -> text.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace longctx::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Transforms the token strings in place, as Hugging Face Decoder::decode_chain does; the text
  // is the concatenation of the result. With raw_piece (used for one token in isolation, by
  // token_bytes), rules that depend on a token being first are skipped (Strip, Metaspace prefix)
  // and bytes are kept raw (no U+FFFD substitution), so the result may be partial UTF-8.
  virtual void decode_chain(std::vector<std::string>& tokens, bool raw_piece) const = 0;
};

// Builds the decoder described by j (null gives nullptr). Supported: ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Metaspace, Sequence.
std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& j, const std::string& where);

// "<0xAB>" -> 0xAB; -1 when the token is not a byte-fallback token.
int byte_fallback_value(const std::string& token);

}  // namespace longctx::tok
