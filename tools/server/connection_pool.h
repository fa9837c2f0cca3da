// The worker pool httplib hands accepted connections to (its TaskQueue), extended with what
// httplib 0.11 lacks for a server facing the network:
//  - a deadline for reading a whole request: httplib's read timeout applies to each read, so a
//    client sending its headers one byte a second would hold a worker forever; a watchdog shuts
//    the connection down once a request has not been read within the deadline;
//  - a bound on connections waiting for a worker: beyond it, a connection gets 503 and is closed
//    at once instead of queueing without limit;
//  - the socket of the request a handler is serving, to notice a client that went away while a
//    non-streaming request generates, and to close a connection whose body was left unread.
//
// httplib gives the task queue only opaque tasks, so the pool finds each accepted socket itself
// when it is enqueued (right after accept(), on the listening thread): the one socket of the
// listening port that no queued or running connection owns (found in /proc/self/fd, told apart
// by inode). Where that fails (no /proc), connections are served without these extras.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace longctx::server {

struct ConnectionPoolOptions {
  int threads = 8;
  int max_pending = 256;  // accepted connections waiting for a worker at most
  std::chrono::milliseconds read_deadline{10000};  // a request's headers and body
  std::function<void()> on_drop;  // a connection closed for the deadline or overload
};

class ConnectionPool : public httplib::TaskQueue {
 public:
  // `listen_port` is read at each enqueue: the port the server is bound to.
  ConnectionPool(const ConnectionPoolOptions& opt, const std::atomic<int>* listen_port);
  ~ConnectionPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // For the handler running on the calling worker thread (no-ops elsewhere):
  // the request has been read; its deadline no longer applies.
  static void request_read();
  // The response has been written; the next request on the connection has the deadline again.
  // Shuts the connection down instead when close_after_response() was called.
  static void response_written();
  // Close the connection once the response is written (a request body was left unread).
  static void close_after_response();
  // Whether the peer has closed the connection (false when unknown).
  static bool peer_closed();

  struct Slot;  // one connection's socket and deadline

 private:
  struct Task {
    std::function<void()> fn;
    std::shared_ptr<Slot> slot;
  };

  std::shared_ptr<Slot> find_new_socket();
  static bool peer_gone(int fd);  // the client closed (or half-closed) its end
  void worker();
  void watchdog();

  ConnectionPoolOptions opt_;
  const std::atomic<int>* port_;
  std::mutex mu_;
  std::condition_variable cv_, watchdog_cv_;
  std::deque<Task> pending_;
  std::set<uint64_t> owned_inodes_;  // sockets of queued or running connections
  std::vector<std::shared_ptr<Slot>> running_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
  std::thread watchdog_;
};

}  // namespace longctx::server
