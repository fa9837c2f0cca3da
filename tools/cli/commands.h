// Subcommands of the longctx CLI. Each registers its options on the CLI11 app and returns the
// function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <functional>

#include "core/error.h"
#include "plan_options.h"

namespace longctx::cli {

using Runner = std::function<int()>;

Runner add_run_command(CLI::App& app);
Runner add_random_model_command(CLI::App& app);
Runner add_plan_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_perplexity_command(CLI::App& app);
Runner add_trace_command(CLI::App& app);
Runner add_tokenize_command(CLI::App& app);
Runner add_quantize_command(CLI::App& app);
Runner add_serve_command(CLI::App& app);

// Before CLI11 parses: an unknown command and an option given an empty value ("-c ''") are
// refused with a message naming them; returns the exit code (2), or 0 to go on.
int refuse_bad_command_line(const CLI::App& app, int argc, char** argv);
// A command line CLI11 could not parse, as "error: ..." on stderr with exit code 2 (help and
// version requests print as CLI11 prints them).
int usage_error(const CLI::App& app, const CLI::ParseError& e);

// Runs a command the way every longctx program ends: its exit code; an Error printed as
// "error: ..." (exit 1), anything else as an internal error (exit 3).
inline int run_guarded(const Runner& run) {
  try {
    return run();
  } catch (const longctx::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: internal: %s (please report this)\n", e.what());
    return 3;
  }
}

}  // namespace longctx::cli
