// Memory does not depend on the context cap: the KV cache grows as tokens arrive.
#include <gtest/gtest.h>

#include <fstream>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

// Head-heavy and compute-light (test::kHeadHeavyConfig): 4 KiB of f32 KV per token, so 8192
// tokens hold 32 MiB of KV while the weights stay tiny.

std::string model() {
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json = test::kHeadHeavyConfig;
    o.dtype = DType::kBF16;
    return test::random_checkpoint_dir("memory_model", o);
  }();
  return dir;
}

std::string prompt_file(int words) {
  const std::string path = test::scratch_dir("memory_prompt_" + std::to_string(words)) + "/p.txt";
  std::ofstream f(path);
  f << "a";
  for (int i = 1; i < words; ++i) f << " b";  // " b" is one token of the synthetic vocabulary
  return path;
}

double peak(const std::string& args) {
#ifdef LONGCTX_SANITIZE
  return 0;  // resident memory under AddressSanitizer measures its shadow memory, not ours
#endif
  const auto r = test::run_cli("run -m " + model() + " " + args + " -n 1 --kv-dtype f32 -t 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return test::peak_rss_mib(r.output);
}

#ifdef LONGCTX_SANITIZE
#define SKIP_UNDER_SANITIZER() GTEST_SKIP() << "peak RSS is meaningless under AddressSanitizer"
#else
#define SKIP_UNDER_SANITIZER() (void)0
#endif

TEST(Memory, ContextCapAllocatesNothing) {
  SKIP_UNDER_SANITIZER();
  const std::string p = prompt_file(400);
  const double small = peak("-c 512 -f " + p);
  const double large = peak("-c 8192 -f " + p);
  ASSERT_GT(small, 0);
  EXPECT_LE(large - small, 4.0) << "c512 " << small << " MiB, c8192 " << large << " MiB";
}

TEST(Memory, FilledContextCostsOnlyItsKvCache) {
  SKIP_UNDER_SANITIZER();
  const double kv_per_token_mib = 4096.0 / 1048576.0;
  const double small = peak("-c 512 -f " + prompt_file(500));
  const double large = peak("-c 8192 -f " + prompt_file(8000));
  ASSERT_GT(small, 0);
  const double kv_diff = (8001 - 501) * kv_per_token_mib;  // + BOS
  EXPECT_LE(large - small, kv_diff + 6.0)
      << "c512 " << small << " MiB, c8192 " << large << " MiB, KV difference " << kv_diff;
  EXPECT_GE(large - small, kv_diff * 0.9) << "the KV cache was not resident?";
}

// Mistral-shaped (every layer a 512-token sliding window): during a long decode, resident memory
// stops growing once the window is full. Without recycling, 2000 more tokens would add 8 MiB.
TEST(Memory, SlidingWindowDecodeStopsGrowing) {
  SKIP_UNDER_SANITIZER();
  static const std::string dir = [] {
    RandomCheckpointOptions o;
    o.config_json =
        R"({"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
            "head_dim": 128, "vocab_size": 300, "max_position_embeddings": 8192,
            "sliding_window": 512, "bos_token_id": 1, "eos_token_id": 2})";
    o.dtype = DType::kBF16;
    return test::random_checkpoint_dir("memory_mistral", o);
  }();
  auto run = [&](int n) {
    const auto r = test::run_cli("run -m " + dir + " -p a -c 4096 --kv-dtype f32 -t 2 --ignore-eos "
                                 "--prefill-chunk 64 -n " + std::to_string(n));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return test::peak_rss_mib(r.output);
  };
  const double at1000 = run(1000);
  const double at3000 = run(3000);
  ASSERT_GT(at1000, 0);
  EXPECT_LE(at3000 - at1000, 1.0) << "n=1000: " << at1000 << " MiB, n=3000: " << at3000 << " MiB";
}

}  // namespace
}  // namespace longctx
