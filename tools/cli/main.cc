// longctx: run long-context LLMs from Hugging Face checkpoints on limited memory.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace {
// `longctx serve` is the program longctx-serve beside this one: the HTTP library brings OpenSSL,
// zlib and brotli (Debian builds cpp-httplib with them), 4 MiB resident that every other command
// would carry and the memory plan would have to price.
int exec_serve(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string serve = (ec ? std::filesystem::path(argv[0]) : self).parent_path() /
                            "longctx-serve";
  execv(serve.c_str(), argv);  // argv stays "longctx serve ...": the same parser, the same help
  std::fprintf(stderr,
               "error: longctx serve runs %s, which could not be started (%s); build it with "
               "cmake --build build --target longctx-serve\n",
               serve.c_str(), std::strerror(errno));
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return exec_serve(argv);
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
  // Listed in the help; `longctx serve ...` never gets here (exec_serve).
  app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API (longctx serve "
                              "--help for its options)");
  add(longctx::cli::add_random_model_command(app));
  app.footer(longctx::cli::kNumberRule);
  if (const int rc = longctx::cli::refuse_bad_command_line(app, argc, argv)) return rc;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return longctx::cli::usage_error(app, e);
  }
  for (const CLI::App* sub : app.get_subcommands())
    if (runners.count(sub)) return longctx::cli::run_guarded(runners.at(sub));
  return 0;
}
