// longctx serve: an OpenAI-compatible HTTP server (docs/serve.md). Plans first (a budget too
// small refuses here, before anything listens), then listens, then loads the model in the
// background while GET /health answers 503 "loading"; SIGINT / SIGTERM stop it cleanly.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "longctx/engine.h"
#include "core/proc_stats.h"
#include "plan/memory_budget.h"
#include "plan_options.h"
#include "server/engine_backend.h"
#include "server/server.h"

namespace longctx::cli {

namespace {

struct ServeOpts {
  std::string model_path;
  PlanFlags plan;
  bool mmap = false;
  bool force_ctx = false;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int queue = 64;
  std::string api_key;
  std::string chat_template;
  std::string max_body = "8MiB";
  double timeout_s = 10;
};

// Resident bytes per thread of the HTTP server (stack pages touched, thread-local state): about
// 16 KiB measured per idle worker, doubled for one that parses a request. The loader, signal,
// watchdog and scheduler threads count as helpers.
constexpr size_t kConnectionThreadBytes = size_t{32} << 10;
constexpr int kHelperThreads = 4;

// The model's name as clients see it: the folder or file name.
std::string model_id(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // a trailing slash
  return p.filename().string().empty() ? path : p.filename().string();
}

int serve(const ServeOpts& o) {
  if (o.parallel < 1) throw Error(ErrorKind::kInvalidArg, "--parallel must be at least 1");
  if (o.queue < 0) throw Error(ErrorKind::kInvalidArg, "--queue must be 0 or more");
  if (o.port < 0 || o.port > 65535)
    throw Error(ErrorKind::kInvalidArg, "--port must be in [0, 65535] (0: any free port)");
  if (!(o.timeout_s > 0))
    throw Error(ErrorKind::kInvalidArg, "--timeout must be a positive number of seconds");
  const size_t max_body = parse_size(o.max_body);
  server::check_chat_template_name(o.chat_template);

  // Plan first: a request that does not fit refuses before the port is taken.
  EngineOptions eo = engine_options(o.plan);
  eo.model_path = o.model_path;
  eo.force_ctx = o.force_ctx;
  eo.weights = weight_memory(o.mmap);
  eo.on_notice = [](const std::string& m) { std::fprintf(stderr, "note: %s\n", m.c_str()); };
  // A context chosen for the user lets every one of --parallel sequences reach it at once.
  if (eo.context == 0) eo.batch = o.parallel;
  // What this front end holds beside the model, in the plan too: the HTTP library and its TLS
  // and compression dependencies (what is resident now beyond the program the plan prices for
  // every command), and the stack each connection worker and helper thread touches.
  const int connection_threads = o.parallel + o.queue + 8;
  eo.extra_bytes = std::max(current_rss_bytes(), kProgramBytes) - kProgramBytes +
                   size_t(connection_threads + kHelperThreads) * kConnectionThreadBytes;
  eo.extra_what = "the HTTP server";
  const PlannedRun planned = Engine::plan_only(eo);
  if (const std::string m = context_choice_message(planned); !m.empty())
    std::fprintf(stderr, "%s\n", m.c_str());
  SchedulerOptions sched;
  sched.parallel = o.parallel;
  sched.queue_limit = o.queue;
  const ServePlan sp = plan_serve(planned, sched);  // refuses here too, before listening
  const server::ChatTemplateChoice chat =
      server::resolve_chat_template(o.model_path, o.chat_template);
  std::fprintf(stderr, "%s\n", chat.message.c_str());

  // Signals go to one thread that waits for them; every thread started below inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.model_id = model_id(o.model_path);
  so.api_key = o.api_key;
  so.max_body_bytes = max_body;
  so.read_deadline = so.io_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  so.parallel = o.parallel;
  so.queue_limit = o.queue;
  so.threads = connection_threads;
  server::HttpServer http(so);
  const int port = http.start();
  std::fprintf(stderr, "listening on http://%s:%d (model %s, ctx %lld, plan %s of %s)%s\n",
               o.host.c_str(), port, so.model_id.c_str(),
               static_cast<long long>(planned.plan.context), format_size(sp.total).c_str(),
               format_size(planned.budget.bytes).c_str(),
               o.api_key.empty() ? "" : "; API key required");
  if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1" && o.api_key.empty())
    std::fprintf(stderr,
                 "warning: listening beyond loopback without --api-key: anyone who can reach "
                 "%s:%d can use the model\n",
                 o.host.c_str(), port);

  std::atomic<bool> done{false};
  std::atomic<int> exit_code{0};
  std::atomic<bool> loading{true};
  std::thread loader([&] {
    try {
      std::shared_ptr<server::Backend> be = server::load_engine_backend(planned, sched, chat);
      const SchedulerStats st = be->stats();
      http.set_backend(std::move(be));
      std::fprintf(stderr,
                   "model loaded; serving: KV pool %lld blocks of %s, serving plan %s of %s\n",
                   static_cast<long long>(st.kv_blocks_total),
                   format_size(size_t(st.kv_block_bytes)).c_str(),
                   format_size(size_t(st.planned_bytes)).c_str(),
                   format_size(size_t(st.budget_bytes)).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: loading the model failed: %s\n", e.what());
      http.set_load_error(e.what());
      exit_code = 1;
      loading = false;
      done = true;
    }
    loading = false;
  });
  std::thread signals([&] {
    const timespec tick{0, 100 * 1000 * 1000};
    while (!done) {
      const int sig = sigtimedwait(&sigs, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) {
        std::fprintf(stderr, "\n%s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        done = true;
      }
    }
    if (loading) {
      // Weights cannot be abandoned half-read cleanly; nothing was served yet, so just go.
      std::fflush(stderr);
      _exit(exit_code == 0 ? 130 : exit_code.load());
    }
    http.stop();
  });
  http.wait();
  signals.join();
  loader.join();
  return exit_code;
}

}  // namespace

Runner add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  auto o = std::make_shared<ServeOpts>();
  cmd->add_option("-m,--model", o->model_path, "Hugging Face model folder or GGUF file")
      ->required();
  add_plan_flags(*cmd, o->plan);
  add_weight_memory_flag(*cmd, o->mmap);
  cmd->add_flag("--force-ctx", o->force_ctx, "Allow -c beyond max_position_embeddings");
  cmd->add_option("--host", o->host,
                  "Address to listen on (default loopback only; 0.0.0.0 exposes the server to "
                  "the network: set --api-key)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "Port to listen on (0: any free port, printed at start)")
      ->capture_default_str();
  cmd->add_option("--parallel", o->parallel, "Sequences generated at once at most")
      ->capture_default_str();
  cmd->add_option("--queue", o->queue,
                  "Requests waiting for memory at most; beyond, 503 with Retry-After")
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key,
                  "Require 'Authorization: Bearer KEY' on /v1/* and /metrics (or set "
                  "LONGCTX_API_KEY, which other users cannot read from the process list)")
      ->envname("LONGCTX_API_KEY");
  cmd->add_option("--chat-template", o->chat_template,
                  "Chat template for /v1/chat/completions (default: the model's own when "
                  "recognised), e.g. chatml, llama2, llama3, mistral, phi3");
  cmd->add_option("--max-body", o->max_body, "Largest request body, e.g. 8MiB")
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s,
                  "Seconds a client has to send a request, and one socket read or write waits")
      ->capture_default_str();
  return [o] { return serve(*o); };
}

}  // namespace longctx::cli
