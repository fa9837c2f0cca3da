// `longctx bench` end to end on tiny random-weight models: table and JSON structure, values
// consistent with their definitions (never timings), and refusals before anything is allocated.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/huge_pages.h"
#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

// hidden 64, intermediate 128, 2 layers, 4 query heads, 2 kv heads of 16, vocab 300: bf16.
constexpr const char* kTinyConfig =
    R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": 300, "max_position_embeddings": 2048,
        "bos_token_id": 1, "eos_token_id": 2})";
constexpr int64_t kH = 64, kI = 128, kL = 2, kHeads = 4, kKv = 2, kHd = 16, kV = 300;

// Parameters of kTinyConfig by the Llama formula (untied head).
constexpr int64_t kParams =
    kV * kH + kL * (kH * kHeads * kHd + 2 * kH * kKv * kHd + kHeads * kHd * kH + 3 * kH * kI +
                    2 * kH) + kH + kV * kH;

const std::string& tiny() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = kTinyConfig;
    return test::random_checkpoint_dir("bench_tiny", o);
  }();
  return dir;
}

// Mistral-style 64-token sliding window: a depth past several KV blocks makes bench refill the
// cache when rewinding would need keys a window layer already recycled.
const std::string& windowed() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json =
        R"({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 300, "max_position_embeddings": 4096,
            "sliding_window": 64, "bos_token_id": 1, "eos_token_id": 2})";
    return test::random_checkpoint_dir("bench_windowed", o);
  }();
  return dir;
}

// The JSON array bench prints last (progress lines go to stderr, which run_cli merges).
nlohmann::json json_of(const std::string& out) {
  const size_t at = out.rfind("\n[");
  return nlohmann::json::parse(at == std::string::npos ? out : out.substr(at + 1));
}

std::vector<std::string> table_rows(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream s(out);
  for (std::string line; std::getline(s, line);)
    if (line.rfind("| ", 0) == 0 && line.rfind("| model", 0) != 0) rows.push_back(line);
  return rows;
}

std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::istringstream s(row.substr(1));
  for (std::string c; std::getline(s, c, '|');) {
    const size_t b = c.find_first_not_of(' '), e = c.find_last_not_of(' ');
    out.push_back(b == std::string::npos ? "" : c.substr(b, e - b + 1));
  }
  return out;
}

TEST(CliBench, TablePrintsBandwidthAndOneRowPerTest) {
  const auto r = test::run_cli("bench -m " + test::quote(tiny()) +
                               " -p 16 -n 4 -d 0,40 --kv-dtype f16,f32 -t 1 -r 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("read bandwidth: ([0-9.]+) GB/s")))
      << r.output;
  EXPECT_GT(std::stod(m[1]), 0.0);
  const auto rows = table_rows(r.output);
  ASSERT_EQ(rows.size(), 1u + 2 * 2 * 2) << r.output;  // separator + kv x depth x (pp, tg)
  std::vector<std::string> tests;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto c = cells(rows[i]);
    ASSERT_EQ(c.size(), 10u) << rows[i];
    EXPECT_NE(c[0].find("llama"), std::string::npos) << rows[i];
    EXPECT_EQ(c[4], "1") << rows[i];
    tests.push_back(c[3] + " " + c[5]);
    EXPECT_GT(std::stod(c[6]), 0.0) << rows[i];  // t/s
    const bool tg = c[5].rfind("tg", 0) == 0;
    EXPECT_EQ(c[7] == "-", !tg) << rows[i];  // GB/s only for generation
    EXPECT_EQ(c[8].back() == '%', tg) << rows[i];
    EXPECT_NE(c[9].find("iB"), std::string::npos) << rows[i];
  }
  EXPECT_EQ(tests, (std::vector<std::string>{"f16 pp16", "f16 tg4", "f16 pp16 @ d40",
                                             "f16 tg4 @ d40", "f32 pp16", "f32 tg4",
                                             "f32 pp16 @ d40", "f32 tg4 @ d40"}));
}

