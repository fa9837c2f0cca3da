// Where a model keeps its chat template (model_chat_template in chat_template.h).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "io/json_util.h"
#include "model/decoder.h"
#include "runtime/chat_template.h"
#include "tokenizer/file_util.h"

namespace longctx {
namespace {

// tokenizer_config.json's "chat_template": a string, or (transformers' named templates) a list of
// {"name", "template"} objects of which "default" is the one apply_chat_template uses.
std::string config_chat_template(const std::string& path) {
  const nlohmann::json cfg =
      io::parse_json_or_throw(tok::read_file(path, "tokenizer_config.json"), path);
  if (!cfg.is_object() || !cfg.contains("chat_template") || cfg["chat_template"].is_null()) {
    return "";
  }
  const nlohmann::json& t = cfg["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (!t.is_array()) {
    throw Error(ErrorKind::kFormat, path +
                                        ": \"chat_template\" is neither a string nor a list of "
                                        "{\"name\", \"template\"} objects");
  }
  std::string names;
  for (const nlohmann::json& e : t) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
        !e.contains("template") || !e["template"].is_string()) {
      throw Error(ErrorKind::kFormat, path +
                                          ": an entry of \"chat_template\" is not a "
                                          "{\"name\": string, \"template\": string} object");
    }
    const std::string name = e["name"].get<std::string>();
    if (name == "default") return e["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + name;
  }
  throw Error(ErrorKind::kUnsupported,
              path + ": the model has named chat templates (" + names +
                  ") but none named \"default\"; pass --chat-template NAME to choose how "
                  "longctx renders chats");
}

}  // namespace

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
    return config_chat_template(dir + "tokenizer_config.json");
  }
  return "";
}

}  // namespace longctx
