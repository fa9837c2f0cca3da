// load_tokenizer: picks tokenizer.json (Hugging Face) or tokenizer.model (SentencePiece).
#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include "core/error.h"
#include "tokenizer/file_util.h"
#include "tokenizer/gguf_tokenizer.h"

namespace longctx {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
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

}  // namespace longctx
