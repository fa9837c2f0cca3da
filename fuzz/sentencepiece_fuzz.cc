// libFuzzer harness for SentencePiece tokenizer.model (parse_sentencepiece, tokenizer/tokenizer.h:
// longctx's check of the protobuf framing, then Debian's libsentencepiece): any bytes either load
// or throw a clean longctx::Error. What loads goes through exercise_tokenizer
// (tokenizer_checks.h): encode and decode short strings, ids in range.
// libsentencepiece itself is not instrumented (a Debian library): ASan sees its heap use, the
// coverage guidance sees only longctx's side.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_checks.h"

using namespace longctx;
using namespace longctx::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = parse_sentencepiece(bytes, "tokenizer.model");
    exercise_tokenizer(*tok);
  } catch (const Error& e) {
    check_error(e);
  }
  return 0;
}
