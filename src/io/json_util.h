// JSON parsing with an actionable error (file, line, column) for the io layer. Internal header.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace longctx::io {

// Parses `text`; invalid JSON is Error(kFormat) naming `origin` and the line, column and byte of
// the problem.
nlohmann::json parse_json_or_throw(std::string_view text, const std::string& origin);

}  // namespace longctx::io
