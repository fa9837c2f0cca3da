// longctx: run long-context LLMs from Hugging Face checkpoints on limited memory.
#include <csignal>
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) makes writes fail with EFBIG, reported like a full disk,
  // instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"longctx: run long-context LLMs from Hugging Face checkpoints on limited memory"};
  app.require_subcommand(1);
  std::map<const CLI::App*, longctx::cli::Runner> runners;
  auto add = [&](longctx::cli::Runner r) { runners[app.get_subcommands({}).back()] = r; };
  add(longctx::cli::add_run_command(app));
  add(longctx::cli::add_plan_command(app));
  add(longctx::cli::add_bench_command(app));
  add(longctx::cli::add_perplexity_command(app));
  add(longctx::cli::add_trace_command(app));
  add(longctx::cli::add_tokenize_command(app));
  add(longctx::cli::add_quantize_command(app));
  add(longctx::cli::add_serve_command(app));
  add(longctx::cli::add_random_model_command(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const CLI::App* sub : app.get_subcommands()) return runners.at(sub)();
  } catch (const longctx::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: internal: %s (please report this)\n", e.what());
    return 3;
  }
  return 0;
}
