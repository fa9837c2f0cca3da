#include "server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "api_response.h"
#include "connection_pool.h"
#include "core/error.h"

namespace longctx::server {

namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

// The routes and the methods they take; anything else is 404, or 405 naming the method.
struct Route {
  const char* path;
  const char* method;
};
constexpr Route kRoutes[] = {{"/v1/completions", "POST"},
                             {"/v1/chat/completions", "POST"},
                             {"/v1/models", "GET"},
                             {"/health", "GET"},
                             {"/metrics", "GET"}};

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& code = {}) {
  send_json(res, status, error_json(message, error_type_for_status(status), param, code));
}

bool has_body(const httplib::Request& req) {
  return req.has_header("Transfer-Encoding") ||
         (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
}

// Compares in time independent of where the strings differ, so the key cannot be guessed byte
// by byte from response times.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    diff |= unsigned(i < a.size() ? uint8_t(a[i]) : 0) ^ unsigned(i < b.size() ? uint8_t(b[i]) : 0);
  return diff == 0;
}

// What httplib answers by itself with an empty body.
std::string status_text(int status) {
  switch (status) {
    case 400:
      return "bad request: the request line or headers are malformed";
    case 404:
      return "no such endpoint";
    case 413:
      return "the request body is over the size limit";
    case 414:
      return "the request URI is too long";
    case 415:
      return "unsupported Content-Encoding";
    case 416:
      return "bad Range header";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions opt;
  httplib::Server svr;
  std::thread thread;
  std::atomic<int> port{0};
  std::atomic<int> listen_fd{-1};
  std::atomic<bool> stopping{false};
  std::atomic<bool> loop_returned{false};

  mutable std::mutex mu;  // guards backend, load_error, counters, stopped
  std::condition_variable stopped_cv;
  bool stopped = false;
  bool started = false;
  std::shared_ptr<Backend> backend;
  std::string load_error;
  HttpCounters counters;
  int64_t created = 0;

  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    if (opt.threads <= 0)
      opt.threads = std::max(opt.parallel, 1) + std::max(opt.queue_limit, 0) + 8;
    if (opt.max_pending_connections <= 0) opt.max_pending_connections = 4 * opt.threads;
    setup();
  }

  std::shared_ptr<Backend> current_backend() const {
    std::lock_guard<std::mutex> lk(mu);
    return backend;
  }

  void count_drop() {
    std::lock_guard<std::mutex> lk(mu);
    ++counters.dropped_connections;
  }

  void setup();
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res);
  bool read_body(const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& reader, std::string& body);
  std::shared_ptr<Backend> require_backend(httplib::Response& res);
  void generate(const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader& reader, bool chat);
  void respond_once(httplib::Response& res, Backend& be, std::unique_ptr<GenerationStream> stream,
                    bool chat, int logprobs_top, bool want_logprobs, int64_t text_offset);
  void respond_stream(httplib::Response& res, std::shared_ptr<Backend> be,
                      std::unique_ptr<GenerationStream> stream, bool chat, int logprobs_top,
                      bool want_logprobs, bool include_usage, int64_t text_offset);
};

void HttpServer::Impl::setup() {
  ConnectionPoolOptions po;
  po.threads = opt.threads;
  po.max_pending = opt.max_pending_connections;
  po.read_deadline = opt.read_deadline;
  po.on_drop = [this] { count_drop(); };
  svr.new_task_queue = [this, po] { return new ConnectionPool(po, &port); };
  const auto io_s = std::chrono::duration_cast<std::chrono::seconds>(opt.io_timeout);
  const auto io_us = std::chrono::duration_cast<std::chrono::microseconds>(opt.io_timeout - io_s);
  svr.set_read_timeout(io_s.count(), io_us.count());
  svr.set_write_timeout(io_s.count(), io_us.count());
  svr.set_keep_alive_timeout(5);
  svr.set_payload_max_length(opt.max_body_bytes);
  // Keep the listening socket to raise httplib's fixed backlog of 5 once bound (a burst of
  // connections would otherwise wait for SYN retries).
  svr.set_socket_options([this](int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });

  svr.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) { return pre_route(req, res); });
  // Called with the final status just before the response is written: counted here rather than
  // once written, so that a client reading /metrics after its answer sees that answer counted.
  svr.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    ConnectionPool::request_read();
    std::lock_guard<std::mutex> lk(mu);
    ++counters.responses_by_status[res.status];
  });
  // Errors httplib answers itself (a malformed request line, a body over the limit) get the same
  // JSON shape as ours.
  svr.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, res.status, status_text(res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, 500, "internal error: " + what + " (please report this)");
      });
  svr.set_logger([](const httplib::Request&, const httplib::Response&) {
    ConnectionPool::response_written();
  });

  svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
    generate(req, res, reader, /*chat=*/false);
  });
  svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res,
                                          const httplib::ContentReader& reader) {
    generate(req, res, reader, /*chat=*/true);
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, models_json(opt.model_id, created));
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lk(mu);
    if (backend) {
      send_json(res, 200, {{"status", "ok"}});
    } else if (!load_error.empty()) {
      send_json(res, 500, {{"status", "error"}, {"message", load_error}});
    } else {
      res.set_header("Retry-After", "1");
      send_json(res, 503, {{"status", "loading"}});
    }
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const auto be = current_backend();
    std::optional<SchedulerStats> stats;
    if (be) stats = be->stats();
    HttpCounters http;
    {
      std::lock_guard<std::mutex> lk(mu);
      http = counters;
    }
    res.set_content(
        metrics_text(stats ? &*stats : nullptr, http, bool(be), opt.parallel, opt.queue_limit),
        "text/plain; version=0.0.4; charset=utf-8");
  });
}

