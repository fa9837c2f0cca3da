// `longctx serve` as a child process: started on a free port (--port 0), its port read from the
// line it prints, stopped with a signal; everything it printed is kept.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace longctx::test {

class ServeProcess {
 public:
  // Runs `longctx serve ARGS --port 0` with `env` added ("NAME=value"), and waits until it
  // prints where it listens or exits (then port() is -1 and exit_code() tells).
  explicit ServeProcess(const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {}) {
    int fds[2];
    if (pipe(fds) != 0) return;
    const std::string bin = std::string(LONGCTX_BINARY_DIR) + "/longctx";
    std::vector<std::string> all{bin, "serve"};
    all.insert(all.end(), args.begin(), args.end());
    all.insert(all.end(), {"--port", "0"});
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
    static const std::regex re("listening on http://[^:]+:([0-9]+)");
    std::smatch m;
    while (read_some(std::chrono::seconds(60))) {
      if (std::regex_search(output_, m, re)) {
        port_ = std::stoi(m[1]);
        return;
      }
    }
    wait_exit();
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      wait_exit();
    }
    if (out_fd_ >= 0) close(out_fd_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Everything printed so far (reads what is pending first).
  const std::string& output() {
    while (read_some(std::chrono::milliseconds(0))) {
    }
    return output_;
  }
  // Sends `sig` and waits for the exit; the exit code, or 128 + the signal that ended it.
  int stop(int sig = SIGTERM) {
    if (!exited_) kill(pid_, sig);
    return wait_exit();
  }
  int exit_code() { return wait_exit(); }

 private:
  // Reads what arrives within `timeout`; false at end of output or when nothing came.
  bool read_some(std::chrono::milliseconds timeout) {
    if (out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, int(timeout.count())) <= 0) return false;
    char buf[4096];
    const ssize_t n = read(out_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, size_t(n));
    return true;
  }
  int wait_exit() {
    if (exited_ || pid_ <= 0) return code_;
    // Drain the output while waiting, so the child never blocks on a full pipe.
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        while (read_some(std::chrono::milliseconds(0))) {
        }
        return code_;
      }
      read_some(std::chrono::milliseconds(20));
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = -1;
  bool exited_ = false;
  int code_ = -1;
  std::string output_;
};

// Whether `node` runs and the openai package is installed in tests/node (scripts/test.sh).
inline std::string openai_node_missing() {
  if (std::system("node --version >/dev/null 2>&1") != 0)
    return "node is not installed (apt-get install nodejs)";
  const std::string pkg = std::string(LONGCTX_SOURCE_DIR) + "/tests/node/node_modules/openai";
  if (access((pkg + "/package.json").c_str(), R_OK) != 0)
    return "the openai npm package is not installed: run (cd tests/node && npm install), as "
           "scripts/test.sh does";
  return {};
}

}  // namespace longctx::test
