// longctx-serve: the `longctx serve` command in a program of its own (see exec_serve in main.cc),
// so that only the server loads the HTTP library and what it links.
#include <csignal>

#include "commands.h"

int main(int argc, char** argv) {
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"longctx: run long-context LLMs from Hugging Face checkpoints on limited memory"};
  app.name("longctx");
  app.require_subcommand(1);
  const longctx::cli::Runner serve = longctx::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return longctx::cli::run_guarded(serve);
}
