#include "connection_pool.h"

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace longctx::server {

struct ConnectionPool::Slot {
  int fd = -1;  // -1: not found; the extras are off for this connection
  uint64_t ino = 0;
  int64_t read_deadline_ns = 0;
  std::atomic<int64_t> deadline_ns{0};  // 0: not reading a request now
  bool close_after = false;
};

namespace {

thread_local ConnectionPool::Slot* tl_slot = nullptr;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return -1;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

// What an overloaded server answers before closing, written straight to the socket.
const std::string& overloaded_response() {
  static const std::string r = [] {
    const std::string body =
        "{\"error\":{\"message\":\"the server has too many open connections; retry later\","
        "\"type\":\"server_busy\",\"param\":null,\"code\":null}}";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return r;
}

}  // namespace

ConnectionPool::ConnectionPool(const ConnectionPoolOptions& opt, const std::atomic<int>* port)
    : opt_(opt), port_(port) {
  opt_.threads = std::max(opt_.threads, 1);
  for (int i = 0; i < opt_.threads; ++i) workers_.emplace_back([this] { worker(); });
  watchdog_ = std::thread([this] { watchdog(); });
}

ConnectionPool::~ConnectionPool() { shutdown(); }

std::shared_ptr<ConnectionPool::Slot> ConnectionPool::find_new_socket() {
  auto slot = std::make_shared<Slot>();
  slot->read_deadline_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.read_deadline).count();
  const int port = port_ ? port_->load() : -1;
  if (port <= 0) return slot;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return slot;
  const int dfd = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == dfd) continue;
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (owned_inodes_.count(uint64_t(st.st_ino))) continue;
    if (local_port(fd) != port) continue;  // a client socket, or another server's
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening) continue;
    slot->fd = fd;
    slot->ino = uint64_t(st.st_ino);
    break;
  }
  closedir(dir);
  return slot;
}

bool ConnectionPool::peer_gone(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void ConnectionPool::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lk(mu_);
  std::shared_ptr<Slot> slot = find_new_socket();
  const size_t limit = size_t(std::max(opt_.max_pending, 0));
  // Connections whose clients have already gone (a burst opened and closed at once) do not count
  // against the limit: a worker reads their end and is done with them in a moment.
  size_t waiting = pending_.size();
  if (slot->fd >= 0 && waiting >= limit)
    for (const Task& t : pending_)
      if (t.slot->fd >= 0 && peer_gone(t.slot->fd)) --waiting;
  if (slot->fd >= 0 && waiting >= limit) {
    // Answer and close now; httplib's task then reads end-of-file and returns at once.
    lk.unlock();
    [[maybe_unused]] const ssize_t n =
        send(slot->fd, overloaded_response().data(), overloaded_response().size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(slot->fd, SHUT_RDWR);
    if (opt_.on_drop) opt_.on_drop();
    fn();
    return;
  }
  if (slot->fd >= 0) owned_inodes_.insert(slot->ino);
  pending_.push_back({std::move(fn), std::move(slot)});
  cv_.notify_one();
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ && workers_.empty()) return;
    stop_ = true;
    // Connections idle between requests would keep their worker until the keep-alive timeout.
    for (const auto& slot : running_)
      if (slot->deadline_ns.load() != 0 && slot->fd >= 0) ::shutdown(slot->fd, SHUT_RDWR);
  }
  cv_.notify_all();
  watchdog_cv_.notify_all();
  for (auto& t : workers_) t.join();  // they drain what is queued first
  workers_.clear();
  if (watchdog_.joinable()) watchdog_.join();
}

void ConnectionPool::worker() {
  for (;;) {
    Task t;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !pending_.empty(); });
      if (pending_.empty()) return;
      t = std::move(pending_.front());
      pending_.pop_front();
      running_.push_back(t.slot);
    }
    t.slot->deadline_ns = now_ns() + t.slot->read_deadline_ns;
    tl_slot = t.slot.get();
    t.fn();  // serves the connection's requests, then closes its socket
    tl_slot = nullptr;
    std::lock_guard<std::mutex> lk(mu_);
    running_.erase(std::find(running_.begin(), running_.end(), t.slot));
    if (t.slot->fd >= 0) owned_inodes_.erase(t.slot->ino);
  }
}

void ConnectionPool::watchdog() {
  const auto tick = std::clamp(opt_.read_deadline / 8, std::chrono::milliseconds(10),
                               std::chrono::milliseconds(250));
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    watchdog_cv_.wait_for(lk, tick);
    const int64_t now = now_ns();
    for (const auto& s : running_) {
      const int64_t d = s->deadline_ns.load();
      if (d == 0 || now < d || s->fd < 0) continue;
      s->deadline_ns = 0;
      // The socket is open while its task runs (the task closes it just before it ends); the
      // inode check skips the moment between the two, when the number may be reused.
      struct stat st {};
      if (fstat(s->fd, &st) == 0 && uint64_t(st.st_ino) == s->ino) {
        ::shutdown(s->fd, SHUT_RDWR);
        if (opt_.on_drop) opt_.on_drop();
      }
    }
  }
}

void ConnectionPool::request_read() {
  if (tl_slot) tl_slot->deadline_ns = 0;
}

void ConnectionPool::response_written() {
  Slot* s = tl_slot;
  if (!s) return;
  if (s->close_after && s->fd >= 0) {
    ::shutdown(s->fd, SHUT_RDWR);
    return;
  }
  s->deadline_ns = now_ns() + s->read_deadline_ns;
}

void ConnectionPool::close_after_response() {
  if (tl_slot) tl_slot->close_after = true;
}

bool ConnectionPool::peer_closed() {
  const Slot* s = tl_slot;
  if (!s || s->fd < 0) return false;
  char c;
  const ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace longctx::server
