// Every class of bad input gets one clear message naming the problem and the fix, a non-zero exit,
// and never a crash (exit codes >= 128 would mean a signal).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

const char* kTiny =
    R"({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2})";

std::string tiny_model(const std::string& name) {
  RandomCheckpointOptions o;
  o.config_json = kTiny;
  o.dtype = DType::kF32;
  return test::random_checkpoint_dir(name, o);
}

void expect_clean_failure(const test::CliResult& r, std::initializer_list<const char*> needles) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.output;
  for (const char* n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << n << "\n" << r.output;
}

TEST(CliErrors, MissingModelFolder) {
  expect_clean_failure(test::run_cli("run -m /nonexistent/model -p hi"),
                       {"error:", "/nonexistent/model", "config.json"});
}

TEST(CliErrors, MalformedConfig) {
  const std::string dir = tiny_model("bad_config");
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"llama\", \"hidden_size\": ";
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"error:", "config.json"});
}

TEST(CliErrors, MissingRequiredConfigField) {
  const std::string dir = tiny_model("missing_field");
  std::string cfg = kTiny;
  cfg.replace(cfg.find("\"num_hidden_layers\": 2,"), 23, "");
  std::ofstream(dir + "/config.json") << cfg;
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"num_hidden_layers"});
}

TEST(CliErrors, UnknownArchitecture) {
  const std::string dir = tiny_model("unknown_arch");
  std::string cfg = kTiny;
  cfg.replace(cfg.find("\"llama\""), 7, "\"gpt_neox\"");
  std::ofstream(dir + "/config.json") << cfg;
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"gpt_neox", "llama"});
}

TEST(CliErrors, TruncatedWeights) {
  const std::string dir = tiny_model("truncated");
  const fs::path w = dir + "/model.safetensors";
  fs::resize_file(w, fs::file_size(w) - 100);
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"truncated"});
}

TEST(CliErrors, GarbageWeights) {
  const std::string dir = tiny_model("garbage");
  std::ofstream(dir + "/model.safetensors", std::ios::trunc) << "this is not a safetensors file";
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"model.safetensors"});
}

TEST(CliErrors, ShapeMismatch) {
  const std::string dir = tiny_model("shape");
  std::string cfg = kTiny;
  cfg.replace(cfg.find("\"intermediate_size\": 64"), 23, "\"intermediate_size\": 96");
  std::ofstream(dir + "/config.json") << cfg;
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"mlp.gate_proj", "[96, 32]"});
}

TEST(CliErrors, MissingTokenizer) {
  const std::string dir = tiny_model("no_tokenizer");
  fs::remove(dir + "/tokenizer.json");
  fs::remove(dir + "/tokenizer.model");  // random-model writes both
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi"), {"tokenizer"});
}

TEST(CliErrors, ContextBeyondModelMaximumIsRefusedUnlessForced) {
  const std::string dir = tiny_model("ctx");
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi -c 100000"),
                       {"max_position_embeddings", "--force-ctx", "-c 64"});
  const auto forced = test::run_cli("run -m " + dir + " -p hi -c 100 --force-ctx -n 2");
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
}

TEST(CliErrors, PromptLongerThanContext) {
  const std::string dir = tiny_model("long_prompt");
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += " a b";
  expect_clean_failure(test::run_cli("run -m " + dir + " -p '" + prompt + "' -c 16"),
                       {"prompt has", "context is 16"});
}

// A text given with -f is bounded by the budget before it is read (a regular file, by its size)
// or as it is read (a device or pipe): a 300 MiB file or /dev/zero under a 256 MiB budget used to
// be read whole (or forever) before any plan saw it. Every command that reads -f shares the rule.
TEST(CliErrors, TextFileLargerThanTheBudgetAllows) {
  const std::string dir = tiny_model("huge_text");
  const std::string big = ::testing::TempDir() + "/longctx_huge_prompt.txt";
  {
    std::ofstream f(big, std::ios::binary);
    f.seekp((int64_t{300} << 20) - 1);
    f.put('a');  // sparse: 300 MiB long, nothing written
  }
  const std::string out = ::testing::TempDir() + "/longctx_huge_prompt_trace.safetensors";
  // The process's own peak when it stops at the file (sanitizer builds start near 100 MiB).
  const long base_kib =
      test::run_cli_argv({"run", "-m", dir, "-f", "/nonexistent/prompt.txt"}).max_rss_kib;
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"run", "-m", dir, "-n", "1"}, {"perplexity", "-m", dir},
        {"trace", "-m", dir, "-o", out, "--hooks", "logits"}}) {
    for (const char* a : {"-f", big.c_str(), "--mem-budget", "256MiB"}) cmd.push_back(a);
    const test::CliResult r = test::run_cli_argv(cmd);
    expect_clean_failure(r, {"is 300.0 MiB", "at most 32.0 MiB of text", "--mem-budget"});
    EXPECT_NE(r.output.find("-f " + big), std::string::npos) << r.output;
    EXPECT_LT(r.max_rss_kib, base_kib + 16 * 1024) << cmd[0];  // refused before reading
  }
  const test::CliResult dev =
      test::run_cli_argv({"run", "-m", dir, "-f", "/dev/zero", "--mem-budget", "256MiB"});
  expect_clean_failure(dev, {"-f /dev/zero is more than 32.0 MiB"});
  EXPECT_LT(dev.max_rss_kib, base_kib + 4 * 32 * 1024);  // the 32 MiB read, as a string grows
  std::remove(big.c_str());
}

TEST(CliErrors, BadFlags) {
  const std::string dir = tiny_model("flags");
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi --kv-dtype q9"), {"q9", "f16"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi --temp -1"), {"--temp"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi --top-p 1.5"), {"--top-p"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi --prefill-chunk lots"),
                       {"--prefill-chunk"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi --no-such-flag"),
                       {"--no-such-flag"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -p hi -n lots"), {"-n"});
  expect_clean_failure(test::run_cli("run -m " + dir + " -f /nonexistent/prompt.txt"),
                       {"/nonexistent/prompt.txt"});
  expect_clean_failure(test::run_cli(""), {"command to run", "run, plan"});
}

}  // namespace
}  // namespace longctx
