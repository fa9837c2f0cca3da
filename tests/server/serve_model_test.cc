// The server over the real engine and scheduler on the trained stories260K checkpoint: greedy
// text as `longctx run` / the Generator gives it, logprobs against the golden logits, the
// scheduler's refusals as HTTP statuses, streaming, and clients that go away.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <future>
#include <thread>

#include "longctx/engine.h"
#include "longctx/generator.h"
#include "model/test_util.h"
#include "server/engine_backend.h"
#include "server/http_test_util.h"
#include "server/server.h"

namespace longctx::server {
namespace {

using nlohmann::json;

EngineOptions stories_options(int64_t ctx) {
  EngineOptions eo;
  eo.model_path = test::model_path("stories260K");
  eo.context = ctx;
  eo.threads = 2;
  eo.kv = KvType::kF32;  // as the golden reference ran
  return eo;
}

class ServeModelTest : public ::testing::Test {
 protected:
  void start(int parallel, int queue, int64_t ctx = 256) {
    ServerOptions o;
    o.port = 0;
    o.model_id = "stories260K";
    o.parallel = parallel;
    o.queue_limit = queue;
    server_ = std::make_unique<HttpServer>(o);
    port_ = server_->start();
    const PlannedRun run = Engine::plan_only(stories_options(ctx));
    SchedulerOptions so;
    so.parallel = parallel;
    so.queue_limit = queue;
    server_->set_backend(
        load_engine_backend(run, so, resolve_chat_template(run.options.model_path, "chatml")));
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  std::string metrics() {
    httplib::Client c("127.0.0.1", port_);
    const auto r = c.Get("/metrics");
    return r ? r->body : std::string();
  }
  // The value of one metric line ("name{labels} value"); -1 when absent.
  int64_t metric(const std::string& name) {
    const std::string m = metrics();
    const size_t p = m.find("\n" + name + " ");
    return p == std::string::npos ? -1 : std::stoll(m.substr(p + name.size() + 2));
  }

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

// What the Generator (and so `longctx run`) continues `prompt` with, greedily.
std::string generator_text(const std::string& prompt, int n) {
  const auto engine = Engine::open(stories_options(256));
  const std::vector<int32_t> ids = engine->tokenizer().encode(prompt, true);
  Session s = engine->new_session(int64_t(ids.size()) + n);
  GenerateOptions go;
  go.n_predict = n;
  go.progress = ProgressMode::kOff;
  std::string text;
  Generator(*engine, s, go).generate(ids, [&](const std::string& t) { text += t; });
  return text;
}

TEST_F(ServeModelTest, GreedyCompletionIsWhatTheGeneratorAndTheGoldenGive) {
  start(2, 4);
  const auto golden = test::read_json(test::model_path("stories260K") + "/golden.json");
  const auto& c = golden["cases"][1];
  const std::string prompt = c["prompt_text"];
  const int n = int(c["greedy_ids"].size());
  const auto r = post("/v1/completions",
                      {{"prompt", prompt}, {"max_tokens", n}, {"temperature", 0}, {"logprobs", 5}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  const std::string text = j["choices"][0]["text"];
  EXPECT_EQ(text, " " + c["greedy_text"].get<std::string>());
  EXPECT_EQ(text, generator_text(prompt, n));
  EXPECT_EQ(j["usage"]["prompt_tokens"], c["prompt_ids"].size());
  EXPECT_EQ(j["usage"]["completion_tokens"], n);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  // Log-probabilities differ as the golden logits do (softmax keeps differences); the golden
  // test holds logits to 1e-4 relative, about 2e-3 here for each of the two.
  const json& lp = j["choices"][0]["logprobs"];
  const auto tok = load_tokenizer(test::model_path("stories260K"));
  for (size_t step = 0; step < 3; ++step) {
    const auto& g = c["steps_top5"][step];
    const json& top = lp["top_logprobs"][step];
    ASSERT_EQ(top.size(), 5u) << top;
    const std::string best = tok->token_bytes(g["top_ids"][0].get<int32_t>());
    EXPECT_EQ(lp["tokens"][step], best);
    for (int k = 1; k < 5; ++k) {
      const std::string t = tok->token_bytes(g["top_ids"][k].get<int32_t>());
      ASSERT_TRUE(top.contains(t)) << t << " in " << top;
      const double want = g["top_logits"][k].get<double>() - g["top_logits"][0].get<double>();
      EXPECT_NEAR(top[t].get<double>() - top[best].get<double>(), want, 5e-3) << step << " " << t;
    }
    EXPECT_NEAR(lp["token_logprobs"][step].get<double>(), top[best].get<double>(), 1e-6);
  }
}

TEST_F(ServeModelTest, StreamedTextEqualsTheNonStreamedText) {
  start(2, 4);
  const json req = {{"prompt", "Tom and his dog went"}, {"max_tokens", 30}, {"temperature", 0}};
  const auto once = post("/v1/completions", req);
  ASSERT_TRUE(once);
  ASSERT_EQ(once->status, 200) << once->body;
  json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  const auto s = post("/v1/completions", sreq);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, 200);
  std::vector<json> events;
  bool done = false;
  ASSERT_TRUE(test::parse_sse(s->body, events, done)) << s->body;
  ASSERT_TRUE(done);
  std::string text;
  for (const json& e : events)
    if (!e["choices"].empty()) text += e["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, json::parse(once->body)["choices"][0]["text"]);
  EXPECT_EQ(events.back()["usage"], json::parse(once->body)["usage"]);
}

TEST_F(ServeModelTest, ChatCompletionWithATemplate) {
  start(2, 4);
  const auto r = post("/v1/chat/completions",
                      {{"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
                       {"max_tokens", 8},
                       {"temperature", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 5);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 8);
}

TEST_F(ServeModelTest, PromptAndMaxTokensBeyondTheContextIs400WithTheNumbers) {
  start(1, 1, /*ctx=*/128);
  const auto r = post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 500}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const json e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  const std::string m = e["message"];
  // "Once upon a time" is BOS + 4 tokens; 128 is the context; 123 is what fits.
  for (const char* number : {"5", "128", "123"})
    EXPECT_NE(m.find(number), std::string::npos) << number << " in: " << m;
  const auto ok = post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 4}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServeModelTest, FullQueueIs503WithRetryAfter) {
  start(/*parallel=*/1, /*queue=*/1, /*ctx=*/512);
  // Long generations at once: one runs, one waits, the rest find the queue full.
  constexpr int kClients = 16;
  std::vector<std::future<std::pair<int, std::string>>> got;
  for (int i = 0; i < kClients; ++i)
    got.push_back(std::async(std::launch::async, [this] {
      const auto r =
          post("/v1/completions",
               {{"prompt", "Once"}, {"max_tokens", 480}, {"ignore_eos", true}, {"temperature", 0}});
      if (!r) return std::make_pair(-1, std::string());
      return std::make_pair(r->status, r->get_header_value("Retry-After"));
    }));
  int ok = 0, busy = 0;
  for (auto& f : got) {
    const auto [status, retry] = f.get();
    if (status == 200) ++ok;
    if (status == 503) {
      ++busy;
      EXPECT_EQ(retry, "1");
    }
    EXPECT_TRUE(status == 200 || status == 503) << status;
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(metric("longctx_requests_total{outcome=\"rejected_busy\"}"), busy);
  const auto r = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServeModelTest, ClientGoneMidStreamFreesItsBlocks) {
  start(1, 2, /*ctx=*/512);
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(
      fd,
      test::http_post(
          "/v1/completions",
          json({{"prompt", "Once"}, {"max_tokens", 500}, {"ignore_eos", true}, {"stream", true}})
              .dump())));
  const std::string first = test::read_until(fd, "\"text\"", std::chrono::seconds(10));
  ASSERT_NE(first.find("\"text\""), std::string::npos) << first;
  close(fd);
  // Nothing runs and no block is held by a sequence once the scheduler has seen the cancel.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until &&
         (metric("longctx_running_sequences") != 0 ||
          metric("longctx_kv_blocks{state=\"used\"}") != 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(metric("longctx_running_sequences"), 0) << metrics();
  EXPECT_EQ(metric("longctx_kv_blocks{state=\"used\"}"), 0) << metrics();
  const auto r = post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace longctx::server
