// JSON parsing with an actionable error (file, line, column) for the io layer. Internal header.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace longctx::io {

// Deepest nesting accepted in a model file. Hugging Face files nest less than 10 levels; a file
// of a million '[' is valid JSON, but its values are printed (in messages) recursively and would
// overflow the stack.
constexpr int kMaxJsonDepth = 256;

// A parser callback that throws Error(kFormat) naming `origin` past kMaxJsonDepth levels.
nlohmann::json::parser_callback_t json_depth_limit(const std::string& origin);

// Parses `text`; invalid JSON (a number beyond double included) or nesting deeper than
// kMaxJsonDepth is Error(kFormat) naming `origin` and, for a syntax error, the line, column and
// byte of the problem.
nlohmann::json parse_json_or_throw(std::string_view text, const std::string& origin);

}  // namespace longctx::io
