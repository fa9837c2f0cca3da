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
#include "dist/mpi.h"
#include "dist/pipeline.h"

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

#ifndef LONGCTX_MPI_BINARY
// Under mpirun with more than one rank: the same command in longctx-mpi, the build of this
// program with MPI linked (src/dist), so that everyday runs never load libmpi.
int exec_mpi(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string mpi = (ec ? std::filesystem::path(argv[0]) : self).parent_path() /
                          "longctx-mpi";
  execv(mpi.c_str(), argv);
  std::fprintf(stderr,
               "error: started by mpirun with %d ranks, but %s (longctx built with MPI) could "
               "not be started (%s). Install libopenmpi-dev (bash scripts/install-deps.sh) and "
               "rebuild, or run without mpirun\n",
               longctx::dist::launcher_ranks(), mpi.c_str(), std::strerror(errno));
  return 1;
}
#endif
}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) {
    if (longctx::dist::launcher_ranks() > 1) {
      std::fprintf(stderr,
                   "error: longctx serve runs in one process; under mpirun every rank would start "
                   "its own server on the same port. Start it without mpirun "
                   "(docs/distributed.md)\n");
      return 1;
    }
    return exec_serve(argv);
  }
#ifndef LONGCTX_MPI_BINARY
  if (longctx::dist::launcher_ranks() > 1) return exec_mpi(argv);
#endif
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
  // Under mpirun rank 0 runs the command and drives the pipeline; the other ranks serve it.
  longctx::dist::init(&argc, &argv);
  int rc = 0;
  if (longctx::dist::rank() > 0) {
    rc = longctx::dist::run_worker();
  } else {
    for (const CLI::App* sub : app.get_subcommands())
      if (runners.count(sub)) rc = longctx::cli::run_guarded(runners.at(sub));
  }
  longctx::dist::finalize();
  return rc;
}
