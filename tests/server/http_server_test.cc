// The HTTP server end to end over a scripted backend: routing, JSON and SSE shapes, errors, auth,
// limits; after each bad input the server must still serve.
#include "server/http_fixture.h"

namespace longctx::server {
namespace {

TEST_F(HttpServerTest, HealthSaysLoadingUntilTheBackendIsSet) {
  start(nullptr);
  auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_EQ(body_of(h)["status"], "loading");
  const auto r = post("/v1/completions", R"({"prompt": "hi"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(r->has_header("Retry-After"));
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("loading"), std::string::npos);
  // The model list needs no model.
  const auto m = client().Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(body_of(m)["data"][0]["id"], "fake-model");

  server_->set_backend(std::make_shared<FakeBackend>());
  h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(body_of(h)["status"], "ok");
}

TEST_F(HttpServerTest, LoadErrorShowsOnHealth) {
  start(nullptr);
  server_->set_load_error("weights truncated");
  const auto h = client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 500);
  EXPECT_EQ(body_of(h)["message"], "weights truncated");
}

TEST_F(HttpServerTest, CompletionShapeAndParameters) {
  start(std::make_shared<FakeBackend>());
  const auto r = post("/v1/completions",
                      R"({"model": "whatever", "prompt": "hey", "max_tokens": 5, "temperature": 0,
                          "top_k": 4, "seed": 9, "stop": ["zz"]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json j = body_of(r);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(j["model"], "fake-model");
  EXPECT_EQ(j["choices"][0]["text"], "abcde");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);  // BOS + 3 bytes
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 9);
  // What reached the backend.
  const CompletionRequest& q = backend_->last_request;
  EXPECT_EQ(q.prompt, (std::vector<int32_t>{1, 'h' + 3, 'e' + 3, 'y' + 3}));
  EXPECT_EQ(q.max_tokens, 5);
  EXPECT_EQ(q.sampler.temperature, 0.f);
  EXPECT_EQ(q.sampler.top_k, 4);
  EXPECT_EQ(q.sampler.seed, 9u);
  EXPECT_EQ(q.stop, std::vector<std::string>{"zz"});
  EXPECT_EQ(q.logprobs, -1);  // not asked for

  // Defaults: 16 tokens; token-id prompts pass through.
  const auto d = post("/v1/completions", R"({"prompt": [1, 2, 3]})");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->status, 200) << d->body;
  EXPECT_EQ(backend_->last_request.max_tokens, 16);
  EXPECT_EQ(backend_->last_request.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(body_of(d)["usage"]["completion_tokens"], 16);
}

