// Text generation over an Engine's Session: prefill (with a live progress line), then sampling
// one token at a time until a stop condition, streaming the text as it becomes complete UTF-8.
// Every front end generates through this, so stop rules and timings mean the same everywhere.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "longctx/engine.h"
#include "runtime/progress.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace longctx {

enum class StopReason { kLimit, kEndOfSequence, kContextFull };

// How the CLI words a stop reason: "limit (-n)", "end of sequence", "context full (raise -c)".
const char* stop_reason_text(StopReason r);

struct GenerateOptions {
  int n_predict = 128;      // tokens to sample at most (an end-of-sequence token counts)
  bool ignore_eos = false;  // keep going past end-of-sequence tokens (they are then text)
  SamplerParams sampler;
  ProgressMode progress = ProgressMode::kAuto;  // the prefill's progress line on stderr
  // Called with every prefill progress update (not throttled), whether or not the line is shown:
  // for Python's verbose output and the server's metrics. Null: none.
  std::function<void(const ProgressSnapshot&)> on_progress;
};

// Error(kInvalidArg) naming the flag when `o` is out of range (sampler settings, -n < 0).
void validate(const GenerateOptions& o);

// Error(kOutOfRange) unless `prompt_tokens` leave room for at least one generated token in
// `context`: "the prompt has N tokens but the context is C; raise -c or shorten the prompt".
void check_prompt_fits(int64_t prompt_tokens, int64_t context);

struct GenerateResult {
  std::vector<int32_t> tokens;  // sampled ids, a final end-of-sequence id included
  StopReason stop = StopReason::kLimit;
  int64_t prompt_tokens = 0;  // prefilled now (the prompt less what the session already held)
  int64_t prompt_held = 0;    // prompt tokens the session held before (a prompt cache)
  double prefill_s = 0;  // the prompt's forward passes
  double decode_s = 0;   // sampling and the decode steps
  // Forward passes of one token: the first sampled token comes from the prefill's logits, so
  // this is tokens.size() - 1 (or 0).
  int decode_steps = 0;

  double prefill_tok_per_s() const { return prompt_tokens / std::max(prefill_s, 1e-9); }
  double decode_tok_per_s() const { return decode_steps / std::max(decode_s, 1e-9); }
};

class Generator {
 public:
  using TextCallback = std::function<void(const std::string&)>;

  // Generates in `session` (of `engine`; both must outlive the Generator). Validates `opt`.
  Generator(Engine& engine, Session& session, const GenerateOptions& opt);

  // Whether generate() shows a progress line on stderr (decided at construction). A front end
  // that echoes the prompt on a terminal does so after the prefill then (on_prefilled), so the
  // line does not overwrite it.
  bool shows_progress() const { return show_progress_; }

  // Runs `prompt` after what the session holds, then samples until n_predict tokens, an
  // end-of-sequence token (not passed to on_text) or a full context. `on_text` receives the
  // continuation as complete UTF-8 pieces (the decoder has seen the prompt, so a leading space is
  // kept); `on_prefilled` is called once the prompt has run. Error(kOutOfRange) when the prompt
  // leaves no room in the context. `held` > 0: the session holds exactly prompt[0, held) already
  // (loaded from a prompt cache); only the rest runs, and sampling and decoding still see the
  // whole prompt.
  GenerateResult generate(const std::vector<int32_t>& prompt, const TextCallback& on_text,
                          const std::function<void()>& on_prefilled = {}, int64_t held = 0);

 private:
  Engine& engine_;
  Session& session_;
  GenerateOptions opt_;
  bool show_progress_;
};

}  // namespace longctx
