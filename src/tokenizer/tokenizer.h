// Tokenizers: SentencePiece tokenizer.model, and Hugging Face tokenizer.json (BPE, byte-level or
// metaspace with byte fallback), behind one interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace longctx {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. With add_special, adds what the tokenizer's own post-processing adds (BOS for
  // Llama 2 / Mistral / SentencePiece models with add_bos; the tokenizer.json post_processor).
  // Special/added tokens written in the text (e.g. "<|im_start|>") map to their ids.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  // Ids -> text, as Hugging Face decode(ids, skip_special_tokens) does.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  // Bytes of one token's piece after the decoder (byte-fallback tokens give their raw byte;
  // a leading-space marker is turned into a space). Used by StreamDecoder.
  virtual std::string token_bytes(int32_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;  // -1 when none
  virtual bool is_special(int32_t id) const = 0;
};

// Loads DIR/tokenizer.json when present, else DIR/tokenizer.model; a GGUF file's own tokenizer
// when DIR is a file (tokenizer/gguf_tokenizer.h). Throws Error when neither is present or the
// file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path);
// The same loaders on contents already read (tests, the fuzz harnesses); `path` names the file in
// messages. parse_tokenizer_json also takes the texts of tokenizer_config.json and config.json
// beside it, which only hint BOS/EOS ("" when absent; a malformed one is ignored, as by
// load_tokenizer_json).
std::unique_ptr<Tokenizer> parse_sentencepiece(const std::string& data, const std::string& path);
std::unique_ptr<Tokenizer> parse_tokenizer_json(const std::string& text, const std::string& path,
                                                const std::string& tokenizer_config_text,
                                                const std::string& config_text);

// Streaming decode: feed generated ids one at a time; returns only complete UTF-8, holding back
// bytes of a character whose remaining bytes have not arrived yet. The concatenation of all
// returned strings plus flush() equals decode(all ids) (special tokens skipped), including the
// first token's leading-space rule. Each push decodes only a short window of recent ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is pending (invalid trailing bytes become U+FFFD)

 private:
  void trim_window();

  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // the ids not yet emitted, after a few ids of context
  std::string prefix_;        // decode() of the context ids: the part already emitted
};

}  // namespace longctx
