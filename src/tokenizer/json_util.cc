#include "tokenizer/json_util.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace longctx::tok {

void json_fail(const std::string& where, const std::string& problem) {
  throw Error(ErrorKind::kFormat, where + ": malformed tokenizer.json: " + problem +
                                      "; re-export the tokenizer with Hugging Face tokenizers");
}

std::string json_type(const nlohmann::json& j, const std::string& where, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    json_fail(where, std::string(what) + " entry without a string \"type\"");
  }
  return j["type"].get<std::string>();
}

const nlohmann::json& json_array(const nlohmann::json& j, const char* key,
                                 const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_array()) {
    json_fail(where, std::string("expected an array \"") + key + "\"");
  }
  return j[key];
}

std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
    json_fail(where, std::string("expected a string \"") + key + "\"");
  }
  return j[key].get<std::string>();
}

std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& fallback,
                           const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) json_fail(where, std::string("\"") + key + "\" is not a string");
  return j[key].get<std::string>();
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) json_fail(where, std::string("\"") + key + "\" is not a boolean");
  return j[key].get<bool>();
}

int64_t json_int(const nlohmann::json& j, const char* key, int64_t fallback,
                 const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number_integer()) {
    json_fail(where, std::string("\"") + key + "\" is not an integer");
  }
  return j[key].get<int64_t>();
}

TextPattern parse_text_pattern(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("pattern") || !j["pattern"].is_object()) {
    json_fail(where, "expected an object \"pattern\" with \"String\" or \"Regex\"");
  }
  const auto& p = j["pattern"];
  if (p.contains("String") && p["String"].is_string()) {
    return TextPattern::literal(p["String"].get<std::string>());
  }
  if (p.contains("Regex") && p["Regex"].is_string()) {
    return TextPattern::regex(p["Regex"].get<std::string>(), where);
  }
  json_fail(where, "\"pattern\" has neither a string \"String\" nor a string \"Regex\"");
}

}  // namespace longctx::tok
