// `longctx plan` and the context policy of `longctx run`, end to end.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

#ifdef LONGCTX_SANITIZE
#define SKIP_UNDER_SANITIZER() GTEST_SKIP() << "resident memory is meaningless under ASan"
#else
#define SKIP_UNDER_SANITIZER() (void)0
#endif

// SmolLM2-135M's shape cut to 2 layers (51 MB of bf16 weights), with a 131072-token maximum.
const std::string& smol() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.preset = "smollm2-135m";
    o.layers = 2;
    o.max_position_embeddings = 131072;
    return test::random_checkpoint_dir("plan_smol", o);
  }();
  return dir;
}

// Head-heavy and compute-light: 4 KiB of f32 KV per token, tiny weights.
const std::string& heads() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = test::kHeadHeavyConfig;
    return test::random_checkpoint_dir("plan_heads", o);
  }();
  return dir;
}

std::string prompt_of(int tokens) {
  const std::string path =
      test::scratch_dir("plan_prompt_" + std::to_string(tokens)) + "/prompt.txt";
  std::ofstream f(path);
  f << "a";
  for (int i = 2; i < tokens; ++i) f << " b";  // BOS + "a" + (tokens - 2) x " b"
  return path;
}

TEST(PlanCli, Llama3BatchKvBytesExactly) {
  const auto r = test::run_cli("plan --preset llama-3-8b -c 8192 --batch 32 --mem-budget 64GiB");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("34359738368"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("131072"), std::string::npos) << r.output;
}

TEST(PlanCli, Phi35FullContextIsRefusedWithWhatFits) {
  const auto r = test::run_cli("plan --preset phi-3.5-mini -c 131072 --mem-budget 24GiB");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: context 131072 needs 48.0 GiB of KV cache (f16)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("These fit: -c "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("549755813888"), std::string::npos) << "mask row\n" << r.output;
}

TEST(PlanCli, JsonHasEveryCategory) {
  const auto r = test::run_cli("plan -m " + smol() + " -c 4096 --json --mem-budget 4GiB");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  for (const char* k : {"weights", "kv_cache", "activations", "scratch", "overhead", "total",
                        "budget", "headroom_bytes", "largest_context_batch1", "prefill_chunk"})
    EXPECT_TRUE(j.contains(k)) << k;
  // 2 layers x 3 kv heads x 64 x 2 bytes x 2 = 1536 bytes per token.
  EXPECT_EQ(j["kv_cache"]["bytes_per_token"], 1536);
  EXPECT_EQ(j["kv_cache"]["total"]["bytes"], 1536 * 4096);
}

TEST(RunContextPolicy, RefusesBeforeMappingWeights) {
  SKIP_UNDER_SANITIZER();
  const auto r = test::run_cli_argv(
      {"run", "-m", smol(), "-c", "65536", "--mem-budget", "100MiB", "-p", "hello"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: context 65536 needs 96.0 MiB of KV cache (f16)"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("These fit: -c "), std::string::npos) << r.output;
  // 51 MB of weights were never touched: the process stayed far below them.
  EXPECT_LT(r.max_rss_kib, 24 * 1024) << r.output;
}

TEST(RunContextPolicy, DefaultContextFitsTheBudgetAndSaysWhy) {
  const auto r = test::run_cli("run -m " + smol() + " --mem-budget 160MiB -p hello -n 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("the model allows 131072"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the largest context that fits was chosen"), std::string::npos)
      << r.output;
}

// Measured peak resident memory stays within max(10%, 32 MiB) of the plan's total, not below
// 80% of it, and above it by at most one huge page (the plan is what may be relied on), for a
// context filled to the brim.
struct AccuracyCase {
  const std::string& (*model)();
  int ctx;
  const char* chunk;
  const char* kv;
};

TEST(PlanAccuracy, MeasuredPeakMatchesPlan) {
  SKIP_UNDER_SANITIZER();
  const AccuracyCase cases[] = {{smol, 512, "auto", "f16"},
                                {smol, 4096, "128", "f16"},
                                {smol, 4096, "128", "int8"},
                                {heads, 1024, "64", "f32"},
                                {heads, 8192, "auto", "f32"}};
  for (const auto& c : cases) {
    const std::string ctx = std::to_string(c.ctx);
    SCOPED_TRACE(c.model() + " -c " + ctx + " --prefill-chunk " + c.chunk);
    const auto plan = test::run_cli("plan -m " + c.model() + " -c " + ctx + " --prefill-chunk " +
                                    c.chunk + " --kv-dtype " + c.kv + " -t 2 --json");
    ASSERT_EQ(plan.exit_code, 0) << plan.output;
    const double planned = nlohmann::json::parse(plan.output)["total"]["bytes"].get<double>();
    const auto run = test::run_cli_argv({"run", "-m", c.model(), "-c", ctx, "--prefill-chunk",
                                         c.chunk, "--kv-dtype", c.kv, "-t", "2", "-f",
                                         prompt_of(c.ctx - 8), "-n", "6", "--ignore-eos"});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const double measured = run.max_rss_kib * 1024.0;
    const double tol = std::max(0.10 * planned, 32.0 * 1048576);
    EXPECT_LE(std::abs(measured - planned), tol)
        << "planned " << planned / 1048576 << " MiB, measured " << measured / 1048576 << " MiB";
    EXPECT_GE(measured, 0.8 * planned)
        << "planned " << planned / 1048576 << " MiB, measured " << measured / 1048576 << " MiB";
    EXPECT_LE(measured, planned + 2.0 * 1048576)
        << "planned " << planned / 1048576 << " MiB, measured " << measured / 1048576 << " MiB";
    RecordProperty("planned_vs_measured_MiB_" + ctx + "_" + c.kv,
                   std::to_string(planned / 1048576) + " / " + std::to_string(measured / 1048576));
  }
}

}  // namespace
}  // namespace longctx
