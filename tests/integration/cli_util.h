// Runs the longctx binary as a user would and captures what it prints.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <regex>
#include <string>

namespace longctx::test {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline CliResult run_cli(const std::string& args) {
  const std::string cmd = quote(std::string(LONGCTX_BINARY_DIR) + "/longctx") + " " + args +
                          " 2>&1 </dev/null";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// The "peak RSS X MiB" figure of run's summary line, in MiB; -1 when absent.
inline double peak_rss_mib(const std::string& out) {
  std::smatch m;
  static const std::regex re("peak RSS ([0-9.]+) MiB");
  return std::regex_search(out, m, re) ? std::stod(m[1]) : -1;
}

}  // namespace longctx::test
