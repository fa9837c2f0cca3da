// libFuzzer harness for Hugging Face tokenizer.json (parse_tokenizer_json, tokenizer/tokenizer.h):
// any text either loads or throws a clean longctx::Error. What loads goes through
// exercise_tokenizer (tokenizer_checks.h): encode and decode short strings, ids in range.
//
// Input: tokenizer.json, optionally followed by a NUL byte and tokenizer_config.json, and another
// NUL and config.json (the side files that hint BOS/EOS). JSON text has no raw NUL.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_checks.h"

using namespace longctx;
using namespace longctx::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::string parts[3];
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t nul = i < 2 ? in.find('\0', start) : std::string::npos;
    parts[i] = in.substr(start, nul == std::string::npos ? std::string::npos : nul - start);
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  try {
    const auto tok = parse_tokenizer_json(parts[0], "tokenizer.json", parts[1], parts[2]);
    exercise_tokenizer(*tok);
  } catch (const Error& e) {
    check_error(e);
  }
  return 0;
}