httplib::Server::HandlerResponse HttpServer::Impl::pre_route(const httplib::Request& req,
                                                             httplib::Response& res) {
  using HR = httplib::Server::HandlerResponse;
  const Route* route = nullptr;
  bool path_known = false;
  for (const Route& r : kRoutes) {
    if (req.path != r.path) continue;
    path_known = true;
    if (req.method == r.method || (req.method == "HEAD" && std::strcmp(r.method, "GET") == 0))
      route = &r;
  }
  // Answered before the body is read: the connection cannot carry another request after it.
  auto refuse = [&](int status, const std::string& message) {
    if (has_body(req)) ConnectionPool::close_after_response();
    send_error(res, status, message);
    return HR::Handled;
  };
  if (!path_known)
    return refuse(404, "no such endpoint: " + req.method + " " + req.path +
                           " (endpoints: POST /v1/completions, POST /v1/chat/completions, GET "
                           "/v1/models, GET /health, GET /metrics)");
  if (!route) {
    std::string allowed;
    for (const Route& r : kRoutes)
      if (req.path == r.path) allowed = r.method;
    res.set_header("Allow", allowed);
    return refuse(405, req.path + " takes " + allowed + ", not " + req.method);
  }
  if (!opt.api_key.empty() && req.path != "/health") {
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.compare(0, prefix.size(), prefix) != 0 ||
        !same_secret(auth.substr(prefix.size()), opt.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      return refuse(401, auth.empty() ? "missing API key: send the header 'Authorization: "
                                        "Bearer KEY' with the key the server was started with"
                                      : "invalid API key");
    }
  }
  return HR::Unhandled;
}

