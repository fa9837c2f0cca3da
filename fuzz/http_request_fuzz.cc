// libFuzzer harness for longctx serve's request-body parser (tools/server/api_request.h): any
// bytes either parse into a request that obeys the documented limits or throw ApiError with a
// 400 status and a message; never a crash, a hang, a deep recursion or another exception. Each
// input is fed to both the completions and the chat parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/api_request.h"

using namespace longctx::server;

namespace {

void check(const GenerationParams& g) {
  if (g.max_tokens && *g.max_tokens < 1) __builtin_trap();
  if (!(g.temperature >= 0 && g.temperature <= 2)) __builtin_trap();
  if (!(g.top_p > 0 && g.top_p <= 1)) __builtin_trap();
  if (!(g.min_p >= 0 && g.min_p < 1) || g.top_k < 0) __builtin_trap();
  if (g.stop.size() > size_t(kMaxStopStrings)) __builtin_trap();
  for (const auto& s : g.stop)
    if (s.empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    const CompletionApiRequest r = parse_completion_request(body);
    check(r.gen);
    if (r.prompt_is_ids == r.prompt_ids.empty()) __builtin_trap();  // ids: at least one
    if (r.logprobs && (*r.logprobs < 0 || *r.logprobs > kMaxCompletionLogprobs)) __builtin_trap();
  } catch (const ApiError& e) {
    if (e.status() != 400 || *e.what() == '\0') __builtin_trap();
  }
  try {
    const ChatApiRequest r = parse_chat_request(body);
    check(r.gen);
    if (r.messages.empty()) __builtin_trap();
    if (r.top_logprobs < 0 || r.top_logprobs > kMaxChatTopLogprobs) __builtin_trap();
  } catch (const ApiError& e) {
    if (e.status() != 400 || *e.what() == '\0') __builtin_trap();
  }
  return 0;
}
