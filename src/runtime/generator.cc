// Generation over a Session: prefill with progress, sampling, stop rules, streamed text
// (include/longctx/generator.h).
#include "longctx/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace longctx {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

const char* stop_reason_text(StopReason r) {
  switch (r) {
    case StopReason::kLimit:
      return "limit (-n)";
    case StopReason::kEndOfSequence:
      return "end of sequence";
    case StopReason::kContextFull:
      return "context full (raise -c)";
  }
  return "?";
}

void validate(const GenerateOptions& o) {
  validate(o.sampler);
  if (o.n_predict < 0) throw Error(ErrorKind::kInvalidArg, "-n must be >= 0");
}

void check_prompt_fits(int64_t prompt_tokens, int64_t context) {
  if (prompt_tokens >= context)
    throw Error(ErrorKind::kOutOfRange,
                "the prompt has " + std::to_string(prompt_tokens) + " tokens but the context is " +
                    std::to_string(context) + "; raise -c or shorten the prompt");
}

Generator::Generator(Engine& engine, Session& session, const GenerateOptions& opt)
    : engine_(engine),
      session_(session),
      opt_(opt),
      show_progress_(progress_enabled(opt.progress)) {
  validate(opt_);
}

GenerateResult Generator::generate(const std::vector<int32_t>& prompt, const TextCallback& on_text,
                                   const std::function<void()>& on_prefilled, int64_t held) {
  GenerateResult res;
  if (held != 0 &&
      (held < 0 || held >= static_cast<int64_t>(prompt.size()) || held != session_.n_past() ||
       !std::equal(prompt.begin(), prompt.begin() + held, session_.tokens().begin())))
    throw Error(ErrorKind::kInternal, "the session does not hold the prompt's first " +
                                            std::to_string(held) + " tokens");
  res.prompt_held = held;
  res.prompt_tokens = static_cast<int64_t>(prompt.size()) - held;
  if (prompt.empty()) throw Error(ErrorKind::kInvalidArg, "nothing to run: the prompt is empty");
  check_prompt_fits(session_.n_past() + res.prompt_tokens, session_.context());
  const Tokenizer& tok = engine_.tokenizer();
  const int64_t vocab = engine_.model().vocab_size();
  const std::vector<int32_t>& eos = engine_.eos_ids();
  Sampler sampler(opt_.sampler);

  // Prefill, reporting each chunk to the progress line (and to whatever the session reported to).
  std::vector<float> logits;
  {
    Progress progress("prefill", engine_.plan().total,
                      show_progress_ ? ProgressMode::kOn : ProgressMode::kOff);
    if (opt_.on_progress) progress.set_observer(opt_.on_progress);
    const auto before = session_.options().on_progress;
    session_.set_on_progress([&](int64_t done, int64_t total) {
      progress.update(done, total);
      if (before) before(done, total);
    });
    const auto t0 = std::chrono::steady_clock::now();
    try {
      logits = session_.append(held > 0 ? std::vector<int32_t>(prompt.begin() + held, prompt.end())
                                        : prompt);
    } catch (...) {
      session_.set_on_progress(before);
      throw;
    }
    res.prefill_s = seconds_since(t0);
    session_.set_on_progress(before);
    progress.finish();
  }
  if (on_prefilled) on_prefilled();

  // The decoder sees the prompt first, so the continuation keeps the spaces it has after it
  // (SentencePiece drops the leading space of a sequence's first piece only).
  StreamDecoder stream(tok);
  for (int32_t id : prompt) stream.push(id);
  std::vector<int32_t> history = prompt;
  auto emit = [&](const std::string& text) {
    if (!text.empty() && on_text) on_text(text);
  };
  const auto t0 = std::chrono::steady_clock::now();
  int generated = 0;
  while (generated < opt_.n_predict) {
    const int32_t next = sampler.sample(logits.data(), vocab, history);
    ++generated;
    history.push_back(next);
    res.tokens.push_back(next);
    if (!opt_.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      res.stop = StopReason::kEndOfSequence;
      break;
    }
    emit(stream.push(next));
    if (generated == opt_.n_predict) break;
    if (!session_.keeps_going() && session_.n_past() + 1 > session_.context()) {
      res.stop = StopReason::kContextFull;
      break;
    }
    logits = session_.append({next});
  }
  res.decode_s = seconds_since(t0);
  emit(stream.flush());
  res.decode_steps = std::max(0, generated - 1);
  return res;
}

}  // namespace longctx