bool HttpServer::Impl::read_body(const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader, std::string& body) {
  bool too_big = false;
  const size_t limit = opt.max_body_bytes;
  // httplib checks a Content-Length against the limit itself; a chunked or compressed body is
  // counted here as it arrives.
  const bool ok = reader([&](const char* data, size_t n) {
    if (body.size() + n > limit) {
      too_big = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (ok) {
    ConnectionPool::request_read();
    return true;
  }
  ConnectionPool::close_after_response();
  if (too_big || res.status == 413) {
    send_error(res, 413,
               "the request body is over the limit of " + std::to_string(limit) + " bytes");
  } else {
    send_error(res, 400, "the request body could not be read (truncated or malformed)");
  }
  return false;
}

std::shared_ptr<Backend> HttpServer::Impl::require_backend(httplib::Response& res) {
  std::lock_guard<std::mutex> lk(mu);
  if (backend) return backend;
  res.set_header("Retry-After", "5");
  send_error(res, 503,
             load_error.empty() ? "the model is still loading; retry shortly (GET /health says "
                                  "when it is ready)"
                                : "the model failed to load: " + load_error);
  return nullptr;
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader, bool chat) {
  std::string body;
  if (!read_body(req, res, reader, body)) return;
  const auto be = require_backend(res);
  if (!be) return;
  try {
    CompletionRequest cr;
    GenerationParams gen;
    int logprobs_top = 0;
    bool want_logprobs = false;
    int64_t text_offset = 0;
    if (chat) {
      ChatApiRequest r = parse_chat_request(body);
      gen = r.gen;
      want_logprobs = r.logprobs;
      logprobs_top = r.top_logprobs;
      ChatPrompt cp = be->chat_prompt(r.messages);
      cr.prompt = std::move(cp.ids);
      cr.stop_tokens = std::move(cp.stop_tokens);
    } else {
      CompletionApiRequest r = parse_completion_request(body);
      gen = r.gen;
      want_logprobs = r.logprobs.has_value();
      logprobs_top = r.logprobs.value_or(0);
      if (r.prompt_is_ids) {
        cr.prompt = std::move(r.prompt_ids);
      } else {
        cr.prompt = be->tokenize(r.prompt_text);
        text_offset = int64_t(r.prompt_text.size());
      }
    }
    if (cr.prompt.empty())
      throw ApiError(400, "the prompt is empty and the model's tokenizer adds no BOS token",
                     chat ? "messages" : "prompt");
    const int64_t n = int64_t(cr.prompt.size());
    // Chat's default is "as long as the context allows" (OpenAI's); a completion's is 16.
    cr.max_tokens = gen.max_tokens.value_or(
        chat ? int(std::max<int64_t>(1, std::min<int64_t>(be->context() - n, INT32_MAX))) : 16);
    cr.sampler.temperature = gen.temperature;
    cr.sampler.top_p = gen.top_p;
    cr.sampler.top_k = gen.top_k;
    cr.sampler.min_p = gen.min_p;
    cr.sampler.repeat_penalty = gen.repeat_penalty;
    cr.sampler.seed = gen.seed ? *gen.seed : std::random_device{}();
    cr.stop = gen.stop;
    cr.ignore_eos = gen.ignore_eos;
    if (want_logprobs) cr.logprobs = logprobs_top;  // 0: each token's own, no top list

    std::unique_ptr<GenerationStream> stream;
    try {
      stream = be->submit(std::move(cr));
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::kBusy:
          res.set_header("Retry-After", "1");
          return send_error(res, 503, e.what(), "", "server_busy");
        case ErrorKind::kOutOfRange:
          return send_error(res, 400, e.what(), chat ? "messages" : "prompt",
                            "context_length_exceeded");
        case ErrorKind::kInvalidArg:
          return send_error(res, 400, e.what());
        default:
          return send_error(res, 500, e.what());
      }
    }
    if (gen.stream)
      respond_stream(res, be, std::move(stream), chat, logprobs_top, want_logprobs,
                     gen.include_usage, text_offset);
    else
      respond_once(res, *be, std::move(stream), chat, logprobs_top, want_logprobs, text_offset);
  } catch (const ApiError& e) {
    send_json(res, e.status(), error_json(e));
  } catch (const Error& e) {
    // Tokenizing or templating refused the input.
    send_error(res, e.kind() == ErrorKind::kInternal ? 500 : 400, e.what());
  }
}

void HttpServer::Impl::respond_once(httplib::Response& res, Backend& be,
                                    std::unique_ptr<GenerationStream> stream, bool chat,
                                    int logprobs_top, bool want_logprobs, int64_t text_offset) {
  const ResponseIds ids = new_response_ids(chat ? "chatcmpl-" : "cmpl-", opt.model_id);
  LogprobsBuilder lp(
      chat, logprobs_top, [&be](int32_t id) { return be.token_text(id); }, text_offset);
  std::string text;
  bool client_gone = false, cancelled = false;
  auto last_check = std::chrono::steady_clock::now();
  SchedulerEvent ev;
  for (;;) {
    const std::optional<bool> got = stream->next_for(ev, kPoll);
    // Every poll interval, tokens or not: is anyone still waiting for the answer?
    if (!cancelled && std::chrono::steady_clock::now() - last_check >= kPoll) {
      last_check = std::chrono::steady_clock::now();
      if (stopping || ConnectionPool::peer_closed()) {
        client_gone = !stopping;
        cancelled = true;
        stream->cancel();
      }
    }
    if (!got) continue;
    if (!*got) break;
    text += ev.text;
    if (want_logprobs) lp.add(ev);
  }
  const Finish& f = stream->finish();
  if (f.reason == FinishReason::kError)
    return send_error(res, 500, "generation failed: " + f.error);
  if (f.reason == FinishReason::kCancelled) {
    if (!client_gone)
      return send_error(res, 503, "the request was cancelled: the server is stopping");
    // Nobody reads this; 499 (nginx's "client closed request") counts it apart in /metrics.
    ConnectionPool::close_after_response();
    return send_error(res, 499, "the client closed the connection");
  }
  const json logprobs = want_logprobs ? lp.take() : json(nullptr);
  send_json(res, 200,
            chat ? chat_completion_json(ids, text, logprobs, f)
                 : completion_json(ids, text, logprobs, f));
}

void HttpServer::Impl::respond_stream(httplib::Response& res, std::shared_ptr<Backend> be,
                                      std::unique_ptr<GenerationStream> stream, bool chat,
                                      int logprobs_top, bool want_logprobs, bool include_usage,
                                      int64_t text_offset) {
  struct State {
    std::shared_ptr<Backend> be;  // outlives the stream
    std::unique_ptr<GenerationStream> stream;
    ResponseIds ids;
    std::unique_ptr<LogprobsBuilder> lp;
    bool chat = false, want_logprobs = false, include_usage = false;
    bool sent_role = false, finished = false;
  };
  auto st = std::make_shared<State>();
  st->be = std::move(be);
  st->stream = std::move(stream);
  st->ids = new_response_ids(chat ? "chatcmpl-" : "cmpl-", opt.model_id);
  Backend* bp = st->be.get();
  st->lp = std::make_unique<LogprobsBuilder>(
      chat, logprobs_top, [bp](int32_t id) { return bp->token_text(id); }, text_offset);
  st->chat = chat;
  st->want_logprobs = want_logprobs;
  st->include_usage = include_usage;

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies: pass events on as they come
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, st](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          if (sink.write(s.data(), s.size())) return true;
          st->stream->cancel();  // the client is gone
          return false;
        };
        if (st->chat && !st->sent_role) {
          st->sent_role = true;
          return write(sse_data(
              chat_chunk(st->ids, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)));
        }
        SchedulerEvent ev;
        const std::optional<bool> got = st->stream->next_for(ev, kPoll);
        if (stopping || !sink.is_writable()) {
          st->stream->cancel();
          return false;
        }
        if (!got) return true;  // httplib calls again (and checks for its own shutdown)
        if (*got) {
          if (st->want_logprobs) st->lp->add(ev);
          // A token whose text is held back (part of a character or of a possible stop string)
          // is sent with the next one, unless its logprobs are wanted now.
          if (ev.text.empty() && !st->want_logprobs) return true;
          const json lp = st->want_logprobs ? st->lp->take() : json(nullptr);
          return write(sse_data(st->chat ? chat_chunk(st->ids, {{"content", ev.text}}, lp, nullptr)
                                         : completion_chunk(st->ids, ev.text, lp, nullptr)));
        }
        st->finished = true;
        const Finish& f = st->stream->finish();
        std::string out;
        if (f.reason == FinishReason::kError || f.reason == FinishReason::kCancelled) {
          out += sse_data(error_json(f.reason == FinishReason::kError
                                         ? "generation failed: " + f.error
                                         : std::string("the request was cancelled"),
                                     "server_error"));
        } else {
          const char* reason = api_finish_reason(f.reason);
          out += sse_data(st->chat ? chat_chunk(st->ids, json::object(), nullptr, reason)
                                   : completion_chunk(st->ids, "", nullptr, reason));
          if (st->include_usage) out += sse_data(usage_chunk(st->ids, st->chat, f));
        }
        out += kSseDone;
        if (!write(out)) return false;
        sink.done();
        return true;
      },
      [st](bool) {
        // The response ended, written or not: a generation still running has no reader.
        if (!st->finished) st->stream->cancel();
      });
}

