#include "hook_options.h"

#include "hooks/hook_files.h"

namespace longctx::cli {

void add_hook_flags(CLI::App& cmd, HookFlags& f, bool capture) {
  if (capture) {
    cmd.add_option("--hooks", f.hooks,
                   "Hooks to capture: names and * globs, comma-separated (e.g. "
                   "'blocks.*.hook_resid_post,blocks.3.attn.*', 'logits'; docs/hooks.md)")
        ->required();
    cmd.add_option("--pattern-queries", f.pattern_queries,
                   "Query positions of hook_pattern / hook_attn_scores rows, e.g. 7,100,-1 "
                   "(negative from the end; default: every position of --pos)");
  }
  cmd.add_option("--pos", f.pos,
                 capture ? "Positions to capture and patch, Python-style A:B (default ':')"
                         : "Positions --patch applies to, Python-style A:B (default ':')")
      ->capture_default_str();
  cmd.add_option("--patch", f.patches,
                 "NAME=FILE.safetensors: replace hook NAME with FILE's tensor NAME (its rows over "
                 "--pos, or one row for every position); repeatable")
      ->take_all();
  cmd.add_option("--steer", f.steers,
                 "NAME=FILE.safetensors:SCALE: add SCALE x FILE's [d] tensor NAME to hook NAME at "
                 "every position; repeatable")
      ->take_all();
}

hooks::HookRequest hook_request(const HookFlags& f, const ModelConfig& cfg) {
  hooks::HookRequest r;
  if (!f.hooks.empty()) r.capture = hooks::expand_hook_list(f.hooks, cfg.num_hidden_layers);
  r.pos = hooks::PosSlice::parse(f.pos.empty() ? ":" : f.pos);
  if (!f.pattern_queries.empty())
    r.pattern_queries = hooks::parse_positions(f.pattern_queries, "--pattern-queries");
  for (const std::string& s : f.patches) r.patches.push_back(hooks::load_patch(s, cfg));
  for (const std::string& s : f.steers) r.steers.push_back(hooks::load_steer(s, cfg));
  return r;
}

}  // namespace longctx::cli
