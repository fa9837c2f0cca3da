// load_tokenizer: picks tokenizer.json (Hugging Face) or tokenizer.model (SentencePiece).
#include "tokenizer/tokenizer.h"

#include <sys/stat.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/error.h"
#include "tokenizer/file_util.h"
#include "tokenizer/gguf_tokenizer.h"

namespace longctx {

namespace {
std::unique_ptr<Tokenizer> load_any(const std::string& dir);
}  // namespace

// Parsing a tokenizer.json builds a JSON tree several times the file's size, freed at the end
// but left resident by glibc (thousands of small blocks fragment the heap). Handing it back here
// keeps what stays resident to the tables the memory plan prices, so that the weights loaded next
// do not stack on the parser's leftovers.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  auto tok = load_any(dir);
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  return tok;
}

namespace {
std::unique_ptr<Tokenizer> load_any(const std::string& dir) {
  // A GGUF model file carries its tokenizer in its metadata.
  struct stat file {};
  if (::stat(dir.c_str(), &file) == 0 && S_ISREG(file.st_mode)) return load_gguf_tokenizer(dir);
  const std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  if (tok::file_exists(base + "tokenizer.json"))
    return load_tokenizer_json(base + "tokenizer.json");
  if (tok::file_exists(base + "tokenizer.model"))
    return load_sentencepiece(base + "tokenizer.model");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::kIo, dir +
                                    ": no such model directory; pass the directory that holds "
                                    "config.json and tokenizer.json or tokenizer.model");
  }
  throw Error(ErrorKind::kIo, dir +
                                  ": no tokenizer.json or tokenizer.model in this directory; "
                                  "copy the model's tokenizer file(s) from its Hugging Face "
                                  "repository next to config.json");
}
}  // namespace

}  // namespace longctx
