#include "tokenizer/file_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace longctx::tok {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(ErrorKind::kIo, path + ": cannot open " + what + ": " + std::strerror(errno) +
                                    "; check the path or download the tokenizer files");
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorKind::kIo, path + ": " + what +
                                    " is not a regular file; pass the file or "
                                    "the model directory that contains it");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  if (!in || !(ss << in.rdbuf())) {
    if (st.st_size == 0 && in) return {};
    throw Error(ErrorKind::kIo, path + ": cannot read " + what + ": " + std::strerror(errno) +
                                    "; check the file's permissions");
  }
  return ss.str();
}

}  // namespace longctx::tok
