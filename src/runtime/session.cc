#include "runtime/session.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "model/rope_freqs.h"

namespace longctx {

namespace {
int64_t checked_chunk(const SessionOptions& opt) {
  if (opt.context <= 0) throw Error(ErrorKind::kInvalidArg, "context must be positive (-c N)");
  if (opt.prefill_chunk <= 0)
    throw Error(ErrorKind::kInvalidArg, "--prefill-chunk must be a positive number of tokens");
  return std::min(opt.prefill_chunk, opt.context);
}
}  // namespace

Session::Session(const Model& model, ThreadPool& pool, const SessionOptions& opt)
    : model_(model),
      pool_(pool),
      opt_(opt),
      account_(opt.memory_limit),
      kv_(model.kv_shape(opt.kv_k, opt.kv_v, opt.context), &account_),
      act_(model.config(), checked_chunk(opt), &account_),
      logits_(static_cast<size_t>(model.vocab_size())) {
  if (opt_.pipeline)
    remote_ = opt_.pipeline->open(opt_.context, act_.max_tokens(), opt_.kv_k, opt_.kv_v);
}

Session::~Session() {
  if (opt_.pipeline) opt_.pipeline->close(remote_);
}

void Session::restore_state(int64_t n, const std::vector<int64_t>& first,
                            const std::function<void(int, int64_t, uint8_t*)>& fill,
                            const std::vector<float>& pending,
                            const std::vector<int64_t>& pending_from,
                            const std::vector<int32_t>& tokens, int64_t rope_len) {
  if (opt_.pipeline)
    throw Error(ErrorKind::kUnsupported, "a saved state cannot be restored under mpirun");
  if (static_cast<int64_t>(tokens.size()) != n)
    throw Error(ErrorKind::kInvalidArg, "a saved state whose tokens do not match its length");
  kv_.restore(n, first, fill, pending, pending_from);
  history_ = tokens;
  rope_len_ = rope_len;
}

void Session::truncate(int64_t n) {
  kv_.truncate(n);
  if (static_cast<int64_t>(history_.size()) > kv_.n_tokens()) history_.resize(kv_.n_tokens());
  if (opt_.pipeline) opt_.pipeline->truncate(remote_, n);
}

ContextOverflow parse_context_overflow(const std::string& text) {
  ContextOverflow o;
  if (text == "stop") return o;
  if (text == "shift") {
    o.mode = ContextOverflow::kShift;
    return o;
  }
  if (text.rfind("sinks:", 0) == 0) {
    const std::string n = text.substr(6);
    if (!n.empty() && n.size() <= 9 && n.find_first_not_of("0123456789") == std::string::npos) {
      o.mode = ContextOverflow::kSinks;
      o.sinks = std::stoll(n);
      return o;
    }
  }
  throw Error(ErrorKind::kInvalidArg,
              "--context-overflow '" + text +
                  "' is not one of: stop (end at the context), shift (drop the older half, "
                  "keep going), sinks:N (keep the first N tokens and a window), e.g. sinks:4");
}

std::string context_overflow_name(const ContextOverflow& o) {
  switch (o.mode) {
    case ContextOverflow::kStop:
      return "stop";
    case ContextOverflow::kShift:
      return "shift";
    case ContextOverflow::kSinks:
      return "sinks:" + std::to_string(o.sinks);
  }
  return "?";
}

void Session::make_room(int64_t m) {
  const int64_t n = n_past(), ctx = opt_.context;
  if (n + m <= ctx) return;
  const ContextOverflow& o = opt_.overflow;
  const int64_t keep = std::min(n, o.mode == ContextOverflow::kShift ? int64_t{1} : o.sinks);
  if (keep + m > ctx)
    throw Error(ErrorKind::kOutOfRange,
                std::to_string(m) + " tokens at once do not fit a context of " +
                    std::to_string(ctx) + " beside the " + std::to_string(keep) +
                    " kept; use a smaller --prefill-chunk or a larger -c");
  if (opt_.pipeline)
    throw Error(ErrorKind::kUnsupported, "--context-overflow " + context_overflow_name(o) +
                                             " runs in one process, not under mpirun");
  const int64_t need = n + m - ctx;
  // shift: the older half of what is not kept; sinks: an eighth of the context at a time (a
  // window that slides in steps, each step re-rotating the cache once), at least what m needs.
  const int64_t step = o.mode == ContextOverflow::kShift ? (n - keep) / 2 : (ctx - keep) / 8;
  const int64_t drop = std::min(n - keep, std::max(need, step));
  const int64_t rope_len = rope_len_ > 0 ? rope_len_ : n;
  kv_.shift(keep, drop, [&](float* keys, int64_t rows, int) {
    model_.rotate_keys(keys, rows, drop, rope_len);
  });
  history_.erase(history_.begin() + keep, history_.begin() + keep + drop);
  ++shifts_;
  dropped_ += drop;
}

const std::vector<float>& Session::append(const std::vector<int32_t>& tokens,
                                          std::vector<float>* all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) throw Error(ErrorKind::kInvalidArg, "nothing to run: the token list is empty");
  if (!keeps_going() && n_past() + n > opt_.context)
    throw Error(ErrorKind::kOutOfRange,
                "context is full: " + std::to_string(n_past()) + " tokens held + " +
                    std::to_string(n) + " new > context " + std::to_string(opt_.context) +
                    "; raise it with -c N or shorten the prompt");
  const int64_t V = model_.vocab_size();
  if (all_logits) all_logits->assign(static_cast<size_t>(n * V), 0.f);
  // After a truncate or reset the history is longer than what the cache holds.
  if (static_cast<int64_t>(history_.size()) > n_past()) history_.resize(n_past());
  if (n_past() == 0) rope_len_ = 0;
  const RopeScaling& rs = model_.config().rope_scaling;
  // Past the context (--context-overflow) the cache never holds more than the context.
  const int64_t rope_len =
      rope_length(rs, std::min(n_past() + n, opt_.context), opt_.planned_tokens);
  if (rope_needs_recompute(rs, rope_len_, rope_len)) {
    // As transformers does for Phi-3 (prepare_inputs_for_generation): the cached keys were
    // rotated with the short factors; rerun everything with the long ones, and say so.
    if (opt_.on_notice)
      opt_.on_notice("the sequence grows past original_max_position_embeddings (" +
                     std::to_string(rs.original_max_position_embeddings) +
                     "): LongRoPE switches from short to long factors, recomputing the " +
                     std::to_string(n_past()) +
                     " cached tokens; give the total length up front (-n) to avoid this");
    const std::vector<int32_t> held = history_;
    truncate(0);
    history_.clear();
    run(held.data(), static_cast<int64_t>(held.size()), rope_len, nullptr, false);
    ++recomputes_;
  }
  run(tokens.data(), n, rope_len, all_logits ? all_logits->data() : nullptr, true);
  if (all_logits) std::copy(all_logits->end() - V, all_logits->end(), logits_.begin());
  return logits_;
}

