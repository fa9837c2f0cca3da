// tokenizer_config.json's "chat_template" (config_chat_template in chat_template.h): kept apart
// from chat_template_model.cc, which reads model folders and GGUF files, so that the chat-template
// library (and its fuzz harness) needs no model code.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_util.h"
#include "runtime/chat_template.h"

namespace longctx {

std::string config_chat_template(const std::string& text, const std::string& path) {
  const nlohmann::json cfg = io::parse_json_or_throw(text, path);
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

}  // namespace longctx
