// Hooks from the command line: trace end to end (the file it writes: names, shapes, tokens,
// dtypes, slices; its logits against the float64 golden figures of ../shared), patching and
// steering through files in trace, run and perplexity, every kind of bad input, and memory that
// does not grow with the prompt beyond the KV cache.
// The hook values themselves are checked against a float64 reference in tests/hooks/.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "integration/cli_util.h"
#include "io/weights.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kPrompt0 = "Once upon a time, there was a little girl named Lily.";
const std::string kPrompt1 = "Tom and his dog went to the park. They";

std::string stories() { return test::model_path("stories260K"); }

// A safetensors file read independently of longctx's reader: header JSON and raw bytes.
struct StFile {
  json header;
  std::string data;
  explicit StFile(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    std::string h(n, '\0');
    f.read(h.data(), static_cast<std::streamsize>(n));
    header = json::parse(h);
    data.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::vector<int64_t> shape(const std::string& name) const {
    return header.at(name).at("shape").get<std::vector<int64_t>>();
  }
  std::string dtype(const std::string& name) const { return header.at(name).at("dtype"); }
  template <class T>
  std::vector<T> values(const std::string& name) const {
    const auto off = header.at(name).at("data_offsets").get<std::vector<size_t>>();
    std::vector<T> v((off[1] - off[0]) / sizeof(T));
    std::memcpy(v.data(), data.data() + off[0], off[1] - off[0]);
    return v;
  }
  std::vector<float> f32(const std::string& name) const { return values<float>(name); }
};

std::string scratch(const std::string& name) { return test::scratch_dir("trace_" + name); }

test::CliResult trace(const std::string& args) {
  return test::run_cli("trace -m " + stories() + " --kv-dtype f32 -t 2 " + args);
}

// The golden top-5 next-token logits after the prompt of case `name`.
std::pair<std::vector<int>, std::vector<double>> golden_top5(const std::string& name) {
  const json g = test::read_json(stories() + "/golden.json");
  for (const auto& c : g["cases"])
    if (c["name"] == name)
      return {c["steps_top5"][0]["top_ids"].get<std::vector<int>>(),
              c["steps_top5"][0]["top_logits"].get<std::vector<double>>()};
  throw std::runtime_error("no golden case " + name);
}

void expect_last_logits_match(const StFile& f, const std::string& golden_case) {
  const auto shape = f.shape("logits");
  ASSERT_EQ(shape.size(), 3u);
  const std::vector<float> logits = f.f32("logits");
  const float* last = logits.data() + (shape[1] - 1) * shape[2];
  const auto [ids, want] = golden_top5(golden_case);
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_NEAR(last[ids[i]], want[i], 1e-4 * std::max(1.0, std::abs(want[i])))
        << "token " << ids[i];
}

TEST(HooksCli, WritesHookNamesShapesTokensAndGoldenLogits) {
  const std::string out = scratch("basic") + "/t.safetensors";
  const auto r = trace("-p '" + kPrompt0 + "' --hooks 'hook_embed,blocks.*.hook_resid_post,"
                       "blocks.1.attn.*,blocks.2.ln1.*,blocks.0.mlp.hook_post,logits' "
                       "--pattern-queries 3,-1 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("trace: "), std::string::npos) << r.output;
  const StFile f(out);
  EXPECT_EQ(f.values<int64_t>("tokens"),
            (std::vector<int64_t>{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                  395, 317, 426}));  // golden.json's prompt_ids
  EXPECT_EQ(f.shape("tokens"), (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(f.shape("hook_embed"), (std::vector<int64_t>{1, 16, 64}));
  for (int l = 0; l < 5; ++l)
    EXPECT_EQ(f.shape("blocks." + std::to_string(l) + ".hook_resid_post"),
              (std::vector<int64_t>{1, 16, 64}));
  EXPECT_EQ(f.shape("blocks.1.attn.hook_q"), (std::vector<int64_t>{1, 16, 8, 8}));
  EXPECT_EQ(f.shape("blocks.1.attn.hook_rot_k"), (std::vector<int64_t>{1, 16, 4, 8}));
  EXPECT_EQ(f.shape("blocks.1.attn.hook_pattern"), (std::vector<int64_t>{1, 8, 2, 16}));
  EXPECT_EQ(f.shape("blocks.1.attn.hook_attn_scores"), (std::vector<int64_t>{1, 8, 2, 16}));
  EXPECT_EQ(f.values<int64_t>("blocks.1.attn.pattern_query_pos"), (std::vector<int64_t>{3, 15}));
  EXPECT_EQ(f.dtype("blocks.1.attn.pattern_query_pos"), "I64");
  EXPECT_EQ(f.shape("blocks.1.attn.pattern_key_mass"), (std::vector<int64_t>{1, 8, 16}));
  EXPECT_EQ(f.shape("blocks.1.attn.pattern_entropy"), (std::vector<int64_t>{1, 8, 16}));
  EXPECT_EQ(f.shape("blocks.2.ln1.hook_scale"), (std::vector<int64_t>{1, 16, 1}));
  EXPECT_EQ(f.shape("blocks.0.mlp.hook_post"), (std::vector<int64_t>{1, 16, 172}));
  EXPECT_EQ(f.header.count("blocks.2.ln2.hook_scale"), 0u);
  // Pattern rows: query 3 sees keys 0..3 only; each row sums to 1; key mass sums to the number
  // of queries per head.
  const auto pat = f.f32("blocks.1.attn.hook_pattern");
  const auto scores = f.f32("blocks.1.attn.hook_attn_scores");
  for (int h = 0; h < 8; ++h) {
    double sum = 0;
    for (int j = 0; j < 16; ++j) {
      const float p = pat[(h * 2 + 0) * 16 + j];
      if (j > 3) {
        EXPECT_EQ(p, 0.f);
        EXPECT_TRUE(std::isinf(scores[(h * 2 + 0) * 16 + j]));
      }
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  const auto mass = f.f32("blocks.1.attn.pattern_key_mass");
  for (int h = 0; h < 8; ++h) {
    double sum = 0;
    for (int j = 0; j < 16; ++j) sum += mass[h * 16 + j];
    EXPECT_NEAR(sum, 16.0, 1e-4);
  }
  expect_last_logits_match(f, "prompt_0");
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(HooksCli, PosSliceAndDtype) {
  const std::string dir = scratch("slice");
  ASSERT_EQ(trace("-p '" + kPrompt0 + "' --hooks blocks.3.hook_resid_mid -o " + dir + "/a.st")
                .exit_code, 0);
  const auto r = trace("-p '" + kPrompt0 + "' --hooks blocks.3.hook_resid_mid --pos -5:-1 "
                       "--dtype bf16 -o " + dir + "/b.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const StFile a(dir + "/a.st"), b(dir + "/b.st");
  EXPECT_EQ(b.shape("blocks.3.hook_resid_mid"), (std::vector<int64_t>{1, 4, 64}));
  EXPECT_EQ(b.dtype("blocks.3.hook_resid_mid"), "BF16");
  EXPECT_EQ(b.shape("tokens"), (std::vector<int64_t>{1, 16}));  // always the whole prompt
  const auto full = a.f32("blocks.3.hook_resid_mid");
  const auto part = b.values<uint16_t>("blocks.3.hook_resid_mid");
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 64; ++i) {
      const float want = full[(11 + t) * 64 + i];
      uint32_t u = static_cast<uint32_t>(part[t * 64 + i]) << 16;
      float got;
      std::memcpy(&got, &u, 4);
      EXPECT_NEAR(got, want, std::abs(want) / 128 + 1e-6) << t << "," << i;
    }
}

// A resid_post of the last block decides the logits alone: patched with another prompt's
// capture, the logits are that prompt's (golden figures); patched with its own, nothing moves.
TEST(HooksCli, PatchAndSteerThroughFiles) {
  const std::string dir = scratch("patch");
  const std::string hooks = "--hooks blocks.4.hook_resid_post,blocks.1.hook_resid_post,logits";
  ASSERT_EQ(trace("-p '" + kPrompt1 + "' " + hooks + " -o " + dir + "/b.st").exit_code, 0);
  ASSERT_EQ(trace("-p '" + kPrompt0 + "' " + hooks + " -o " + dir + "/a.st").exit_code, 0);
  const StFile a(dir + "/a.st");

  auto r = trace("-p '" + kPrompt0 + "' --hooks logits --patch blocks.4.hook_resid_post=" + dir +
                 "/b.st -o " + dir + "/ab.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_last_logits_match(StFile(dir + "/ab.st"), "prompt_1");

  // A capture of one position lands at that position, whatever --pos the patched run has.
  ASSERT_EQ(trace("-p '" + kPrompt1 + "' --hooks blocks.4.hook_resid_post --pos -1: -o " + dir +
                  "/b_last.st").exit_code, 0);
  r = trace("-p '" + kPrompt0 + "' --hooks logits --patch blocks.4.hook_resid_post=" + dir +
            "/b_last.st -o " + dir + "/ab_last.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const StFile ab_last(dir + "/ab_last.st");
  expect_last_logits_match(ab_last, "prompt_1");
  const auto la = a.f32("logits"), lab = ab_last.f32("logits");
  EXPECT_TRUE(std::equal(la.begin(), la.end() - 512, lab.begin()));  // positions 0..14 untouched

  r = trace("-p '" + kPrompt0 + "' --hooks logits --patch blocks.1.hook_resid_post=" + dir +
            "/a.st -o " + dir + "/aa.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(StFile(dir + "/aa.st").f32("logits"), a.f32("logits"));

  // Steering by zero changes nothing; by a vector, something.
  std::vector<float> zero(64, 0.f), one(64, 0.f);
  one[5] = 1.f;
  io::write_safetensors(dir + "/zero.st", {{"blocks.2.hook_resid_pre", DType::kF32, {64}, zero.data()}});
  io::write_safetensors(dir + "/one.st", {{"blocks.2.hook_resid_pre", DType::kF32, {64}, one.data()}});
  r = trace("-p '" + kPrompt0 + "' --hooks logits --steer blocks.2.hook_resid_pre=" + dir +
            "/zero.st:3 -o " + dir + "/s0.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(StFile(dir + "/s0.st").f32("logits"), a.f32("logits"));
  r = trace("-p '" + kPrompt0 + "' --hooks logits --steer blocks.2.hook_resid_pre=" + dir +
            "/one.st:4 -o " + dir + "/s1.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(StFile(dir + "/s1.st").f32("logits"), a.f32("logits"));
}

// Steered generation: every generated token is the argmax of the steered logits that trace
// computes over the prompt and what came before it, so the steering reached the prompt and
// every decode step. Steering by zero leaves the text and the perplexity as they were.
TEST(HooksCli, SteeredRunAndPerplexity) {
  const std::string dir = scratch("steer_run");
  std::vector<float> v(64, 0.f), zero(64, 0.f);
  for (int i = 0; i < 64; ++i) v[i] = std::sin(0.7f * i) * 2.f;
  const std::string name = "blocks.2.hook_resid_post";
  io::write_safetensors(dir + "/v.st", {{name, DType::kF32, {64}, v.data()}});
  io::write_safetensors(dir + "/zero.st", {{name, DType::kF32, {64}, zero.data()}});
  const std::string run = "run -m " + stories() + " -p 'Lily went to' -n 12 --kv-dtype f32 -t 2 ";
  // The generated text: the output line that starts with the prompt.
  auto text_of = [](const test::CliResult& r) {
    const size_t at = r.output.find("\nLily went to");
    return at == std::string::npos ? r.output
                                   : r.output.substr(at + 1, r.output.find('\n', at + 1) - at - 1);
  };
  const auto plain = test::run_cli(run);
  const auto zero_run = test::run_cli(run + "--steer " + name + "=" + dir + "/zero.st:5");
  const auto steered = test::run_cli(run + "--steer " + name + "=" + dir + "/v.st:1");
  ASSERT_EQ(steered.exit_code, 0) << steered.output;
  EXPECT_EQ(text_of(zero_run), text_of(plain));
  EXPECT_NE(text_of(steered), text_of(plain));
  const std::string text = text_of(steered);
  // The steered text, traced with the same steering: each token after the prompt is the argmax
  // of the logits before it.
  const auto r = trace("-p " + test::quote(text) + " --hooks logits --steer " + name + "=" + dir +
                       "/v.st:1 -o " + dir + "/t.st");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const StFile f(dir + "/t.st");
  const auto tokens = f.values<int64_t>("tokens");
  const auto logits = f.f32("logits");
  const int64_t T = static_cast<int64_t>(tokens.size()), V = 512, prompt = 5;  // BOS Lily went to
  ASSERT_GE(T, prompt + 8) << text;
  for (int64_t t = prompt; t < T; ++t) {
    const float* row = logits.data() + (t - 1) * V;
    EXPECT_EQ(std::max_element(row, row + V) - row, tokens[t]) << "position " << t << ": " << text;
  }

  const std::string ppl = "perplexity -m " + stories() + " -f " + test::shared_dir() +
                          "/text/stories.txt -c 128 -t 2 ";
  auto estimate = [](const test::CliResult& r) {
    const size_t at = r.output.find("Final estimate: PPL = ");
    return at == std::string::npos ? r.output : r.output.substr(at, r.output.find('\n', at) - at);
  };
  const auto p0 = test::run_cli(ppl);
  const auto pz = test::run_cli(ppl + "--steer " + name + "=" + dir + "/zero.st:3");
  const auto pv = test::run_cli(ppl + "--steer " + name + "=" + dir + "/v.st:1");
  ASSERT_EQ(pv.exit_code, 0) << pv.output;
  EXPECT_EQ(estimate(pz), estimate(p0));
  EXPECT_NE(estimate(pv), estimate(p0));
  EXPECT_NE(pv.output.find("Final estimate: PPL = "), std::string::npos) << pv.output;
}

// Each bad input: a clear message, exit 1, and no output file (nor its temporary) left behind.
struct BadCase {
  std::string args, expect;
};

TEST(HooksCli, BadInputIsRefusedAndLeavesNoFile) {
  const std::string dir = scratch("bad");
  const std::string out = dir + "/out.st";
  std::vector<float> row(64, 0.25f), nan_row(64, 0.f), wrong(63, 0.f);
  nan_row[7] = NAN;
  io::write_safetensors(dir + "/wrong.st", {{"blocks.0.hook_resid_pre", DType::kF32, {63}, wrong.data()}});
  io::write_safetensors(dir + "/nan.st", {{"blocks.0.hook_resid_pre", DType::kF32, {64}, nan_row.data()}});
  io::write_safetensors(dir + "/other.st", {{"something_else", DType::kF32, {64}, row.data()}});
  {  // integer values where activations are expected
    io::SafetensorsWriter w(dir + "/int.st", {{"blocks.0.hook_resid_pre", "I64", {64}}});
    const std::vector<int64_t> ints(64, 3);
    w.write(0, 0, ints.data(), ints.size() * sizeof(int64_t));
    w.commit();
  }
  const std::vector<BadCase> cases = {
      {"--hooks blocks.0.hook_resid_psot", "did you mean blocks.0.hook_resid_post"},
      {"--hooks blocks.9.hook_resid_post", "layer 9 is out of range; this model has layers 0..4"},
      {"--hooks 'blocks.*.attn.hook_nothing'", "matches no hook"},
      {"--hooks logits --pattern-queries 16", "--pattern-queries 16 is outside the 16-token prompt"},
      {"--hooks logits --pattern-queries -17", "outside the 16-token prompt"},
      {"--hooks logits --pos 20:30", "selects no position"},
      {"--hooks logits --patch blocks.0.hook_resid_pre=" + dir + "/wrong.st",
       "has shape [63] but the hook"},
      {"--hooks logits --patch blocks.0.hook_resid_pre=" + dir + "/nan.st", "holds NaN at element 7"},
      {"--hooks logits --patch blocks.0.hook_resid_pre=" + dir + "/other.st",
       "has no tensor named blocks.0.hook_resid_pre"},
      {"--hooks logits --patch blocks.0.hook_resid_pre=" + dir + "/int.st", "I64"},
      {"--hooks logits --patch blocks.0.attn.hook_pattern=" + dir + "/other.st",
       "has no tensor named"},
      {"--hooks logits --steer blocks.0.hook_resid_pre=" + dir + "/wrong.st:2", "[64]"},
      {"--hooks logits --patch blocks.0.hook_resid_pre", "expected NAME=FILE.safetensors"},
  };
  for (const BadCase& c : cases) {
    const auto r = trace("-p '" + kPrompt0 + "' " + c.args + " -o " + out);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("internal"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.args;
    EXPECT_FALSE(fs::exists(out + ".tmp")) << c.args;
  }
}

TEST(HooksCli, UnwritableOrFullOutputLeavesNothing) {
  const std::string dir = scratch("full");
  // A folder that does not exist.
  auto r = trace("-p '" + kPrompt0 + "' --hooks logits -o " + dir + "/missing/out.st");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("create the folder or choose another output path"), std::string::npos)
      << r.output;
  // A file-size limit below what the output needs (as a full disk would be): refused before the
  // model runs, and an earlier file of that name stays as it was.
  const std::string out = dir + "/out.st";
  { std::ofstream(out) << "earlier results"; }
  r = test::run_cli("trace -m " + stories() + " -p '" + kPrompt0 +
                    "' --hooks 'blocks.*.mlp.*,logits' -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;  // fits without the limit
  { std::ofstream(out) << "earlier results"; }
  const std::string cmd = "ulimit -f 64; " + test::quote(std::string(LONGCTX_BINARY_DIR) + "/longctx") +
                          " trace -m " + stories() + " -p '" + kPrompt0 +
                          "' --hooks 'blocks.*.mlp.*,logits' -o " + out + " 2>&1";
  FILE* p = popen(("bash -c " + test::quote(cmd)).c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  const int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find("cannot reserve"), std::string::npos) << output;
  std::ifstream f(out);
  std::string content((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(content, "earlier results");
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

// Memory: a longer prompt costs its KV cache and nothing else that grows with it (the captures
// stream to the file; pattern rows are two queries), and peak RSS stays within the plan.
TEST(HooksCli, MemoryGrowsOnlyByTheKvCache) {
#ifdef LONGCTX_SANITIZE
  GTEST_SKIP() << "peak RSS is meaningless under AddressSanitizer";
#endif
  RandomCheckpointOptions o;
  o.config_json = test::kHeadHeavyConfig;
  o.dtype = DType::kBF16;
  const std::string model = test::random_checkpoint_dir("trace_memory_model", o);
  const std::string dir = scratch("memory");
  auto run = [&](int words, double* plan_mib) {
    const std::string p = dir + "/p" + std::to_string(words) + ".txt";
    {
      std::ofstream f(p);
      f << "a";
      for (int i = 1; i < words; ++i) f << " b";
    }
    const auto r = test::run_cli_argv(
        {"trace", "-m", model, "-f", p, "--kv-dtype", "f32", "-t", "2", "--hooks",
         "blocks.*.hook_resid_post,blocks.*.attn.hook_pattern", "--pos", "-16:",
         "--pattern-queries", "-1,-2", "-o", dir + "/out.st"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::smatch m;
    static const std::regex re("plan ([0-9.]+) MiB");
    EXPECT_TRUE(std::regex_search(r.output, m, re)) << r.output;
    *plan_mib = m.empty() ? 0 : std::stod(m[1]);
    return r.max_rss_kib / 1024.0;
  };
  double plan_small = 0, plan_large = 0;
  const double small = run(1000, &plan_small);
  const double large = run(6000, &plan_large);
  const double kv_diff = 5000 * 4096.0 / 1048576.0;  // 2 layers x 2 heads x 128 x f32 x (k, v)
  EXPECT_LE(small, plan_small) << "peak above the plan";
  EXPECT_LE(large, plan_large) << "peak above the plan";
  EXPECT_LE(large - small, kv_diff + 4.0)
      << "1k: " << small << " MiB, 6k: " << large << " MiB, KV difference " << kv_diff;

  // Full patterns over 2000 x 2000 positions (2 layers x 2 heads x 4 bytes: 61 MiB) do not fit
  // a 48 MiB budget: refused, naming the alternatives, which do fit.
  const std::string p = dir + "/p2000.txt";
  {
    std::ofstream f(p);
    f << "a";
    for (int i = 1; i < 1999; ++i) f << " b";
  }
  auto r = test::run_cli_argv({"trace", "-m", model, "-f", p, "--mem-budget", "48MiB", "--hooks",
                               "blocks.*.attn.hook_pattern", "-o", dir + "/full.st"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("more than the memory budget"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--pattern-queries"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pattern_key_mass"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/full.st"));
  r = test::run_cli_argv({"trace", "-m", model, "-f", p, "--mem-budget", "48MiB", "--hooks",
                          "blocks.*.attn.hook_pattern,blocks.*.attn.pattern_key_mass",
                          "--pattern-queries", "-1", "-o", dir + "/rows.st"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace longctx
