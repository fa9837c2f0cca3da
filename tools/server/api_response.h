// The JSON the OpenAI-compatible endpoints answer with: completion and chat completion objects,
// their streaming chunks as server-sent events, logprobs, usage, errors, and the Prometheus text
// of /metrics. Pure functions of their inputs, unit-tested apart from the server.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "api_request.h"
#include "longctx/scheduler.h"

namespace longctx::server {

using nlohmann::json;

// JSON text, invalid UTF-8 (a token that is part of a character) replaced by U+FFFD rather than
// thrown on.
std::string dump(const json& j);

// {"error": {"message", "type", "param", "code"}}; param and code null when empty.
json error_json(const std::string& message, const std::string& type, const std::string& param = {},
                const std::string& code = {});
json error_json(const ApiError& e);
// The error type OpenAI uses for an HTTP status (invalid_request_error, authentication_error, ...).
const char* error_type_for_status(int status);

// One server-sent event carrying `j`, and the stream's last line.
std::string sse_data(const json& j);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// "stop" (stop string or end of sequence) or "length"; "error" / "cancelled" otherwise.
const char* api_finish_reason(FinishReason r);

// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {cached_tokens}}.
json usage_json(const Finish& f);

// Logprobs collected event by event, in the completions shape ({tokens, token_logprobs,
// top_logprobs, text_offset}) or the chat shape ({content: [{token, logprob, bytes,
// top_logprobs}]}). `token_text` gives a token's bytes.
class LogprobsBuilder {
 public:
  LogprobsBuilder(bool chat, int top, std::function<std::string(int32_t)> token_text,
                  int64_t text_offset = 0);
  // Adds one generated token; the text its event carried moves text_offset on. An event without
  // a token (token -1: text released at the end) only moves the offset.
  void add(const SchedulerEvent& ev);
  // What was added since the last take() (for a streaming chunk), or everything (non-streaming).
  json take();

 private:
  bool chat_;
  int top_;
  std::function<std::string(int32_t)> token_text_;
  int64_t offset_;
  json tokens_, token_logprobs_, top_logprobs_, text_offset_, content_;
};

struct ResponseIds {
  std::string id;  // cmpl-... / chatcmpl-...
  int64_t created = 0;
  std::string model;
};
// A fresh id with `prefix` ("cmpl-", "chatcmpl-") and the current time.
ResponseIds new_response_ids(const std::string& prefix, const std::string& model);

// Non-streaming objects.
json completion_json(const ResponseIds& ids, const std::string& text, const json& logprobs,
                     const Finish& f);
json chat_completion_json(const ResponseIds& ids, const std::string& text, const json& logprobs,
                          const Finish& f);

// Streaming chunks. finish_reason null while streaming; the usage chunk has no choices.
json completion_chunk(const ResponseIds& ids, const std::string& text, const json& logprobs,
                      const char* finish_reason);
json chat_chunk(const ResponseIds& ids, const json& delta, const json& logprobs,
                const char* finish_reason);
json usage_chunk(const ResponseIds& ids, bool chat, const Finish& f);

// GET /v1/models.
json models_json(const std::string& model, int64_t created);

// Counters the HTTP layer keeps beside the scheduler's.
struct HttpCounters {
  std::map<int, int64_t> responses_by_status;  // every response, by HTTP status
  int64_t dropped_connections = 0;             // closed for the read deadline or overload
};

// Prometheus text exposition (version 0.0.4). `stats` null while the model loads.
std::string metrics_text(const SchedulerStats* stats, const HttpCounters& http, bool loaded,
                         int parallel, int queue_limit);

}  // namespace longctx::server
