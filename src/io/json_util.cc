#include "io/json_util.h"

#include <algorithm>

#include "core/error.h"

namespace longctx::io {

nlohmann::json::parser_callback_t json_depth_limit(const std::string& origin) {
  return [origin](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxJsonDepth)
      throw Error(ErrorKind::kFormat, origin + ": JSON nested more than " +
                                          std::to_string(kMaxJsonDepth) +
                                          " levels deep; this is not a model file");
    return true;
  };
}

nlohmann::json parse_json_or_throw(std::string_view text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text.begin(), text.end(), json_depth_limit(origin));
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte: 1-based index of the last character read.
    size_t pos = std::min(e.byte, text.size());
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < pos; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    // e.what() repeats the position: "[json...] parse error at line L, column C: <detail>".
    std::string detail = e.what();
    if (size_t p = detail.find("parse error"); p != std::string::npos)
      if (size_t q = detail.find(": ", p); q != std::string::npos) detail = detail.substr(q + 2);
    throw Error(ErrorKind::kFormat, origin + ": invalid JSON at line " + std::to_string(line) +
                                        ", column " + std::to_string(col) + " (byte " +
                                        std::to_string(e.byte) + "): " + detail +
                                        "; fix the file or re-download it");
  } catch (const nlohmann::json::exception& e) {
    // out_of_range 406: a number beyond double ("1E400"), which is syntactically valid JSON.
    std::string detail = e.what();
    if (size_t p = detail.find("] "); p != std::string::npos) detail = detail.substr(p + 2);
    throw Error(ErrorKind::kFormat,
                origin + ": invalid JSON: " + detail + "; fix the file or re-download it");
  }
}

}  // namespace longctx::io
