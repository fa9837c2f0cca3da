// The planner's figures against numbers worked by hand from published configs.
#include "plan/memory_plan.h"

#include <gtest/gtest.h>

#include <regex>

#include "core/error.h"
#include "model/decoder.h"
#include "model/presets.h"
#include "model/quant_scheme.h"
#include "plan/plan_test_util.h"

namespace longctx {
namespace {

using plantest::budget;
using plantest::kGiB;
using plantest::preset;

TEST(PlanSeedFigures, Llama3KvCacheBytes) {
  const PlanModel m = preset("llama-3-8b");
  PlanRequest r;
  r.context = 8192;
  const MemoryPlan p = make_plan(m, r, budget(1000 * kGiB));
  // 32 layers x 8 kv heads x 128 x 2 bytes x 2 (K, V)
  EXPECT_EQ(p.kv_bytes_per_token, 131072u);
  EXPECT_EQ(p.kv_total, 1073741824u);
  r.batch = 32;
  EXPECT_EQ(make_plan(m, r, budget(1000 * kGiB)).kv_total, 34359738368u);
  EXPECT_EQ(make_plan(preset("llama-3-70b"), r, budget(1000 * kGiB)).kv_bytes_per_token, 327680u);
}

TEST(PlanSeedFigures, MaskThatIsNeverBuilt) {
  EXPECT_EQ(mask_elements(preset("mistral-7b-v0.1").cfg, 32768), 34359738368u);
  const size_t phi = mask_elements(preset("phi-3.5-mini").cfg, 131072);
  EXPECT_EQ(phi, size_t{32} * 131072 * 131072);
  EXPECT_GT(phi, 500 * kGiB);
}

TEST(PlanSeedFigures, ParameterCountsOfPublishedModels) {
  // Published sizes: Llama 3 8B has 8,030,261,248 parameters; TinyLlama 1,100,048,384.
  EXPECT_EQ(count_parameters(preset("llama-3-8b").cfg), 8030261248u);
  EXPECT_EQ(count_parameters(preset("tinyllama-1.1b").cfg), 1100048384u);
  // Qwen2.5-0.5B: 494,032,768 (tied embeddings, q/k/v biases).
  EXPECT_EQ(count_parameters(preset("qwen2.5-0.5b").cfg), 494032768u);
}

TEST(PlanRefusal, NamesRequestBytesAndSettingsThatFit) {
  const PlanModel m = preset("phi-3.5-mini");
  PlanRequest r;
  r.context = 131072;
  const MemoryBudget b = budget(24 * kGiB);
  const MemoryPlan p = make_plan(m, r, b);
  ASSERT_FALSE(p.fits());
  const std::string msg = refusal_message(m, r, p);
  EXPECT_NE(msg.find("context 131072"), std::string::npos) << msg;
  EXPECT_NE(msg.find("48.0 GiB of KV cache (f16)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7.1 GiB of weights"), std::string::npos) << msg;
  EXPECT_NE(msg.find("24.0 GiB available"), std::string::npos) << msg;
  // Every suggested -c fits, and is the largest (to 1024) that does.
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(msg, mm, std::regex("These fit: -c ([0-9]+) \\(f16\\)"))) << msg;
  const int64_t ctx = std::stoll(mm[1]);
  PlanRequest ok = r;
  ok.context = ctx;
  EXPECT_TRUE(make_plan(m, ok, b).fits());
  ok.context = ctx + 1024;
  EXPECT_FALSE(make_plan(m, ok, b).fits());
  // int8 and int4 are offered, each at the largest context (to 1024) that fits with it.
  EXPECT_EQ(msg.find("Once int8/int4"), std::string::npos) << msg;
  for (const char* t : {"int8", "int4"}) {
    ASSERT_TRUE(std::regex_search(
        msg, mm, std::regex(std::string("--kv-dtype ") + t + " -c ([0-9]+)")))
        << t << ": " << msg;
    PlanRequest q = r;
    q.kv = parse_kv_type(t);
    q.context = std::stoll(mm[1]);
    EXPECT_TRUE(make_plan(m, q, b).fits()) << t;
    EXPECT_GT(q.context, ctx) << t;  // smaller entries fit more tokens
    if (q.context == m.cfg.max_position_embeddings) continue;  // capped at the model's maximum
    q.context += 1024;
    EXPECT_FALSE(make_plan(m, q, b).fits()) << t;
  }
}

TEST(PlanRefusal, MixedKeyValueTypesAreNamed) {
  const PlanModel m = preset("phi-3.5-mini");
  PlanRequest r;
  r.context = 131072;
  r.kv_k = KvType::kInt8;
  r.kv_v = KvType::kInt4;
  const MemoryPlan p = make_plan(m, r, budget(8 * kGiB));
  ASSERT_FALSE(p.fits());
  const std::string msg = refusal_message(m, r, p);
  EXPECT_NE(msg.find("of KV cache (k int8, v int4)"), std::string::npos) << msg;
  // The same setting at a smaller context, then a smaller uniform type.
  EXPECT_TRUE(std::regex_search(msg, std::regex("These fit: -c [0-9]+ \\(k int8, v int4\\); "
                                                "--kv-dtype int4 -c [0-9]+;")))
      << msg;
  // Then the quantized weights that would fit, smallest context gain last.
  EXPECT_TRUE(std::regex_search(
      msg, std::regex("with Q4_K_M weights \\(about [0-9.]+ GiB: longctx quantize --type "
                      "q4_k_m\\) -c [0-9]+")))
      << msg;
}

// Quantized weights are priced as llama-quantize lays them out: Meta-Llama-3-8B's files from
// llama.cpp are 8,540,770,592 bytes (Q8_0) and 4,920,734,496 bytes (Q4_K_M), metadata included.
TEST(PlanQuantized, WeightBytesOfLlama3_8BMatchLlamaCppFiles) {
  const ModelConfig c = preset("llama-3-8b").cfg;
  EXPECT_NEAR(double(quantized_weight_bytes(c, QuantScheme::kQ8_0)), 8540770592.0, 0.005 * 8.54e9);
  EXPECT_NEAR(double(quantized_weight_bytes(c, QuantScheme::kQ4_K_M)), 4920734496.0,
              0.01 * 4.92e9);
}

// A Q4_K_M request that does not fit in BF16 is named with its size.
TEST(PlanQuantized, RefusalNamesTheQuantizedWeightsThatFit) {
  const PlanModel m = preset("llama-3-8b");
  PlanRequest r;
  r.context = 8192;
  const MemoryPlan p = make_plan(m, r, budget(8 * kGiB));
  ASSERT_FALSE(p.fits());
  const std::string msg = refusal_message(m, r, p);
  EXPECT_NE(
      msg.find("with Q4_K_M weights (about 4.6 GiB: longctx quantize --type q4_k_m) -c 8192"),
      std::string::npos)
      << msg;
}

TEST(PlanRefusal, WeightsAloneTooLarge) {
  const PlanModel m = preset("llama-3-70b");
  PlanRequest r;
  r.context = 4096;
  const MemoryPlan p = make_plan(m, r, budget(24 * kGiB));
  EXPECT_FALSE(p.fits());
  // No setting of one process fits (132.7 GiB of weights); a pipeline of 6 ranks of 24 GiB does
  // (5 would hold 26.3 GiB of weights each).
  const std::string msg = refusal_message(m, r, p);
  EXPECT_EQ(msg.find("-c "), std::string::npos) << msg;
  EXPECT_NE(msg.find("These fit: the asked context on 6 ranks of this budget (mpirun -np 6"),
            std::string::npos)
      << msg;
  // Without the pipeline either, nothing fits.
  const MemoryPlan tiny = make_plan(m, r, budget(2 * kGiB));
  EXPECT_NE(refusal_message(m, r, tiny).find("No context fits"), std::string::npos);
}

TEST(PlanContextPolicy, DefaultIsTheLargestThatFitsCappedAtTheModelMaximum) {
  const PlanModel m = preset("phi-3.5-mini");
  const MemoryBudget b = budget(16 * kGiB);
  const MemoryPlan p = make_plan(m, PlanRequest{}, b);
  EXPECT_TRUE(p.fits());
  EXPECT_LT(p.context, 131072);
  EXPECT_EQ(p.context % kKvBlockTokens, 0);
  // "Fits" keeps room for a full auto chunk (kMaxAutoChunk tokens of activations).
  PlanRequest more;
  more.context = p.context + kKvBlockTokens;
  more.prefill_chunk = kMaxAutoChunk;
  EXPECT_FALSE(make_plan(m, more, b).fits());
  // A small model on a big budget gets its full context.
  EXPECT_EQ(make_plan(preset("tinyllama-1.1b"), PlanRequest{}, b).context, 2048);
}

TEST(PlanChunk, AutoTakesTheLargestChunkThatFitsTheHeadroom) {
  const PlanModel m = preset("llama-3-8b");
  PlanRequest r;
  r.context = 8192;
  const MemoryPlan roomy = make_plan(m, r, budget(40 * kGiB));
  EXPECT_TRUE(roomy.chunk_auto);
  EXPECT_EQ(roomy.prefill_chunk, kMaxAutoChunk);
  // Leave room for weights + KV + overhead + the activations of exactly 64 tokens.
  const MemoryPlan at64 = [&] {
    PlanRequest f = r;
    f.prefill_chunk = 64;
    return make_plan(m, f, budget(1000 * kGiB));
  }();
  const MemoryPlan tight = make_plan(m, r, budget(at64.total + 1));
  EXPECT_TRUE(tight.fits());
  EXPECT_EQ(tight.prefill_chunk, 64);
  // Activation memory grows with the chunk and is what the decoder allocates.
  EXPECT_GE(tight.activations, Activations::bytes_for(m.cfg, 64));
  EXPECT_LT(tight.activations, roomy.activations);
}

TEST(PlanKvTypes, QuantizedTypesPricedWithScales) {
  const PlanModel m = preset("llama-3-8b");
  PlanRequest r;
  r.context = 1024;
  r.kv = KvType::kInt8;
  // 32 x 8 x 128 x 2 = 65536 values per token; int8 + an f16 scale per 32 = 65536 x 34/32.
  EXPECT_EQ(make_plan(m, r, budget(100 * kGiB)).kv_bytes_per_token, 69632u);
  // int4 values: 4 bits + f16 scale and minimum per 32 values = 20 bytes / 32;
  // int4 keys: 4 bits + f16 scale and minimum per channel per 16 tokens = 24 bytes / 32.
  r.kv = KvType::kInt4;
  const MemoryPlan p4 = make_plan(m, r, budget(100 * kGiB));
  EXPECT_EQ(p4.kv_bytes_per_token, 32u * 8 * 128 * (24 + 20) / 32);
  // The f32 group of newest keys: 32 layers x 8 heads x 16 tokens x 128 x 4 bytes, once.
  EXPECT_EQ(p4.kv_total, p4.kv_bytes_per_token * 1024 + 32u * 8 * 16 * 128 * 4);
  r.kv = KvType::kF16;
  r.kv_k = KvType::kInt8;  // keys int8, values f16
  EXPECT_EQ(make_plan(m, r, budget(100 * kGiB)).kv_bytes_per_token, 32u * 8 * (136 + 256));
  EXPECT_THROW(parse_kv_type("q8_0"), Error);
}

}  // namespace
}  // namespace longctx
