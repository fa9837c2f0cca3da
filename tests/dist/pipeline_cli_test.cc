// `mpirun -np N longctx ...` as a user runs it: a context one rank's budget refuses runs on two
// ranks of that budget, each rank within its plan; a killed rank ends the run promptly with a
// message naming it; ranks started with other arguments are refused. Skipped with a message when
// MPI (mpirun, longctx-mpi) is absent.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::quote;

std::string bin(const std::string& name) { return std::string(LONGCTX_BINARY_DIR) + "/" + name; }

bool have_mpi() {
#ifdef LONGCTX_SANITIZE
  // The ranks inherit this: OpenMPI keeps allocations past MPI_Finalize in components it has
  // unloaded by then; memory errors are still checked (tests/dist/CMakeLists.txt).
  setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
#endif
  return fs::exists(bin("longctx-mpi")) && std::system("command -v mpirun >/dev/null 2>&1") == 0;
}

#define REQUIRE_MPI()                                                                     \
  if (!have_mpi())                                                                        \
  GTEST_SKIP() << "MPI is absent (apt-get install libopenmpi-dev openmpi-bin and rebuild: " \
                  "longctx-mpi and mpirun are needed)"

// mpirun with `ranks` ranks of `args` (a shell string): exit code, and the output (stdout only
// unless `with_stderr`: mpirun forwards both and may interleave them mid-line).
CliResult mpirun(int ranks, const std::string& args, bool with_stderr = true) {
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -np " +
                          std::to_string(ranks) + " " + quote(bin("longctx")) + " " + args +
                          (with_stderr ? " 2>&1" : " 2>/dev/null") + " </dev/null";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// A Llama-shaped random checkpoint whose KV cache at 4096 tokens outweighs its weights.
std::string model_dir() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 8,
      "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 2048,
      "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": false})";
    o.dtype = DType::kBF16;
    return test::random_checkpoint_dir("pipeline-cli", o);
  }();
  return dir;
}

// A text of `words` words.
std::string text_file(int words) {
  static const std::string dir = test::scratch_dir("pipeline-text");
  const std::string path = dir + "/text.txt";
  std::ofstream f(path);
  uint32_t s = 99;
  const char* vocab[] = {"the", "cat", "sat", "on", "a", "mat", "while", "rain", "fell",
                         "over", "quiet", "hills", "and", "rivers", "ran", "far"};
  for (int i = 0; i < words; ++i) {
    s = s * 1664525u + 1013904223u;
    f << vocab[(s >> 8) % 16] << (i % 12 == 11 ? ".\n" : " ");
  }
  return path;
}

size_t parse_size_text(const std::string& num, const std::string& unit) {
  double v = std::stod(num);
  if (unit == "KiB") v *= 1024;
  if (unit == "MiB") v *= 1024 * 1024;
  if (unit == "GiB") v *= 1024.0 * 1024 * 1024;
  return static_cast<size_t>(v);
}

TEST(PipelineCli, TwoRanksHoldWhatOneRefusesEachWithinItsPlan) {
  REQUIRE_MPI();
  const std::string m = quote(model_dir());
  // One rank's total at context 4096, and the largest rank's total on two ranks.
  const CliResult one = test::run_cli("plan -m " + m + " -c 4096 -t 1 --json");
  const size_t single = nlohmann::json::parse(one.output).at("total").at("bytes").get<size_t>();
  const CliResult two = test::run_cli("plan -m " + m + " -c 4096 -t 1 --ranks 2 --mem-budget " +
                                      std::to_string(single) + " --json");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  size_t per_rank = 0;
  const nlohmann::json split = nlohmann::json::parse(two.output);
  for (const auto& r : split.at("per_rank"))
    per_rank = std::max(per_rank, r.at("total").get<size_t>());
  ASSERT_LT(per_rank, single);
  const size_t budget = (single + per_rank) / 2;
  // A prompt of 3900-4080 tokens, so the KV cache of every layer fills (run refuses a longer one).
  int words = 3000;
  std::string text;
  for (int tries = 0; tries < 6; ++tries) {
    text = text_file(words);
    const CliResult ids = test::run_cli("tokenize -m " + m + " -f " + quote(text) + " --ids-only");
    ASSERT_EQ(ids.exit_code, 0) << ids.output;
    const long n = std::count(ids.output.begin(), ids.output.end(), ',') + 1;
    if (n >= 3900 && n <= 4080) break;
    words = static_cast<int>(words * 3990.0 / n);
  }
  const std::string args = "run -m " + m + " -f " + quote(text) + " -c 4096 -n 8 --ignore-eos " +
                           "-t 1 --mem-budget " + std::to_string(budget);

  const CliResult refused = test::run_cli(args);
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_NE(refused.output.find("2 ranks of this budget"), std::string::npos) << refused.output;

  const CliResult ran = mpirun(2, args);
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_NE(ran.output.find("generated 8 tok"), std::string::npos) << ran.output;
  // "rank R: ... | plan X of Y | peak RSS Z": every rank's peak within its plan.
  const std::regex line(R"(rank (\d+): [^|]+\| plan ([0-9.]+) (\w+) of [^|]+\| peak RSS ([0-9.]+) (\w+))");
  int ranks = 0;
  for (auto it = std::sregex_iterator(ran.output.begin(), ran.output.end(), line);
       it != std::sregex_iterator(); ++it) {
    const auto& mm = *it;
    const size_t plan = parse_size_text(mm[2], mm[3]), peak = parse_size_text(mm[4], mm[5]);
    EXPECT_LE(plan, budget) << mm[0];
#ifndef LONGCTX_SANITIZE  // resident memory under ASan measures its shadow memory, not ours
    EXPECT_LE(peak, plan) << mm[0];
    EXPECT_GT(peak, plan / 2) << "the cache was not filled: " << mm[0];
#else
    (void)peak;
#endif
    ++ranks;
  }
  EXPECT_EQ(ranks, 2) << ran.output;
}