void Session::run(const int32_t* tokens, int64_t n, int64_t rope_len, float* all_logits,
                  bool report) {
  const int64_t V = model_.vocab_size();
  const int64_t chunk = act_.max_tokens();
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t m = std::min(chunk, n - done);
    if (keeps_going()) make_room(m);
    if (opt_.pipeline) {
      // Rank 0's layers here, the rest down the pipeline; the logits come back from the last rank
      // (waited for once, after the last chunk: the stages overlap on consecutive chunks).
      const int64_t pos0 = n_past();
      model_.forward(pool_, tokens + done, m, pos0, kv_, act_, nullptr, false, rope_len, nullptr);
      const bool last = done + m == n;
      const auto wanted = all_logits ? dist::LogitsWanted::kAll
                                     : (last ? dist::LogitsWanted::kLast : dist::LogitsWanted::kNone);
      opt_.pipeline->forward(remote_, act_.x.data(), m, pos0, rope_len, wanted,
                             all_logits ? all_logits + done * V : logits_.data());
      if (last) opt_.pipeline->wait();
    } else if (all_logits) {
      model_.forward(pool_, tokens + done, m, n_past(), kv_, act_, all_logits + done * V, true,
                     rope_len, opt_.hooks);
    } else {
      model_.forward(pool_, tokens + done, m, n_past(), kv_, act_, logits_.data(), false,
                     rope_len, opt_.hooks);
    }
    history_.insert(history_.end(), tokens + done, tokens + done + m);
    if (report && opt_.on_progress) opt_.on_progress(done + m, n);
  }
  rope_len_ = rope_len;
}

}  // namespace longctx
