// Helpers for the HTTP tests: raw sockets (for what a well-behaved client never does), and the
// events of a server-sent event stream.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace longctx::test {

// A blocking TCP connection to 127.0.0.1:port; -1 on failure.
inline int connect_local(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Reads until `want` appears, the peer closes, or `timeout` passes. `closed` tells whether the
// peer closed (read returned 0 or an error).
inline std::string read_until(int fd, const std::string& want, std::chrono::milliseconds timeout,
                              bool* closed = nullptr) {
  std::string got;
  const auto end = std::chrono::steady_clock::now() + timeout;
  if (closed) *closed = false;
  while (want.empty() || got.find(want) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed) *closed = true;
      break;
    }
    got.append(buf, size_t(n));
  }
  return got;
}

// A raw HTTP/1.1 POST with a JSON body.
inline std::string http_post(const std::string& path, const std::string& body,
                             const std::string& extra_headers = {}) {
  return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The JSON of each "data: {...}" event of an SSE body, and whether it ended with [DONE] as its
// last event. Fails (returns false) on any line that is not an event or a blank separator.
inline bool parse_sse(const std::string& body, std::vector<nlohmann::json>& events, bool& done) {
  events.clear();
  done = false;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) return false;  // an unterminated event
    const std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    if (ev.rfind("data: ", 0) != 0 || ev.find('\n') != std::string::npos) return false;
    if (done) return false;  // nothing may follow [DONE]
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    events.push_back(nlohmann::json::parse(data));
  }
  return true;
}

}  // namespace longctx::test
