// Contexts that keep going, as a user runs them. --prompt-cache: a second run of a long prompt
// reuses all of it, gives the same text, and loading the file keeps the peak resident memory
// (measured by the kernel) within the plan. --context-overflow: generation of 4x the context
// keeps going on a full-attention and a sliding-window model without memory growing past the
// context's, and perplexity scores a text 4x the context as one stream beside the windowed
// figure.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

std::string stories() { return std::string(LONGCTX_SHARED_DIR) + "/models/stories260K"; }

// A Mistral-shaped random checkpoint with a 64-token sliding window.
std::string mistral_window() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
      "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
      "max_position_embeddings": 4096, "sliding_window": 64})";
    o.dtype = DType::kF32;
    return test::random_checkpoint_dir("overflow-mistral", o);
  }();
  return dir;
}

// "plan X MiB of" (or KiB/GiB) of the run banner, in KiB.
double plan_kib(const std::string& out) {
  std::smatch m;
  static const std::regex re(R"(plan ([0-9.]+) (KiB|MiB|GiB) of)");
  if (!std::regex_search(out, m, re)) return -1;
  const double v = std::stod(m[1]);
  return m[2] == "KiB" ? v : m[2] == "MiB" ? v * 1024 : v * 1024 * 1024;
}

// "kv X MiB" of run's summary line.
double kv_mib(const std::string& out) {
  std::smatch m;
  static const std::regex re(R"(\| kv ([0-9.]+) MiB \|)");
  return std::regex_search(out, m, re) ? std::stod(m[1]) : -1;
}

struct Case {
  std::string name, model, ctx, overflow;
};

class Overflow : public ::testing::TestWithParam<Case> {};

// Memory stops growing at the context: the KV cache is no larger than that of a run that fills
// the context and stops (the plan's), and the peak RSS (the kernel's figure) no more than that
// run's. (Against the plan's total itself these few-MiB models sit up to 1.1 MiB over with or
// without overflow: the fixed costs are calibrated on real models; Budget.* allows 1 MiB.)
TEST_P(Overflow, GeneratesFourTimesTheContextInTheContextsMemory) {
  const Case& c = GetParam();
  const int64_t ctx = std::stoll(c.ctx), n = 4 * ctx;
  for (const char* kv : {"f16", "int8"}) {
    SCOPED_TRACE(kv);
    auto run = [&](int64_t tokens, const std::string& overflow) {
      return test::run_cli_argv({"run", "-m", c.model, "-p", "Once upon a time", "-n",
                                 std::to_string(tokens), "-c", c.ctx, "--ignore-eos",
                                 "--kv-dtype", kv, "--context-overflow", overflow, "-t", "1"});
    };
    const test::CliResult r = run(n, c.overflow);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("generated " + std::to_string(n) + " tok"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("context overflow (" + c.overflow + "):"), std::string::npos)
        << r.output;
    const test::CliResult full = run(ctx, "stop");  // fills the context, then stops
    ASSERT_EQ(full.exit_code, 0) << full.output;
    EXPECT_NE(full.output.find("context full"), std::string::npos) << full.output;
    EXPECT_GT(kv_mib(full.output), 0) << full.output;
    EXPECT_LE(kv_mib(r.output), kv_mib(full.output)) << r.output << full.output;
    EXPECT_GT(plan_kib(r.output), 0) << r.output;
#ifndef LONGCTX_SANITIZE  // resident memory under ASan measures its shadow memory, not ours
    EXPECT_LE(r.max_rss_kib, full.max_rss_kib + 1024)  // the shift's row buffers, the allocator
        << "past the context: " << r.max_rss_kib << " KiB; at the context: " << full.max_rss_kib;
#endif
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, Overflow,
    ::testing::Values(Case{"FullAttentionShift", stories(), "256", "shift"},
                      Case{"FullAttentionSinks", stories(), "256", "sinks:4"},
                      Case{"SlidingWindowShift", mistral_window(), "256", "shift"},
                      Case{"SlidingWindowSinks", mistral_window(), "256", "sinks:4"}),
    [](const auto& info) { return info.param.name; });

TEST(OverflowCli, StopEndsAtTheContextAsBefore) {
  const test::CliResult r = test::run_cli_argv(
      {"run", "-m", stories(), "-p", "Once upon a time", "-n", "1000", "-c", "128",
       "--ignore-eos", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("context full"), std::string::npos) << r.output;
}

TEST(OverflowCli, PerplexityScoresOneStreamBesideTheWindows) {
  const test::CliResult r = test::run_cli_argv(
      {"perplexity", "-m", stories(), "-f", std::string(LONGCTX_SHARED_DIR) + "/text/stories.txt",
       "-c", "512", "--context-overflow", "sinks:4", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Final estimate: PPL = "), std::string::npos) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m,
      std::regex(R"(One stream \(--context-overflow sinks:4, context 512, ([0-9]+) shifts\): PPL = ([0-9.]+))")))
      << r.output;
  EXPECT_GT(std::stoi(m[1]), 0);
  const double ppl = std::stod(m[2]);
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 20.0);  // a trained model keeps predicting well past its context
  const test::CliResult bad = test::run_cli_argv(
      {"perplexity", "-m", stories(), "-f", std::string(LONGCTX_SHARED_DIR) + "/text/stories.txt",
       "--context-overflow", "sinks", "-t", "1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("sinks:N"), std::string::npos) << bad.output;
}

// A Llama-shaped random checkpoint whose KV cache at 4000 tokens (64 MiB in f16) outweighs the
// rest, so that memory the file's mapping kept would show against the plan.
std::string llama_kv_heavy() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 8,
      "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 2048,
      "max_position_embeddings": 4096})";
    o.dtype = DType::kBF16;
    return test::random_checkpoint_dir("prompt-cache-llama", o);
  }();
  return dir;
}

