// `longctx serve` as a user runs it: plan before listening, /health while loading, signals, and
// the official openai npm package as a real client.
#include <gtest/gtest.h>
#include <httplib.h>

#include <regex>
#include <thread>

#include "integration/cli_util.h"
#include "model/test_util.h"
#include "server/serve_process.h"

namespace longctx {
namespace {

// Waits for GET /health to answer 200; false after `limit`.
bool wait_healthy(int port, std::chrono::seconds limit) {
  httplib::Client c("127.0.0.1", port);
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    const auto r = c.Get("/health");
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(ServeCli, ABudgetTooSmallRefusesBeforeListening) {
  const auto r = test::run_cli("serve -m " + test::quote(test::model_path("stories260K")) +
                               " --mem-budget 64KiB --port 0");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("error:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("available (--mem-budget 64KiB)"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
}

// The single-sequence plan fits, but 64 sequences' buffers (about 4.5 MiB) do not: the serving
// plan refuses, also before listening. The budget is the single-sequence plan's total (which
// includes the HTTP server's resident libraries, so it depends on the machine) + 1 MiB.
TEST(ServeCli, AServingPlanOverTheBudgetRefusesBeforeListening) {
  const std::string args = "serve -m " + test::quote(test::model_path("stories260K")) +
                           " -c 256 --parallel 64 --port 0 --mem-budget ";
  const auto tiny = test::run_cli(args + "64KiB");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(tiny.output, m, std::regex("= ([0-9.]+) MiB; ")))
      << tiny.output;
  const std::string budget = std::to_string(std::stod(m[1]) + 1.0) + "MiB";
  const auto r = test::run_cli(args + budget);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("serving needs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lower -c or --parallel"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
}

TEST(ServeCli, AnUnknownChatTemplateRefusesNamingTheChoices) {
  const auto r = test::run_cli("serve -m " + test::quote(test::model_path("stories260K")) +
                               " --chat-template chatmlx --port 0");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("chatml"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
}

TEST(ServeCli, ServesThenStopsCleanlyOnSigterm) {
  test::ServeProcess p({"-m", test::model_path("stories260K"), "-c", "256", "-t", "2"});
  ASSERT_GT(p.port(), 0) << p.output();
  ASSERT_TRUE(wait_healthy(p.port(), std::chrono::seconds(60))) << p.output();
  httplib::Client c("127.0.0.1", p.port());
  const auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(nlohmann::json::parse(m->body)["data"][0]["id"], "stories260K");
  const auto r = c.Post("/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 8})",
                        "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // A model without a chat template: completions work, chat names the way out.
  const auto chat =
      c.Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})",
             "application/json");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 400);
  EXPECT_NE(chat->body.find("--chat-template"), std::string::npos) << chat->body;
  EXPECT_EQ(p.stop(SIGTERM), 0) << p.output();
  EXPECT_NE(p.output().find("stopping"), std::string::npos) << p.output();
}

TEST(ServeCli, OfficialOpenAINodeClientStreamsChatAndCompletion) {
  if (const std::string missing = test::openai_node_missing(); !missing.empty())
    GTEST_SKIP() << "skipped: " << missing;
  test::ServeProcess p({"-m", test::model_path("stories260K"), "-c", "512", "-t", "2",
                        "--chat-template", "chatml", "--parallel", "2"},
                       {"LONGCTX_API_KEY=node-test-key"});
  ASSERT_GT(p.port(), 0) << p.output();
  ASSERT_TRUE(wait_healthy(p.port(), std::chrono::seconds(60))) << p.output();
  const std::string script = std::string(LONGCTX_SOURCE_DIR) + "/tests/node/openai_client.mjs";
  const std::string cmd = "node " + test::quote(script) +
                          " http://127.0.0.1:" + std::to_string(p.port()) +
                          "/v1 node-test-key stories260K 2>&1";
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = pclose(f);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0) << out << "\n" << p.output();
  EXPECT_NE(out.find("5 passed, 0 failed"), std::string::npos) << out;
  EXPECT_EQ(p.stop(SIGINT), 0) << p.output();
}

}  // namespace
}  // namespace longctx