TEST_F(HttpServerTest, CompletionLogprobs) {
  start(std::make_shared<FakeBackend>());
  const auto r = post("/v1/completions", R"({"prompt": "hey", "max_tokens": 2, "logprobs": 2})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json lp = body_of(r)["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(lp["token_logprobs"], json::array({-0.125, -0.25}));
  EXPECT_EQ(lp["top_logprobs"][0], json({{"a", -0.125}, {"b", -1.125}}));
  EXPECT_EQ(lp["text_offset"], json::array({3, 4}));
  EXPECT_EQ(backend_->last_request.logprobs, 2);
  // logprobs 0: each token's own log-probability, no alternatives.
  const auto z = post("/v1/completions", R"({"prompt": "hey", "max_tokens": 1, "logprobs": 0})");
  ASSERT_TRUE(z);
  EXPECT_EQ(body_of(z)["choices"][0]["logprobs"]["token_logprobs"], json::array({-0.125}));
  EXPECT_EQ(body_of(z)["choices"][0]["logprobs"]["top_logprobs"][0], json::object());
}

TEST_F(HttpServerTest, TextReleasedAtTheEndWithoutATokenIsSentButHasNoLogprobs) {
  FakeScript s;
  s.tail_text = "!";
  start(std::make_shared<FakeBackend>(s));
  auto r = post("/v1/completions", R"({"prompt": "hey", "max_tokens": 2, "logprobs": 1})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json c = body_of(r)["choices"][0];
  EXPECT_EQ(c["text"], "ab!");
  EXPECT_EQ(c["logprobs"]["tokens"], json::array({"a", "b"}));
  r = post("/v1/completions", R"({"prompt": "hey", "max_tokens": 2, "stream": true})");
  ASSERT_TRUE(r);
  std::vector<json> events;
  bool done = false;
  ASSERT_TRUE(test::parse_sse(r->body, events, done)) << r->body;
  ASSERT_EQ(events.size(), 4u) << r->body;
  EXPECT_EQ(events[2]["choices"][0]["text"], "!");
  EXPECT_EQ(events[3]["choices"][0]["finish_reason"], "length");
}

TEST_F(HttpServerTest, ChatShapeUsesTheTemplateAndDefaultsToTheRestOfTheContext) {
  start(std::make_shared<FakeBackend>());
  const auto r = post("/v1/chat/completions",
                      R"({"messages": [{"role": "system", "content": "S"},
                                       {"role": "user", "content": "Hi"}]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = body_of(r);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(backend_->last_chat_prompt, "system: S\nuser: Hi\n");
  EXPECT_EQ(backend_->last_request.stop_tokens, std::vector<int32_t>{2});  // the end of turn
  // "system: S\nuser: Hi\nassistant:" is 29 bytes + BOS; the fake's context is 64.
  EXPECT_EQ(backend_->last_request.max_tokens, 64 - 30);
  EXPECT_EQ(j["usage"]["completion_tokens"], 34);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST_F(HttpServerTest, ChatWithoutARecognisedTemplateNamesTheChoices) {
  FakeScript s;
  s.no_template = true;
  start(std::make_shared<FakeBackend>(s));
  const auto r =
      post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("--chat-template"),
            std::string::npos);
  expect_serving();
}

TEST_F(HttpServerTest, StreamingCompletionIsServerSentEvents) {
  FakeScript s;
  s.hold_back_first = true;  // a token without text is not sent on its own
  start(std::make_shared<FakeBackend>(s));
  const auto r = post("/v1/completions",
                      R"({"prompt": "hey", "max_tokens": 4, "stream": true,
                          "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  std::vector<json> events;
  bool done = false;
  ASSERT_TRUE(test::parse_sse(r->body, events, done)) << r->body;
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 5u) << r->body;  // "ab", "c", "d", the finish, the usage
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "text_completion");
    EXPECT_TRUE(events[i]["choices"][0]["finish_reason"].is_null());
    text += events[i]["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(events[0]["choices"][0]["text"], "ab");
  EXPECT_EQ(text, "abcd");
  EXPECT_EQ(events[3]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(events[4]["choices"].empty());
  EXPECT_EQ(events[4]["usage"]["completion_tokens"], 4);
  // Every chunk of one response shares its id.
  for (const json& e : events) EXPECT_EQ(e["id"], events[0]["id"]);
}

TEST_F(HttpServerTest, StreamingChatSendsTheRoleFirstAndNoUsageUnlessAsked) {
  start(std::make_shared<FakeBackend>());
  const auto r = post("/v1/chat/completions",
                      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
                          "stream": true, "logprobs": true, "top_logprobs": 1})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  std::vector<json> events;
  bool done = false;
  ASSERT_TRUE(test::parse_sse(r->body, events, done)) << r->body;
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 5u) << r->body;  // role, 3 tokens, finish
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (int i = 1; i <= 3; ++i) {
    text += events[i]["choices"][0]["delta"]["content"].get<std::string>();
    ASSERT_EQ(events[i]["choices"][0]["logprobs"]["content"].size(), 1u);
    EXPECT_EQ(events[i]["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 1u);
  }
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(events[4]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(events[4]["choices"][0]["delta"].empty());
  for (const json& e : events) EXPECT_FALSE(e.contains("usage"));
}

TEST_F(HttpServerTest, MalformedJsonWrongTypesInvalidUtf8AndUnknownFields) {
  start(std::make_shared<FakeBackend>());
  auto r = post("/v1/completions", R"({"prompt": "hi",)");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"]["type"], "invalid_request_error");
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("not valid JSON"),
            std::string::npos);
  expect_serving();

  r = post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}],
                                       "temperature": "warm"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(body_of(r)["error"]["param"], "temperature");
  expect_serving();

  r = post("/v1/completions", std::string("{\"prompt\": \"caf\xC3\x28\"}"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("invalid UTF-8"),
            std::string::npos);
  expect_serving();

  r = post("/v1/completions", R"({"prompt": "hi", "max_tokens": 1, "frobnicate": [1, {}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(backend_->submitted, 4);  // the refused ones never reached the backend
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413AndTheServerGoesOn) {
  ServerOptions o;
  o.max_body_bytes = 4096;
  start(std::make_shared<FakeBackend>(), o);
  const std::string big = R"({"prompt": ")" + std::string(5000, 'x') + R"("})";
  const auto r = post("/v1/completions", big);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(body_of(r)["error"]["message"].get<std::string>().find("limit"), std::string::npos);
  expect_serving();

  // A chunked body is counted as it arrives.
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  std::string chunked =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: application/json\r\n\r\n";
  for (int i = 0; i < 5; ++i) chunked += "3e8\r\n" + std::string(1000, ' ') + "\r\n";
  chunked += "0\r\n\r\n";
  ASSERT_TRUE(test::send_all(fd, chunked));
  const std::string got = test::read_until(fd, "}}", std::chrono::seconds(5));
  close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
  expect_serving();

  // A small chunked body is read whole.
  const int fd2 = test::connect_local(port_);
  ASSERT_GE(fd2, 0);
  const std::string body = R"({"prompt": "hi", "max_tokens": 3})";
  char len[16];
  std::snprintf(len, sizeof len, "%zx", body.size());
  ASSERT_TRUE(test::send_all(
      fd2, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               std::string(len) + "\r\n" + body + "\r\n0\r\n\r\n"));
  const std::string ok = test::read_until(fd2, "}}", std::chrono::seconds(5));
  close(fd2);
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("\"text\":\"abc\""), std::string::npos) << ok;
}

TEST_F(HttpServerTest, ContextAndQueueRefusalsMapToStatuses) {
  start(std::make_shared<FakeBackend>());
  // The fake's context is 64: 4 prompt tokens + 100 do not fit.
  const auto r = post("/v1/completions", R"({"prompt": "hey", "max_tokens": 100})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const json e = body_of(r)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  // The scheduler's message, numbers included, reaches the client.
  EXPECT_NE(e["message"].get<std::string>().find("the context is 64; max_tokens 60 fits"),
            std::string::npos)
      << e;
  expect_serving();

  FakeScript busy;
  busy.busy = true;
  server_->set_backend(std::make_shared<FakeBackend>(busy));
  const auto b = post("/v1/completions", R"({"prompt": "hey"})");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 503);
  EXPECT_EQ(b->get_header_value("Retry-After"), "1");
  EXPECT_EQ(body_of(b)["error"]["code"], "server_busy");
}

TEST_F(HttpServerTest, ApiKeyGuardsEverythingButHealth) {
  ServerOptions o;
  o.api_key = "sekret";
  start(std::make_shared<FakeBackend>(), o);
  const std::string body = R"({"prompt": "hi", "max_tokens": 1})";
  auto r = post("/v1/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(body_of(r)["error"]["type"], "authentication_error");
  r = post("/v1/completions", body, {{"Authorization", "Bearer sekreT"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = post("/v1/completions", body, {{"Authorization", "Bearer sekret"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  auto g = client().Get("/v1/models");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 401);
  g = client().Get("/metrics");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 401);
  g = client().Get("/health");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 200);
  EXPECT_EQ(backend_->submitted, 1);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  start(std::make_shared<FakeBackend>());
  auto r = client().Get("/v1/engines");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(body_of(r)["error"]["type"], "not_found_error");
  r = post("/nope", "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = client().Get("/v1/completions");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  r = post("/health", "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET");
  expect_serving();
}

TEST_F(HttpServerTest, MetricsCountResponsesAndShowTheScheduler) {
  start(std::make_shared<FakeBackend>());
  expect_serving();
  ASSERT_TRUE(post("/v1/completions", "{"));
  const auto m = client().Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  for (const char* line : {"longctx_http_responses_total{code=\"200\"} 1\n",
                           "longctx_http_responses_total{code=\"400\"} 1\n",
                           "longctx_requests_total{outcome=\"ok\"} 7\n",
                           "longctx_kv_blocks{state=\"free\"} 5\n", "longctx_model_loaded 1\n"})
    EXPECT_NE(m->body.find(line), std::string::npos) << line << m->body;
}

}  // namespace
}  // namespace longctx::server