// build_commit is the commit the binary was built from, as llama-bench reports it: git's short HEAD
// of the source tree (every build regenerates it), or "unknown" outside a git checkout.
TEST(CliBench, JsonBuildCommitIsTheSourceCommit) {
  std::string want = "unknown";
  const std::string git =
      "git -C " + test::quote(LONGCTX_SOURCE_DIR) + " rev-parse --short=7 HEAD 2>/dev/null";
  if (FILE* g = popen(git.c_str(), "r")) {
    std::array<char, 128> buf{};
    std::string out = fgets(buf.data(), buf.size(), g) ? buf.data() : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (pclose(g) == 0 && !out.empty()) want = out;
  }
  const auto r = test::run_cli("bench -m " + test::quote(tiny()) + " -p 0 -n 2 -r 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_FALSE(j.empty());
  for (const auto& t : j) EXPECT_EQ(t["build_commit"], want) << t.dump(1);
}

TEST(CliBench, JsonHasLlamaBenchFieldsAndConsistentValues) {
  const int reps = 3;
  const auto r = test::run_cli("bench -m " + test::quote(tiny()) +
                               " -p 24 -n 5 -d 0,100 --kv-dtype bf16 -t 1,2 -r 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u * 2 * 2) << j.dump(1);  // threads x depth x (pp, tg)
  // bf16 weights: every parameter but the untied embedding table is read per decoded token.
  const double weight_read = 2.0 * (kParams - kV * kH);
  for (const auto& t : j) {
    for (const char* f : {"model_type", "model_size", "model_n_params", "n_batch", "n_threads",
                          "type_k", "type_v", "n_prompt", "n_gen", "n_depth", "test_time",
                          "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns",
                          "samples_ts", "read_bw_gbps", "bytes_per_token", "eff_gbps",
                          "roofline_frac", "peak_rss_bytes"})
      ASSERT_TRUE(t.contains(f)) << f << "\n" << t.dump(1);
    EXPECT_EQ(t["model_n_params"].get<int64_t>(), kParams);
    EXPECT_GT(t["model_size"].get<double>(), 2.0 * kParams);  // bf16 + safetensors header
    EXPECT_LT(t["model_size"].get<double>(), 2.0 * kParams + 65536);
    EXPECT_EQ(t["type_k"], "bf16");
    EXPECT_EQ(t["type_v"], "bf16");
    EXPECT_EQ(t["use_mmap"], !transparent_huge_pages_available());  // copied unless THP is off
    const int64_t p = t["n_prompt"], n = t["n_gen"], d = t["n_depth"];
    EXPECT_TRUE((p == 24 && n == 0) || (p == 0 && n == 5)) << t.dump(1);
    EXPECT_TRUE(d == 0 || d == 100);
    ASSERT_EQ(t["samples_ts"].size(), size_t{reps});
    ASSERT_EQ(t["samples_ns"].size(), size_t{reps});
    double sum = 0;
    for (int i = 0; i < reps; ++i) {
      const double ts = t["samples_ts"][i], ns = t["samples_ns"][i];
      EXPECT_NEAR(ts, 1e9 * static_cast<double>(p + n) / ns, 1e-3 * ts);
      sum += ts;
    }
    const double avg = t["avg_ts"];
    EXPECT_GT(avg, 0.0);
    EXPECT_NEAR(avg, sum / reps, 1e-9 * avg);
    EXPECT_GE(t["stddev_ts"].get<double>(), 0.0);
    const double bw = t["read_bw_gbps"];
    EXPECT_GT(bw, 0.1);
    EXPECT_LT(bw, 100000.0);
    EXPECT_GT(t["peak_rss_bytes"].get<double>(), t["model_size"].get<double>());
    if (n > 0) {
      // KV read per step at position pos: layers x (k + v) x kv heads x head_dim x 2 bytes x
      // (pos + 1) keys; averaged over positions d .. d + n - 1.
      const double kv = kL * 2.0 * kKv * kHd * 2.0 * (static_cast<double>(d) + (n + 1) / 2.0);
      const double bpt = t["bytes_per_token"];
      EXPECT_NEAR(bpt, weight_read + kv, 1.0);
      EXPECT_NEAR(t["eff_gbps"].get<double>(), bpt * avg / 1e9, 1e-9 * bpt * avg);
      EXPECT_NEAR(t["roofline_frac"].get<double>(), bpt * avg / 1e9 / bw, 1e-6);
    } else {
      EXPECT_TRUE(t["bytes_per_token"].is_null());
      EXPECT_TRUE(t["eff_gbps"].is_null());
      EXPECT_TRUE(t["roofline_frac"].is_null());
    }
  }
}

TEST(CliBench, SlidingWindowDepthPastRecycledBlocks) {
  const auto r = test::run_cli("bench -m " + test::quote(windowed()) +
                               " -p 400 -n 3 -d 700 --prefill-chunk 128 -t 1 -r 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_EQ(j.size(), 2u);
  for (const auto& t : j) EXPECT_EQ(t["n_depth"], 700);
  // A window layer reads at most 64 keys per step, whatever the depth.
  const double kv = kL * 2.0 * kKv * kHd * 2.0 * 64;
  EXPECT_NEAR(j[1]["bytes_per_token"].get<double>(), 2.0 * (kParams - kV * kH) + kv, 1.0);
}

TEST(CliBench, QuantizedKvReadsItsStoredBytes) {
  // -d 40: the rewind before each repetition lands inside an int4 key group of 16 tokens.
  const auto r = test::run_cli("bench -m " + test::quote(tiny()) +
                               " -p 0 -n 4 -d 40 --kv-dtype int8,int4 -t 1 -r 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_EQ(j.size(), 2u) << j.dump(1);
  // Bytes per kv head and token, worked by hand for head_dim 16 (docs/kv-quantization.md):
  // int8 keys and values: 16 codes + one f16 scale (group 16) = 18 each;
  // int4 values: 8 bytes of codes + f16 scale and minimum = 12; int4 keys: 8 + 4 x 16 / 16 = 12.
  const struct {
    const char* type;
    double per_head;
  } want[] = {{"int8", 18 + 18}, {"int4", 12 + 12}};
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(j[i]["type_k"], want[i].type);
    EXPECT_EQ(j[i]["type_v"], want[i].type);
    const double kv = kL * kKv * want[i].per_head * (40 + (4 + 1) / 2.0);
    EXPECT_NEAR(j[i]["bytes_per_token"].get<double>(), 2.0 * (kParams - kV * kH) + kv, 1.0)
        << j[i].dump(1);
    EXPECT_GT(j[i]["avg_ts"].get<double>(), 0.0);
  }
}

// A GGUF file names its embedding table token_embd.weight: decode reads one row of it, so the
// bytes per token leave it out as they do for a Hugging Face folder's model.embed_tokens.weight.
TEST(CliBench, GgufBytesPerTokenLeaveOutTheUntiedEmbedding) {
  // llama.cpp's Q8_0 conversion of llama-kq-tiny (untied head): hidden 256, intermediate 768,
  // 4 layers, 8 heads and 4 kv heads of 32, vocab 512. Matrices are Q8_0 (34 bytes per 32
  // values), norms f32.
  const std::string file =
      std::string(LONGCTX_SHARED_DIR) + "/gguf/llama-kq-tiny/llama-kq-tiny-q8_0.gguf";
  const double q8 = 34.0 / 32.0;
  const double layer = q8 * (2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256) + 2 * 256 * 4;
  const double head = q8 * 512 * 256 + 256 * 4;  // output.weight + output_norm.weight
  const double weights = 4 * layer + head;       // token_embd.weight: one row, not counted
  const auto r =
      test::run_cli("bench -m " + test::quote(file) + " -p 0 -n 2 -t 1 -r 1 --kv-dtype f32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_EQ(j.size(), 1u) << j.dump(1);
  // f32 keys and values of 4 layers x 4 kv heads x 32, for positions 0 and 1: 1.5 keys on average.
  const double kv = 4 * 2 * 4 * 32 * 4.0 * 1.5;
  EXPECT_NEAR(j[0]["bytes_per_token"].get<double>(), weights + kv, 1.0) << j[0].dump(1);
  EXPECT_NE(j[0]["model_type"].get<std::string>().find("q8_0"), std::string::npos) << j[0].dump(1);
}

// The decode warm-up takes two positions past the depth: one generated token must still run.
TEST(CliBench, OneGeneratedToken) {
  const auto r =
      test::run_cli("bench -m " + test::quote(tiny()) + " -p 0 -n 1 -d 0,3 -t 1 -r 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = json_of(r.output);
  ASSERT_EQ(j.size(), 2u) << j.dump(1);
  for (const auto& t : j) {
    EXPECT_EQ(t["n_gen"], 1);
    EXPECT_GT(t["avg_ts"].get<double>(), 0.0);
  }
}

TEST(CliBench, RefusesBeforeAllocatingWhenTheDeepestTestDoesNotFit) {
  const auto r = test::run_cli("bench -m " + test::quote(tiny()) +
                               " -p 16 -n 4 -d 0,1024 --mem-budget 1MiB");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("deepest test (1040 tokens"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("read bandwidth"), std::string::npos) << r.output;
}

TEST(CliBench, BadArgumentsAreNamed) {
  const std::string m = "bench -m " + test::quote(tiny());
  const struct {
    std::string args, says;
  } cases[] = {
      {" --kv-dtype f16,q9", "q9"},
      {" -r 0", "-r must be >= 1"},
      {" -p 0 -n 0", "nothing to run"},
      {" -d -5", "-d values must be >= 0"},
      {" -t 0", "-t values must be >= 1"},
      {" -d 4000", "--force-ctx"},
  };
  for (const auto& c : cases) {
    const auto r = test::run_cli(m + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("read bandwidth"), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace longctx
