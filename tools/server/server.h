// longctx serve's HTTP front end: OpenAI-compatible endpoints over a Backend (DESIGN.md decision
// 8: thin; tokenizing, templating and scheduling live below it).
//
//   POST /v1/completions, POST /v1/chat/completions   (JSON, or server-sent events with stream)
//   GET  /v1/models, GET /health, GET /metrics
//
//   HttpServer server(opts);
//   const int port = server.start();     // listening; /health answers 503 "loading"
//   server.set_backend(backend);         // loaded; requests are served
//   server.wait();                       // until stop() (e.g. from a signal thread)
//
// The server starts before the model is loaded so that a supervisor sees it come up (and
// /health say "loading") instead of a silent port for the minutes a large model takes.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "backend.h"

namespace longctx::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (tests)
  std::string model_id = "model";  // GET /v1/models, "model" of every answer
  std::string api_key;             // non-empty: /v1/* and /metrics need "Authorization: Bearer KEY"
  size_t max_body_bytes = size_t(8) << 20;
  // A request's headers and body must arrive within this (a client trickling bytes is dropped).
  std::chrono::milliseconds read_deadline{10000};
  // One read or write on a socket waits at most this (a client that stops reading a stream).
  std::chrono::milliseconds io_timeout{10000};
  int parallel = 4;                 // the scheduler's, to size the worker pool and for /metrics
  int queue_limit = 64;             // likewise
  int threads = 0;                  // connection workers; 0: parallel + queue_limit + 8
  int max_pending_connections = 0;  // accepted, waiting for a worker; 0: 4 x threads
  int listen_backlog = 512;
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions opt);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and serves on a thread of its own; returns the port. Error(kIo) when the
  // address cannot be bound.
  int start();
  // The model is loaded: generation requests are served and /health answers 200.
  void set_backend(std::shared_ptr<Backend> backend);
  // Loading failed: /health answers 500 with `message`, generation requests 503.
  void set_load_error(const std::string& message);
  // Stops accepting, cancels running generations, joins every thread. Idempotent; callable from
  // any thread but the server's own.
  void stop();
  // Blocks until stop() was called.
  void wait();

  const ServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longctx::server
