// longctx quantize as a user runs it: longctx's perplexity on its output equals its perplexity on
// llama.cpp's file of the same type, llama.cpp's own llama-perplexity runs the output (when it is
// installed), and bad requests fail clearly without leaving a file behind.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "integration/cli_util.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

std::string shared(const std::string& p) { return test::shared_dir() + "/" + p; }

// longctx's perplexity of FILE at -c 128 on the shared text.
double longctx_ppl(const std::string& file) {
  const auto r = test::run_cli("perplexity -m " + test::quote(file) + " -f " +
                               shared("text/stories.txt") + " -c 128 --json -t 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("{\n");
  if (at == std::string::npos) return -1;
  return nlohmann::json::parse(r.output.substr(at))["ppl"].get<double>();
}

std::string quantize(const std::string& folder, const std::string& type, const std::string& name) {
  const std::string out = test::scratch_dir("q-" + name) + "/" + name + ".gguf";
  const auto r = test::run_cli("quantize -m " + test::quote(folder) + " --type " + type + " -o " +
                               test::quote(out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("token_embd.weight"), std::string::npos) << "per-tensor progress";
  return out;
}

struct PplCase {
  const char* folder;
  const char* type;
  const char* reference;
  const char* name;
};

class QuantizePerplexity : public ::testing::TestWithParam<PplCase> {};

TEST_P(QuantizePerplexity, EqualsLongctxOnLlamaCppsFile) {
  const PplCase c = GetParam();
  const std::string out = quantize(shared(c.folder), c.type, c.name);
  const double ours = longctx_ppl(out), theirs = longctx_ppl(shared(c.reference));
  EXPECT_NEAR(ours, theirs, 1e-3 * theirs) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Shared, QuantizePerplexity,
    ::testing::Values(
        PplCase{"models/stories260K", "f32", "gguf/stories260K-f32.gguf", "stories_f32"},
        PplCase{"models/stories260K", "q8_0", "gguf/stories260K-q8_0.gguf", "stories_q8_0"},
        PplCase{"models/stories260K", "q4_0", "gguf/stories260K-q4_0.gguf", "stories_q4_0"},
        PplCase{"gguf/llama-kq-tiny", "q4_k_m", "gguf/llama-kq-tiny/llama-kq-tiny-q4_k_m.gguf",
                "kq_q4_k_m"}),
    [](const ::testing::TestParamInfo<PplCase>& i) { return std::string(i.param.name); });

// llama-perplexity on PATH (or $LLAMA_PERPLEXITY): "" when absent.
std::string llama_perplexity() {
  if (const char* e = std::getenv("LLAMA_PERPLEXITY"); e && fs::exists(e)) return e;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  for (size_t start = 0; start <= p.size();) {
    const size_t end = std::min(p.find(':', start), p.size());
    const fs::path cand = fs::path(p.substr(start, end - start)) / "llama-perplexity";
    if (end > start && fs::exists(cand)) return cand.string();
    start = end + 1;
  }
  return "";
}

TEST(QuantizeCli, LlamaCppRunsTheOutput) {
  const std::string bin = llama_perplexity();
  if (bin.empty()) GTEST_SKIP() << "llama-perplexity is not on PATH (nor in $LLAMA_PERPLEXITY)";
  for (const auto& [folder, type] : {std::pair{"models/stories260K", "q8_0"},
                                     std::pair{"gguf/llama-kq-tiny", "q4_k_m"}}) {
    const std::string out = quantize(shared(folder), type, std::string("lcpp-") + type);
    const std::string cmd = test::quote(bin) + " -m " + test::quote(out) + " -f " +
                            shared("text/stories.txt") + " -c 128 -t 2 2>&1 </dev/null";
    std::string text;
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    ASSERT_EQ(pclose(p), 0) << text;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, std::regex("Final estimate: PPL = ([0-9.]+)"))) << text;
    const double theirs = std::stod(m[1]), ours = longctx_ppl(out);
    // As for llama.cpp's own files (gguf_perplexity_test.cc): Q8_0 0.2%, K-quants 1%.
    EXPECT_NEAR(ours, theirs, (std::string(type) == "q8_0" ? 2e-3 : 1e-2) * theirs) << out;
  }
}

// ---- errors: clear message, non-zero exit, no file left ----

void expect_refused(const std::string& args, const std::string& out, const std::string& needle) {
  const auto r = test::run_cli("quantize " + args);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << out;
  EXPECT_FALSE(fs::exists(out + ".tmp")) << out;
}

TEST(QuantizeCli, RefusesBadRequests) {
  const std::string dir = test::scratch_dir("q-errors");
  const std::string out = dir + "/out.gguf";
  const std::string model = shared("models/stories260K");
  expect_refused("-m " + dir + "/nowhere --type q8_0 -o " + out, out, "is not a folder");
  expect_refused("-m " + model + " --type q5_k_m -o " + out, out,
                 "valid types: q8_0, q4_0, q4_k_m, f16, f32");
  const std::string missing = dir + "/no/such/folder/out.gguf";
  expect_refused("-m " + model + " --type q8_0 -o " + missing, missing, "folder/out.gguf");

  // A folder of an architecture longctx does not run.
  const std::string gpt2 = dir + "/gpt2";
  fs::create_directories(gpt2);
  std::ofstream(gpt2 + "/config.json")
      << R"({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64})";
  expect_refused("-m " + gpt2 + " --type q8_0 -o " + out, out, "not supported");
  // A folder without a tokenizer.
  const std::string notok = dir + "/notok";
  fs::create_directories(notok);
  fs::copy_file(model + "/config.json", notok + "/config.json");
  expect_refused("-m " + notok + " --type q8_0 -o " + out, out, "tokenizer");
}

}  // namespace
}  // namespace longctx
