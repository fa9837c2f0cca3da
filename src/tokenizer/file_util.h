// Reading whole tokenizer files with actionable errors.
#pragma once

#include <string>

namespace longctx::tok {

bool file_exists(const std::string& path);
// Throws Error(kIo) naming the path when it cannot be opened or read.
std::string read_file(const std::string& path, const char* what);

}  // namespace longctx::tok
