// What the tokenizer harnesses (tokenizer_json, sentencepiece) do with a tokenizer that loaded:
// encode a few short strings (with and without the special tokens), decode them, stream-decode
// them; every id is inside the vocabulary, BOS/EOS are -1 or inside it, and nothing throws
// anything but a clean Error.
#pragma once

#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace longctx::fuzz {

inline void check_id(const Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
}

// The checks on a tokenizer that loaded.
inline void exercise_tokenizer(const Tokenizer& tok) {
  if (tok.vocab_size() < 1) __builtin_trap();
  for (int32_t id : {tok.bos_id(), tok.eos_id()})
    if (id != -1) check_id(tok, id);
  for (const char* text :
       {"Hello world", " a  b\n\t12345 ", "h\xC3\xA9llo \xE2\x98\x83\xF0\x9F\x98\x80",
        "<s>x</s><|im_start|>", "\xFF\xFE bad utf8 \xC3", ""}) {
    for (bool add_special : {false, true}) {
      quietly([&] {
        const std::vector<int32_t> ids = tok.encode(text, add_special);
        for (int32_t id : ids) check_id(tok, id);
        (void)tok.decode(ids, true);
        (void)tok.decode(ids, false);
        for (int32_t id : ids) {
          (void)tok.token_bytes(id);
          (void)tok.is_special(id);
        }
        StreamDecoder sd(tok);
        for (int32_t id : ids) (void)sd.push(id);
        (void)sd.flush();
      });
    }
  }
  // The first ids and the last, whatever the text gave.
  std::vector<int32_t> some;
  for (int64_t i = 0; i < tok.vocab_size() && i < 8; ++i) some.push_back(static_cast<int32_t>(i));
  some.push_back(static_cast<int32_t>(tok.vocab_size() - 1));
  quietly([&] { (void)tok.decode(some, false); });
  quietly([&] { (void)tok.decode(some, true); });
  // Out of range: a clean Error or nothing, never an over-read.
  quietly([&] { (void)tok.decode({static_cast<int32_t>(tok.vocab_size())}, false); });
  quietly([&] { (void)tok.decode({-1}, true); });
}

}  // namespace longctx::fuzz