TEST(PipelineCli, GreedyTextMatchesOneProcess) {
  REQUIRE_MPI();
  const std::string args = "run -m " + quote(std::string(LONGCTX_SHARED_DIR) +
                                             "/models/stories260K") +
                           " -p 'Once upon a time' -n 40 --temp 0 -t 1";
  // The text: the line the prompt starts (the summaries on stderr come through mpirun too).
  auto text = [](const std::string& out) {
    const size_t at = out.find("Once upon a time");
    return at == std::string::npos ? out : out.substr(at, out.find('\n', at) - at);
  };
  const CliResult one = test::run_cli(args);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  ASSERT_GT(text(one.output).size(), 80u) << one.output;
  for (const int ranks : {2, 3}) {
    const CliResult many = mpirun(ranks, args, false);
    ASSERT_EQ(many.exit_code, 0) << many.output;
    EXPECT_EQ(text(many.output), text(one.output)) << ranks << " ranks: " << many.output;
  }
}

TEST(PipelineCli, AKilledRankEndsTheRunWithItsName) {
  REQUIRE_MPI();
  const std::string marker = "pipeline-kill-" + std::to_string(getpid());
  const std::string out = (fs::temp_directory_path() / (marker + ".log")).string();
  // A long generation; its prompt carries a marker to find the ranks' processes by.
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -np 2 " +
                          quote(bin("longctx")) + " run -m " + quote(model_dir()) +
                          " -c 4096 -n 4000 --ignore-eos -t 1 -p " + quote(marker) + " >" +
                          quote(out) + " 2>&1 </dev/null";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Rank 1: the process whose command line has the marker and whose environment says rank 1.
  auto find_rank1 = [&]() -> pid_t {
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream c(e.path() / "cmdline"), env(e.path() / "environ");
      const std::string cl((std::istreambuf_iterator<char>(c)), {});
      const std::string en((std::istreambuf_iterator<char>(env)), {});
      if (cl.find(marker) != std::string::npos &&
          en.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos)
        return static_cast<pid_t>(std::stol(name));
    }
    return 0;
  };
  auto log_has = [&](const std::string& what) {
    std::ifstream f(out);
    const std::string s((std::istreambuf_iterator<char>(f)), {});
    return s.find(what) != std::string::npos;
  };
  pid_t victim = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    // Generating: the prompt (echoed) is out.
    if (log_has(marker) && (victim = find_rank1()) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(victim, 0) << "rank 1 never started generating";
  kill(victim, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - killed < std::chrono::seconds(30))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the run did not end within 30 s of rank 1's death";
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LT(secs, 10.0);
  EXPECT_NE(WEXITSTATUS(status), 0);
  std::ifstream f(out);
  const std::string log((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(log.find("rank 1"), std::string::npos) << log;
  RecordProperty("seconds_to_exit_after_kill", std::to_string(secs));
  fs::remove(out);
}

TEST(PipelineCli, RanksStartedWithOtherArgumentsAreRefused) {
  REQUIRE_MPI();
  const std::string m = quote(std::string(LONGCTX_SHARED_DIR) + "/models/stories260K");
  const std::string longctx = quote(bin("longctx"));
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -np 1 " + longctx +
                          " run -m " + m + " -p hi -n 4 : -np 1 " + longctx + " run -m " + m +
                          " -p hello -n 4 2>&1 </dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  EXPECT_NE(pclose(p), 0) << output;
  EXPECT_NE(output.find("rank 1"), std::string::npos) << output;
  EXPECT_NE(output.find("other arguments"), std::string::npos) << output;
}

// Commands that need one process say so under mpirun, naming the way out.
TEST(PipelineCli, CommandsThatRunInOneProcessSaySo) {
  REQUIRE_MPI();
  const std::string m = quote(std::string(LONGCTX_SHARED_DIR) + "/models/stories260K");
  const struct {
    std::string args, says;
  } cases[] = {{"serve -m " + m, "longctx serve runs in one process"},
               {"bench -m " + m + " -p 16 -n 4 -r 1", "bench measures one process"},
               {"trace -m " + m + " -p hi -o /dev/null --hooks blocks.0.hook_resid_pre",
                "hooks (trace, --patch, --steer, captures) see every layer in one process"},
               {"run -m " + m + " -p hi -n 4 --context-overflow shift",
                "--context-overflow shift runs in one process"}};
  for (const auto& c : cases) {
    const CliResult r = mpirun(2, c.args);
    EXPECT_NE(r.exit_code, 0) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace longctx