TEST(PromptCacheCli, ASecondRunReusesThePromptWithinThePlan) {
  const std::string m = llama_kv_heavy();
  const std::string dir = test::scratch_dir("prompt-cache-cli");
  // A prompt of 3600-4000 tokens (the synthetic tokenizer: about 4 tokens a word).
  std::string text;
  for (int i = 0; i < 950; ++i) text += (i % 7 ? "word " : "river ");
  const std::string file = dir + "/prompt.txt", cache = dir + "/prompt.lcpc";
  std::ofstream(file) << text;
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"run", "-m", m, "-f", file, "-c", "4096", "-n", "8", "--temp",
                                  "0", "--ignore-eos", "-t", "2", "--prompt-cache", cache};
    a.insert(a.end(), extra.begin(), extra.end());
    return test::run_cli_argv(a);
  };
  const test::CliResult cold = run({});
  ASSERT_EQ(cold.exit_code, 0) << cold.output;
  ASSERT_TRUE(fs::exists(cache));
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(cold.output, mm, std::regex(R"(prompt ([0-9]+) tok \|)")))
      << cold.output;
  const long n = std::stol(mm[1]);
  ASSERT_GT(n, 3000);
  const test::CliResult warm = run({"--prompt-cache-ro"});
  ASSERT_EQ(warm.exit_code, 0) << warm.output;
  EXPECT_NE(warm.output.find("prompt cache: " + std::to_string(n - 1) + " of the prompt's " +
                             std::to_string(n) + " tokens"),
            std::string::npos)
      << warm.output;
  // The same continuation (stdout: the prompt, then the 8 generated tokens).
  auto continuation = [&](const std::string& out) {
    const size_t at = out.find(text);
    return at == std::string::npos ? std::string() : out.substr(at + text.size(), 200);
  };
  EXPECT_FALSE(continuation(cold.output).empty()) << cold.output;
  EXPECT_EQ(continuation(warm.output).substr(0, continuation(warm.output).find('\n')),
            continuation(cold.output).substr(0, continuation(cold.output).find('\n')));
#ifndef LONGCTX_SANITIZE  // resident memory under ASan measures its shadow memory, not ours
  const double plan = plan_kib(warm.output);
  ASSERT_GT(plan, 60 * 1024) << warm.output;
  EXPECT_LE(static_cast<double>(warm.max_rss_kib), plan + 1024) << warm.output;
#endif
  // A damaged file: a note, a full prefill, the same text.
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(cache) / 2));
    f.put('\x7f');
  }
  const test::CliResult damaged = run({"--prompt-cache-ro"});
  ASSERT_EQ(damaged.exit_code, 0) << damaged.output;
  EXPECT_NE(damaged.output.find("is corrupt (checksum mismatch); the prompt is prefilled from "
                                "scratch"),
            std::string::npos)
      << damaged.output;
  const test::CliResult strict = run({"--prompt-cache-ro", "--prompt-cache-strict"});
  EXPECT_NE(strict.exit_code, 0) << strict.output;
}

}  // namespace
}  // namespace longctx
