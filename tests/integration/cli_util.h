// Runs the longctx binary as a user would and captures what it prints.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

namespace longctx::test {

struct CliResult {
  int exit_code = -1;
  std::string output;     // stdout and stderr together
  long max_rss_kib = -1;  // peak resident memory of the process, from wait4 (run_cli_argv only)
};

// Runs longctx with these arguments (no shell) and measures its peak resident memory as the
// kernel accounts it, independently of what the program reports about itself.
inline CliResult run_cli_argv(const std::vector<std::string>& args) {
  CliResult r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  const std::string bin = std::string(LONGCTX_BINARY_DIR) + "/longctx";
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    // ru_maxrss keeps the largest of the child's address spaces, and the one fork copied carries
    // this test's own high-water mark: reset it (Linux >= 4.0), so that the figure is longctx's.
    const int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
      (void)!write(fd, "5", 1);
      close(fd);
    }
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::array<char, 4096> buf;
  ssize_t n;
  while ((n = read(fds[0], buf.data(), buf.size())) > 0) r.output.append(buf.data(), size_t(n));
  close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kib = ru.ru_maxrss;
  return r;
}

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
