// Small checked accessors for tokenizer.json: each throws Error(kFormat) naming the file and the
// missing or mistyped field, so a malformed file never crashes the loader.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tokenizer/regex.h"

namespace longctx::tok {

// j["type"] as a string; `what` names the section (e.g. "normalizer") for the message.
std::string json_type(const nlohmann::json& j, const std::string& where, const char* what);
const nlohmann::json& json_array(const nlohmann::json& j, const char* key,
                                 const std::string& where);
std::string json_string(const nlohmann::json& j, const char* key, const std::string& where);
// Optional fields: `fallback` when absent or null.
std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& fallback,
                           const std::string& where);
bool json_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where);
int64_t json_int(const nlohmann::json& j, const char* key, int64_t fallback,
                 const std::string& where);
// j["pattern"]: {"String": s} or {"Regex": r}.
TextPattern parse_text_pattern(const nlohmann::json& j, const std::string& where);

[[noreturn]] void json_fail(const std::string& where, const std::string& problem);

}  // namespace longctx::tok
