// Hook options shared by trace, run and perplexity: --patch and --steer everywhere, and for
// trace the capture (--hooks, --pos, --pattern-queries). Declared once, read the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "hooks/hook_runner.h"

namespace longctx::cli {

struct HookFlags {
  std::string hooks;            // names and globs, comma-separated (trace)
  std::string pos = ":";        // Python-style slice of positions
  std::string pattern_queries;  // "7,100,-1" (trace)
  std::vector<std::string> patches, steers;

  bool any_intervention() const { return !patches.empty() || !steers.empty(); }
};

// capture: also --hooks and --pattern-queries (trace).
void add_hook_flags(CLI::App& cmd, HookFlags& f, bool capture);

// The request these flags describe for a model of `cfg`: names expanded, patch and steer files
// read. Errors name the flag and the fix.
hooks::HookRequest hook_request(const HookFlags& f, const ModelConfig& cfg);

}  // namespace longctx::cli
