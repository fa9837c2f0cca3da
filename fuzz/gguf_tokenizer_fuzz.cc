// libFuzzer harness for the tokenizers of GGUF metadata: the input is text, encoded and decoded by
// a "llama" (score-merging, byte fallback) and a "gpt2" (byte-level BPE, qwen2 pre-tokenizer)
// tokenizer built once from small in-memory GGUF files. Never a crash, a hang or an exception;
// every id is inside the vocabulary; byte-level BPE gives the text back exactly (after the repair
// of invalid UTF-8 that encode does).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

using namespace longctx;

namespace {

struct Tokenizers {
  std::vector<uint8_t> llama_bytes, gpt2_bytes;  // the parsed files' views point into these
  std::unique_ptr<GgufTokenizer> llama, gpt2;
};

std::unique_ptr<GgufTokenizer> parse(const std::vector<uint8_t>& bytes) {
  return load_gguf_tokenizer(*io::GgufFile::parse(bytes.data(), bytes.size(), "fuzz.gguf"));
}

Tokenizers build() {
  Tokenizers t;
  {
    io::GgufWriter w;
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      tokens.push_back(name);
      types.push_back(6);
    }
    for (const char* p : {"\xE2\x96\x81", "a", "b",
                          "\xE2\x96\x81"
                          "a",
                          "ab",
                          "\xE2\x96\x81"
                          "ab",
                          "\xE2\x96\x81\xE2\x96\x81", "<|user|>"}) {
      tokens.push_back(p);
      types.push_back(tokens.back() == "<|user|>" ? 4 : 1);
    }
    std::vector<float> scores(tokens.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i % 7);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", tokens);
    w.set_f32s("tokenizer.ggml.scores", scores);
    w.set_i32s("tokenizer.ggml.token_type", types);
    t.llama_bytes = w.bytes();
  }
  {
    io::GgufWriter w;
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b)
      tokens.push_back(tok::byte_level_char(static_cast<unsigned char>(b)));
    const std::string sp = tok::byte_level_char(' ');
    for (const std::string& p : {std::string("he"), std::string("hel"), sp + "t", sp + "th",
                                 std::string("<|im_start|>"), std::string("[PAD0]")}) {
      tokens.push_back(p);
    }
    std::vector<int32_t> types(tokens.size(), 1);
    types[types.size() - 2] = 3;
    types[types.size() - 1] = 4;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "qwen2");
    w.set_strings("tokenizer.ggml.tokens", tokens);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_strings("tokenizer.ggml.merges", {"h e", "he l", sp + " t", sp + "t h"});
    w.set_u32("tokenizer.ggml.bos_token_id", 256 + 4);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    t.gpt2_bytes = w.bytes();
  }
  t.llama = parse(t.llama_bytes);
  t.gpt2 = parse(t.gpt2_bytes);
  return t;
}

void check_ids(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizers t = build();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const Tokenizer* tok : {static_cast<const Tokenizer*>(t.llama.get()),
                               static_cast<const Tokenizer*>(t.gpt2.get())}) {
    for (bool add_special : {false, true}) {
      const std::vector<int32_t> ids = tok->encode(text, add_special);
      check_ids(*tok, ids);
      tok->decode(ids, true);
      const std::string kept = tok->decode(ids, false);
      for (int32_t id : ids) tok->token_bytes(id);
      // Every byte is a token of the byte-level vocabulary, so nothing is lost.
      if (tok == t.gpt2.get() && !add_special && kept != tok::utf8_lossy(text)) __builtin_trap();
    }
  }
  return 0;
}
