// The request bodies of the OpenAI-compatible endpoints, parsed and validated by pure functions
// (JSON text -> request struct, or ApiError naming the field), so that they are unit-tested and
// fuzzed apart from the HTTP server and the model. Unknown fields are ignored, as OpenAI clients
// send fields of newer API versions; fields we know but cannot honour (n > 1, echo, penalties)
// are refused rather than silently dropped, since they would change the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace longctx::server {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {},
           std::string type = "invalid_request_error", std::string code = {})
      : Error(ErrorKind::kInvalidArg, message),
        status_(status),
        param_(std::move(param)),
        type_(std::move(type)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending field; empty: none
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, type_, code_;
};

// What both endpoints share: sampling, limits, stop strings, streaming.
struct GenerationParams {
  std::optional<int> max_tokens;  // unset: the endpoint's default
  float temperature = 1.f;        // OpenAI's default; 0: greedy
  float top_p = 1.f;
  int top_k = 0;                 // extension (llama.cpp, vLLM); 0: off
  float min_p = 0.f;             // extension; 0: off
  float repeat_penalty = 1.f;    // extension; 1: off
  std::optional<uint64_t> seed;  // unset: a fresh random seed per request
  std::vector<std::string> stop;
  bool ignore_eos = false;  // extension
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct CompletionApiRequest {
  GenerationParams gen;
  // Exactly one of these: the prompt as text, or as token ids.
  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  std::optional<int> logprobs;  // 0..5: tokens, token_logprobs, top_logprobs, text_offset
};

struct ApiMessage {
  std::string role;  // system, user, assistant (developer is read as system)
  std::string content;
};

struct ChatApiRequest {
  GenerationParams gen;
  std::vector<ApiMessage> messages;
  bool logprobs = false;
  int top_logprobs = 0;  // 0..20, with logprobs
};

inline constexpr int kMaxStopStrings = 4;
inline constexpr int kMaxCompletionLogprobs = 5;
inline constexpr int kMaxChatTopLogprobs = 20;

// Throw ApiError(400) naming the field for malformed JSON, invalid UTF-8, wrong types, values out
// of range and unsupported settings.
CompletionApiRequest parse_completion_request(std::string_view body);
ChatApiRequest parse_chat_request(std::string_view body);

}  // namespace longctx::server
