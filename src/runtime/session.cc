#include "runtime/session.h"

#include <algorithm>
#include <string>

#include "core/error.h"

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
      kv_(model.kv_shape(opt.kv_dtype, opt.context), &account_),
      act_(model.config(), checked_chunk(opt), &account_),
      logits_(static_cast<size_t>(model.vocab_size())) {}

const std::vector<float>& Session::append(const std::vector<int32_t>& tokens,
                                          std::vector<float>* all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) throw Error(ErrorKind::kInvalidArg, "nothing to run: the token list is empty");
  if (n_past() + n > opt_.context)
    throw Error(ErrorKind::kOutOfRange,
                "context is full: " + std::to_string(n_past()) + " tokens held + " +
                    std::to_string(n) + " new > context " + std::to_string(opt_.context) +
                    "; raise it with -c N or shorten the prompt");
  const int64_t V = model_.vocab_size();
  if (all_logits) all_logits->assign(static_cast<size_t>(n * V), 0.f);
  const int64_t chunk = act_.max_tokens();
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t m = std::min(chunk, n - done);
    if (all_logits) {
      model_.forward(pool_, tokens.data() + done, m, n_past(), kv_, act_,
                     all_logits->data() + done * V, true);
    } else {
      model_.forward(pool_, tokens.data() + done, m, n_past(), kv_, act_, logits_.data(), false);
    }
  }
  if (all_logits) std::copy(all_logits->end() - V, all_logits->end(), logits_.begin());
  return logits_;
}

}  // namespace longctx
