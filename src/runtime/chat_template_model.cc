// Where a model keeps its chat template (model_chat_template in chat_template.h).
#include <filesystem>

#include "core/error.h"
#include "io/gguf.h"
#include "model/decoder.h"
#include "runtime/chat_template.h"
#include "tokenizer/file_util.h"

namespace longctx {

std::string model_chat_template(const std::string& model_path) {
  if (is_gguf_path(model_path)) {
    const auto f = io::GgufFile::open(model_path);
    return f->opt_string("tokenizer.chat_template").value_or("");
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(model_path, ec)) {
    throw Error(ErrorKind::kIo, model_path + ": no such model folder or .gguf file");
  }
  const std::string dir = model_path + "/";
  // transformers gives a chat_template.jinja beside the tokenizer priority over the config entry.
  if (tok::file_exists(dir + "chat_template.jinja")) {
    return tok::read_file(dir + "chat_template.jinja", "chat_template.jinja");
  }
  if (tok::file_exists(dir + "tokenizer_config.json")) {
    const std::string path = dir + "tokenizer_config.json";
    return config_chat_template(tok::read_file(path, "tokenizer_config.json"), path);
  }
  return "";
}

}  // namespace longctx
