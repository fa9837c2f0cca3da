// `longctx run` end to end on a real trained checkpoint.
#include <gtest/gtest.h>

#include <regex>

#include "core/huge_pages.h"
#include "integration/cli_util.h"
#include "model/test_util.h"

namespace longctx {
namespace {

TEST(CliRun, GreedyTextMatchesGoldenAndSummaryLineIsPrinted) {
  const std::string dir = test::model_path("stories260K");
  const auto golden = test::read_json(dir + "/golden.json");
  const auto& c = golden["cases"][1];
  const std::string prompt = c["prompt_text"];
  const auto r = test::run_cli("run -m " + test::quote(dir) + " -p " + test::quote(prompt) +
                               " -n " + std::to_string(c["greedy_ids"].size()) + " -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The prompt, then the continuation with its leading space (as it reads after the prompt).
  EXPECT_NE(r.output.find(prompt + " " + c["greedy_text"].get<std::string>()), std::string::npos)
      << r.output;
  for (const char* field : {"prompt 16 tok", "generated 24 tok", "prefill ", "decode ",
                            "peak RSS "})
    EXPECT_NE(r.output.find(field), std::string::npos) << field << "\n" << r.output;
}

TEST(CliRun, ChunkSizeAndKvDtypeDoNotChangeGreedyText) {
  const std::string dir = test::model_path("stories260K");
  const std::string base = "run -m " + test::quote(dir) + " -p 'Tom and his dog went' -n 20 ";
  const auto a = test::run_cli(base + "--prefill-chunk 1 --kv-dtype f32");
  const auto b = test::run_cli(base + "--prefill-chunk 64 --kv-dtype f32");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const auto text = [](const std::string& out) { return out.substr(out.find("Tom and")); };
  const auto line = [&](const std::string& out) {
    const std::string t = text(out);
    return t.substr(0, t.find('\n'));
  };
  EXPECT_EQ(line(a.output), line(b.output));
}

TEST(CliRun, MappedAndResidentWeightsGiveTheSameText) {
  const std::string dir = test::model_path("stories260K");
  const std::string base = "run -m " + test::quote(dir) + " -p 'Tom and his dog went' -n 20 ";
  const auto a = test::run_cli(base);
  const auto b = test::run_cli(base + "--mmap");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("| weights mapped |"), std::string::npos) << b.output;
  if (transparent_huge_pages_available()) {
    EXPECT_NE(a.output.find("| weights on huge pages |"), std::string::npos) << a.output;
  }
  const auto line = [](const std::string& out) {
    const std::string t = out.substr(out.find("Tom and"));
    return t.substr(0, t.find('\n'));
  };
  EXPECT_EQ(line(a.output), line(b.output));
}

TEST(CliRun, SamplingIsReproducibleWithASeed) {
  const std::string dir = test::model_path("stories260K");
  const std::string args = "run -m " + test::quote(dir) +
                           " -p 'Once upon a time' -n 30 --temp 0.9 --top-k 40 --top-p 0.95 "
                           "--min-p 0.05 --repeat-penalty 1.1 --seed 11";
  const auto a = test::run_cli(args);
  const auto b = test::run_cli(args);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  const auto first_line = [](const std::string& s) {
    const std::string t = s.substr(s.find("Once upon"));
    return t.substr(0, t.find('\n'));
  };
  EXPECT_EQ(first_line(a.output), first_line(b.output));
}

// The live progress line: on with --progress even though stderr is a pipe here; off by default
// (not a terminal) and with --no-progress. The text is the same either way.
TEST(CliRun, ProgressLineWhenAskedFor) {
  const std::string dir = test::model_path("stories260K");
  const std::string base = "run -m " + test::quote(dir) + " -p 'Tom and his dog went' -n 8 ";
  const auto on = test::run_cli(base + "--progress");
  const auto plain = test::run_cli(base);
  const auto off = test::run_cli(base + "--no-progress");
  ASSERT_EQ(on.exit_code, 0) << on.output;
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  ASSERT_EQ(off.exit_code, 0) << off.output;
  static const std::regex line(
      "\rprefill ([0-9]+)/\\1 tok \\| [0-9]+ tok/s \\| in [0-9.]+ s \\| RSS [0-9.]+ [KMG]iB of plan "
      "[0-9.]+ [KMG]iB *\n");
  EXPECT_TRUE(std::regex_search(on.output, line)) << on.output;
  for (const auto* r : {&plain, &off})
    EXPECT_EQ(r->output.find("\rprefill"), std::string::npos) << r->output;
  const auto text = [](const std::string& out) {
    const std::string t = out.substr(out.find("Tom and"));
    return t.substr(0, t.find('\n'));
  };
  EXPECT_EQ(text(on.output), text(plain.output));
}

TEST(CliRun, DefaultJobRunsWithoutArguments) {
  const auto r = test::run_cli("run -n 8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("peak RSS"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace longctx
