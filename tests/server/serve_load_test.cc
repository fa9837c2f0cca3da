// Load on loopback, bounded in count and time: 32 concurrent streaming clients against
// `longctx serve --parallel 8` on a random SmolLM2-135M-shaped checkpoint. Every client gets the
// text it gets alone (greedy), nothing fails, the requests are counted, every KV block comes back,
// and the server's peak RSS stays within its serving plan.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http_test_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"
#include "serve_process.h"

namespace longctx {
namespace {

using nlohmann::json;

// VmHWM of process `pid` in bytes (0 when unreadable).
size_t peak_rss_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// The value of a metric line "NAME VALUE" (the first one whose name starts with `name`).
double metric(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') {
      const size_t sp = text.find(' ', pos), nl = text.find('\n', pos);
      return std::stod(text.substr(sp + 1, nl - sp - 1));
    }
    ++pos;
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

json body_for(int prompt, bool stream) {
  std::vector<int> ids{1};  // BOS, then a prompt of its own per index
  for (int i = 0; i < 6 + prompt * 3; ++i) ids.push_back(100 + (prompt * 7919 + i * 104729) % 30000);
  return json{{"prompt", ids}, {"max_tokens", 12}, {"temperature", 0}, {"stream", stream}};
}

TEST(ServeLoad, ThirtyTwoStreamingClientsAgainstParallelEight) {
  RandomCheckpointOptions ro;
  ro.preset = "smollm2-135m";
  const std::string dir = test::random_checkpoint_dir("serve-load-smollm2", ro);
  test::ServeProcess server({"-m", dir, "--parallel", "8", "--queue", "64", "-c", "512",
                             "--mem-budget", "3GiB", "-t", "2"});
  ASSERT_GT(server.port(), 0) << server.output();
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(120, 0);
  for (int i = 0; i < 600; ++i) {  // the weights load after the port opens
    const auto h = c.Get("/health");
    if (h && h->status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // Each of 8 prompts alone, one at a time.
  constexpr int kPrompts = 8, kClients = 32;
  std::vector<std::string> alone(kPrompts);
  for (int p = 0; p < kPrompts; ++p) {
    const auto r = c.Post("/v1/completions", body_for(p, false).dump(), "application/json");
    ASSERT_TRUE(r) << "request failed";
    ASSERT_EQ(r->status, 200) << r->body;
    alone[p] = json::parse(r->body)["choices"][0]["text"].get<std::string>();
  }

  // 32 streaming clients at once: 8 run, 24 wait in the queue.
  std::vector<std::string> got(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<bool> done(kClients, false);
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k)
    clients.emplace_back([&, k] {
      httplib::Client cc("127.0.0.1", server.port());
      cc.set_read_timeout(120, 0);
      const auto r =
          cc.Post("/v1/completions", body_for(k % kPrompts, true).dump(), "application/json");
      if (!r) return;
      status[k] = r->status;
      std::vector<json> events;
      bool fin = false;
      if (!test::parse_sse(r->body, events, fin)) return;
      done[k] = fin;
      for (const json& e : events) got[k] += e["choices"][0]["text"].get<std::string>();
    });
  for (auto& t : clients) t.join();
  for (int k = 0; k < kClients; ++k) {
    EXPECT_EQ(status[k], 200) << "client " << k;
    EXPECT_TRUE(done[k]) << "client " << k << ": no [DONE]";
    EXPECT_EQ(got[k], alone[k % kPrompts]) << "client " << k;
  }

  const auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(metric(m->body, "longctx_requests_total{outcome=\"ok\"}"), kPrompts + kClients);
  EXPECT_EQ(metric(m->body, "longctx_kv_blocks{state=\"used\"}"), 0);
  EXPECT_EQ(metric(m->body, "longctx_running_sequences"), 0);
  const double plan = metric(m->body, "longctx_plan_total_bytes");
  const size_t peak = peak_rss_of(server.pid());
  ASSERT_GT(peak, 0u);
  EXPECT_LE(static_cast<double>(peak), plan) << "peak RSS " << peak << " over the plan " << plan;
  ::testing::Test::RecordProperty("peak_rss", std::to_string(peak));
  ::testing::Test::RecordProperty("plan_total", std::to_string(static_cast<int64_t>(plan)));
  EXPECT_EQ(server.stop(), 0) << server.output();
}

}  // namespace
}  // namespace longctx
