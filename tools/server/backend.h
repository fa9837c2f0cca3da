// What the HTTP front end needs from the model side: tokenizing, chat templating and a stream of
// generated tokens per request. EngineBackend (engine_backend.cc) is the real one, an Engine with
// a Scheduler over it (engine_backend.h); tests also route requests through a scripted fake, so
// that the HTTP layer (parsing, JSON shapes, SSE framing, errors, disconnects) is tested without a
// model.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api_request.h"
#include "longctx/scheduler.h"

namespace longctx::server {

// One request's tokens as they come. Consumed by one thread.
class GenerationStream {
 public:
  virtual ~GenerationStream() = default;
  // The next event (true), the end of the request (false: see finish()), or nullopt when nothing
  // came within `timeout`.
  virtual std::optional<bool> next_for(SchedulerEvent& ev, std::chrono::milliseconds timeout) = 0;
  // The client went away: stop generating and free the request's memory. Idempotent.
  virtual void cancel() = 0;
  // Valid once next_for returned false.
  virtual const Finish& finish() const = 0;
};

struct ChatPrompt {
  std::vector<int32_t> ids;
  std::vector<int32_t> stop_tokens;  // end the assistant's turn (CompletionRequest::stop_tokens)
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Prompt text -> token ids, with what the model's tokenizer adds (BOS).
  virtual std::vector<int32_t> tokenize(const std::string& text) const = 0;
  // The chat template applied to `messages` with the assistant's turn opened, tokenized, and
  // the template's end-of-turn token. ApiError (400) naming --chat-template's choices when the
  // model's template is not recognised.
  virtual ChatPrompt chat_prompt(const std::vector<ApiMessage>& messages) const = 0;
  // The bytes of one token's piece (may be part of a UTF-8 character), for logprobs.
  virtual std::string token_text(int32_t id) const = 0;
  // Queues a request. Throws as Scheduler::submit does: Error(kInvalidArg), Error(kOutOfRange)
  // (prompt + max_tokens beyond the context), Error(kBusy) (queue full).
  virtual std::unique_ptr<GenerationStream> submit(CompletionRequest req) = 0;

  virtual SchedulerStats stats() const = 0;
  virtual int64_t context() const = 0;  // tokens one sequence may hold (prompt + generated)
};

}  // namespace longctx::server