HttpServer::HttpServer(ServerOptions opt) : impl_(std::make_unique<Impl>(std::move(opt))) {}

HttpServer::~HttpServer() { stop(); }

const ServerOptions& HttpServer::options() const { return impl_->opt; }

int HttpServer::start() {
  Impl& m = *impl_;
  // A write to a client that has gone away must fail with EPIPE, not end the process (httplib
  // sends without MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  int port = m.opt.port;
  if (port == 0) {
    port = m.svr.bind_to_any_port(m.opt.host);
    if (port <= 0) port = -1;
  } else if (!m.svr.bind_to_port(m.opt.host, port)) {
    port = -1;
  }
  if (port < 0)
    throw Error(ErrorKind::kIo, "cannot listen on " + m.opt.host + ":" +
                                    std::to_string(m.opt.port) +
                                    ": the address is in use or not local; choose another "
                                    "--port or --host");
  if (const int fd = m.listen_fd.load(); fd >= 0) ::listen(fd, m.opt.listen_backlog);
  m.port = port;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    m.started = true;
  }
  m.thread = std::thread([&m] {
    m.svr.listen_after_bind();
    m.loop_returned = true;
  });
  // httplib's stop() does nothing until its loop runs: wait for it, so stop() cannot be lost.
  while (!m.svr.is_running() && !m.loop_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void HttpServer::set_backend(std::shared_ptr<Backend> backend) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->backend = std::move(backend);
}

void HttpServer::set_load_error(const std::string& message) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->load_error = message;
}

void HttpServer::stop() {
  Impl& m = *impl_;
  m.stopping = true;
  m.svr.stop();
  if (m.thread.joinable()) m.thread.join();
  std::shared_ptr<Backend> be;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    m.stopped = true;
    be = std::move(m.backend);  // the engine goes when its last request does
  }
  m.stopped_cv.notify_all();
}

void HttpServer::wait() {
  std::unique_lock<std::mutex> lk(impl_->mu);
  impl_->stopped_cv.wait(lk, [&] { return impl_->stopped; });
}

}  // namespace longctx::server
