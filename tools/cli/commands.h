// Subcommands of the longctx CLI. Each registers its options on the CLI11 app and returns the
// function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

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

}  // namespace longctx::cli
