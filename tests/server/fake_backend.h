// A scripted Backend for the HTTP tests: bytes are tokens (id = byte + 3, BOS 1), generated
// token i is the letter 'a' + i % 26 with log-probability -(i + 1) / 8, one every `token_delay`,
// so that the HTTP layer is tested without a model and every expected value is known up front.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"
#include "server/backend.h"

namespace longctx::test {

struct FakeScript {
  int64_t context = 64;
  std::chrono::milliseconds token_delay{0};
  bool busy = false;             // submit throws Error(kBusy)
  bool no_template = false;      // chat_prompt refuses as an unrecognised template does
  bool hold_back_first = false;  // the first token's text comes with the second (as a split
                                 // UTF-8 character would)
  std::string tail_text;         // released at the end in an event without a token (token -1)
};

class FakeStream : public server::GenerationStream {
 public:
  FakeStream(CompletionRequest req, std::chrono::milliseconds delay, std::atomic<int>* cancels,
             bool hold_back_first, std::string tail)
      : req_(std::move(req)),
        delay_(delay),
        cancels_(cancels),
        hold_back_first_(hold_back_first),
        tail_(std::move(tail)),
        next_at_(std::chrono::steady_clock::now() + delay) {
    finish_.prompt_tokens = int64_t(req_.prompt.size());
  }

  std::optional<bool> next_for(SchedulerEvent& ev, std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lk(mu_);
    if (closed_) return false;
    const auto until = std::chrono::steady_clock::now() + timeout;
    cv_.wait_until(lk, std::min(until, next_at_), [&] { return cancelled_; });
    if (!cancelled_ && std::chrono::steady_clock::now() < next_at_) return std::nullopt;
    if (cancelled_) return close(FinishReason::kCancelled);
    if (produced_ >= req_.max_tokens) {
      if (tail_.empty()) return close(FinishReason::kLength);
      ev = {};
      ev.text = std::move(tail_);
      tail_.clear();
      return true;
    }
    const int i = produced_++;
    ev = {};
    ev.token = 3 + ('a' + i % 26);
    const std::string letter(1, char('a' + i % 26));
    if (hold_back_first_ && i == 0) {
      held_ = letter;
    } else {
      ev.text = held_ + letter;
      held_.clear();
    }
    ev.logprob = -float(i + 1) / 8;
    for (int k = 0; k < req_.logprobs; ++k)
      ev.top.push_back({3 + ('a' + (i + k) % 26), ev.logprob - float(k)});
    finish_.completion_tokens = produced_;
    next_at_ = std::chrono::steady_clock::now() + delay_;
    return true;
  }

  void cancel() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (cancelled_) return;
      cancelled_ = true;
    }
    ++*cancels_;
    cv_.notify_all();
  }

  const Finish& finish() const override { return finish_; }

 private:
  bool close(FinishReason r) {
    closed_ = true;
    finish_.reason = r;
    return false;
  }

  CompletionRequest req_;
  std::chrono::milliseconds delay_;
  std::atomic<int>* cancels_;
  bool hold_back_first_;
  std::string tail_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::steady_clock::time_point next_at_;
  bool cancelled_ = false, closed_ = false;
  int produced_ = 0;
  std::string held_;
  Finish finish_;
};

class FakeBackend : public server::Backend {
 public:
  explicit FakeBackend(FakeScript s = {}) : s_(s) {}

  std::vector<int32_t> tokenize(const std::string& text) const override {
    std::vector<int32_t> ids{1};
    for (unsigned char c : text) ids.push_back(int32_t(c) + 3);
    return ids;
  }
  server::ChatPrompt chat_prompt(const std::vector<server::ApiMessage>& ms) const override {
    if (s_.no_template)
      throw server::ApiError(400,
                             "the model's chat template is not recognised; start the server "
                             "with --chat-template NAME, one of: chatml, llama2");
    std::string text;
    for (const auto& m : ms) text += m.role + ": " + m.content + "\n";
    last_chat_prompt = text;
    return {tokenize(text + "assistant:"), {2}};
  }
  std::string token_text(int32_t id) const override {
    return id >= 3 ? std::string(1, char(id - 3)) : "<s>";
  }
  std::unique_ptr<server::GenerationStream> submit(CompletionRequest req) override {
    last_request = req;
    ++submitted;
    if (s_.busy) throw Error(ErrorKind::kBusy, "the queue is full (1 waiting); retry later");
    const int64_t need = int64_t(req.prompt.size()) + req.max_tokens;
    if (need > s_.context)
      throw Error(ErrorKind::kOutOfRange,
                  "the prompt has " + std::to_string(req.prompt.size()) +
                      " tokens and max_tokens " + std::to_string(req.max_tokens) +
                      " but the context is " + std::to_string(s_.context) + "; max_tokens " +
                      std::to_string(s_.context - int64_t(req.prompt.size())) + " fits");
    return std::make_unique<FakeStream>(std::move(req), s_.token_delay, &cancels,
                                        s_.hold_back_first, s_.tail_text);
  }
  SchedulerStats stats() const override {
    SchedulerStats st;
    st.requests_ok = 7;
    st.kv_blocks_total = 10;
    st.kv_blocks_used = 3;
    st.kv_blocks_cached = 2;
    st.context = s_.context;
    return st;
  }
  int64_t context() const override { return s_.context; }

  FakeScript s_;
  std::atomic<int> cancels{0};
  std::atomic<int> submitted{0};
  CompletionRequest last_request;  // read after the response arrived
  mutable std::string last_chat_prompt;
};

}  // namespace longctx::test
