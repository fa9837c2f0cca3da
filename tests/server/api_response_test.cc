// The response builders: OpenAI's object shapes, SSE framing, logprobs, errors, metrics.
#include "server/api_response.h"

#include <gtest/gtest.h>

namespace longctx::server {
namespace {

Finish finish(FinishReason r, int64_t prompt, int64_t completion, int64_t cached = 0) {
  Finish f;
  f.reason = r;
  f.prompt_tokens = prompt;
  f.completion_tokens = completion;
  f.cached_tokens = cached;
  return f;
}

TEST(ApiResponse, ErrorShape) {
  const json e = error_json(ApiError(400, "'max_tokens' must be an integer", "max_tokens"));
  EXPECT_EQ(e["error"]["message"], "'max_tokens' must be an integer");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_TRUE(e["error"]["code"].is_null());
  EXPECT_TRUE(error_json("m", "server_error")["error"]["param"].is_null());
  EXPECT_STREQ(error_type_for_status(401), "authentication_error");
  EXPECT_STREQ(error_type_for_status(503), "server_busy");
  EXPECT_STREQ(error_type_for_status(500), "server_error");
}

TEST(ApiResponse, FinishReasonsAreOpenAIs) {
  EXPECT_STREQ(api_finish_reason(FinishReason::kLength), "length");
  EXPECT_STREQ(api_finish_reason(FinishReason::kStop), "stop");
  EXPECT_STREQ(api_finish_reason(FinishReason::kEndOfSequence), "stop");
}

TEST(ApiResponse, CompletionObject) {
  const ResponseIds ids{"cmpl-1", 1700000000, "stories260K"};
  const json j =
      completion_json(ids, " there was", nullptr, finish(FinishReason::kLength, 5, 3, 2));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "stories260K");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["text"], " there was");
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST(ApiResponse, ChatObjectAndChunks) {
  const ResponseIds ids{"chatcmpl-1", 1, "m"};
  const json j = chat_completion_json(ids, "Hi!", nullptr, finish(FinishReason::kStop, 9, 2));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi!");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");

  const json c = chat_chunk(ids, {{"content", "Hi"}}, nullptr, nullptr);
  EXPECT_EQ(c["object"], "chat.completion.chunk");
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(c.contains("usage"));
  const json last = chat_chunk(ids, json::object(), nullptr, "length");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  const json u = usage_chunk(ids, true, finish(FinishReason::kStop, 9, 2));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 11);
}

TEST(ApiResponse, SseFraming) {
  EXPECT_EQ(sse_data({{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_STREQ(kSseDone, "data: [DONE]\n\n");
  // A newline inside a value is escaped by JSON, so an event is always one line.
  EXPECT_EQ(sse_data({{"t", "x\ny"}}), "data: {\"t\":\"x\\ny\"}\n\n");
}

TEST(ApiResponse, InvalidUtf8InTokensIsReplacedNotThrown) {
  EXPECT_EQ(dump(json("\xC3")), "\"\xEF\xBF\xBD\"");
}

std::string letter(int32_t id) { return std::string(1, char(id)); }

TEST(ApiResponse, CompletionLogprobs) {
  LogprobsBuilder b(/*chat=*/false, 2, letter, /*text_offset=*/10);
  SchedulerEvent e1{'a', "a", -0.5f, {{'a', -0.5f}, {'b', -1.5f}, {'c', -2.f}}};
  SchedulerEvent e2{'b', "bc", -0.25f, {{'b', -0.25f}, {'b', -0.3f}}};
  b.add(e1);
  b.add(e2);
  const json j = b.take();
  EXPECT_EQ(j["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(j["token_logprobs"], json::array({-0.5, -0.25}));
  // Two top entries at most (logprobs 2); a repeated text keeps the first.
  EXPECT_EQ(j["top_logprobs"][0], json({{"a", -0.5}, {"b", -1.5}}));
  EXPECT_EQ(j["top_logprobs"][1], json({{"b", -0.25}}));
  // Offsets count from the start of the prompt.
  EXPECT_EQ(j["text_offset"], json::array({10, 11}));
  // take() empties it for the next streaming chunk.
  EXPECT_TRUE(b.take()["tokens"].empty());
}

TEST(ApiResponse, ChatLogprobs) {
  LogprobsBuilder b(/*chat=*/true, 1, letter);
  b.add(SchedulerEvent{'h', "h", -0.125f, {{'h', -0.125f}, {'j', -3.f}}});
  const json j = b.take();
  ASSERT_EQ(j["content"].size(), 1u);
  const json& t = j["content"][0];
  EXPECT_EQ(t["token"], "h");
  EXPECT_EQ(t["logprob"], -0.125);
  EXPECT_EQ(t["bytes"], json::array({int('h')}));
  ASSERT_EQ(t["top_logprobs"].size(), 1u);
  EXPECT_EQ(t["top_logprobs"][0]["token"], "h");
}

TEST(ApiResponse, ModelsList) {
  const json j = models_json("stories260K", 5);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "stories260K");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

TEST(ApiResponse, MetricsText) {
  SchedulerStats s;
  s.requests_ok = 3;
  s.rejected_busy = 2;
  s.queued = 1;
  s.running = 4;
  s.kv_blocks_total = 100;
  s.kv_blocks_used = 30;
  s.kv_blocks_cached = 20;
  s.kv_block_bytes = 4096;
  s.budget_bytes = 1 << 20;
  s.planned_bytes = 1 << 19;
  s.generated_tokens = 77;
  HttpCounters http;
  http.responses_by_status[200] = 5;
  http.responses_by_status[400] = 1;
  const std::string t = metrics_text(&s, http, true, 4, 64);
  for (const char* line :
       {"longctx_model_loaded 1\n", "longctx_requests_total{outcome=\"ok\"} 3\n",
        "longctx_requests_total{outcome=\"rejected_busy\"} 2\n", "longctx_queue_length 1\n",
        "longctx_running_sequences 4\n", "longctx_kv_blocks{state=\"used\"} 30\n",
        "longctx_kv_blocks{state=\"cached\"} 20\n", "longctx_kv_blocks{state=\"free\"} 50\n",
        "longctx_kv_block_bytes 4096\n", "longctx_plan_budget_bytes 1048576\n",
        "longctx_plan_total_bytes 524288\n", "longctx_generated_tokens_total 77\n",
        "longctx_http_responses_total{code=\"400\"} 1\n", "# TYPE longctx_requests_total counter\n",
        "# TYPE longctx_queue_length gauge\n"})
    EXPECT_NE(t.find(line), std::string::npos) << line << "\n" << t;
  // While loading there are no scheduler figures.
  const std::string loading = metrics_text(nullptr, http, false, 4, 64);
  EXPECT_NE(loading.find("longctx_model_loaded 0\n"), std::string::npos);
  EXPECT_EQ(loading.find("longctx_requests_total"), std::string::npos);
}

}  // namespace
}  // namespace longctx::server
