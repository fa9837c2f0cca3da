// Internals of chat_template.cc: Python's str.strip, the normalized form of a Jinja template that
// detection matches markers against, and the detection itself (chat_template_detect.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/chat_template.h"

namespace longctx::chat {

// Python's str.strip() (Jinja's trim filter, the .strip() method) on UTF-8 text: removes leading
// and trailing characters for which str.isspace() is true (ASCII whitespace, U+001C..U+001F,
// U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
std::string py_strip(std::string_view s);

// "a, b or c" for error messages.
std::string join_names(const std::vector<std::string>& names);

// The template as detection sees it: comments dropped; the text between tags kept as Hugging
// Face's Jinja settings (trim_blocks, lstrip_blocks, "-" whitespace control) leave it; inside
// {{ }} and {% %} the "-"/"+" markers and every blank outside string literals removed, literals
// unescaped and written between single quotes, and message.role / message.content written as
// message['role'] / message['content']. So `{{- "[INST] " + message["content"] }}` becomes
// `{{'[INST] '+message['content']}}`, whatever spacing and quotes the template used. The text left
// between tags (which the template writes as it stands) is also appended to *raw when given.
std::string normalize_jinja(std::string_view jinja, std::string* raw = nullptr);

struct Detected {
  std::string family;
  ChatTemplate::Variant variant;
};
// Error(kUnsupported) as ChatTemplate::detect documents.
Detected detect_family(const std::string& jinja);

}  // namespace longctx::chat
