// Prompt-cache files (runtime/prompt_cache.h): a resumed session gives exactly what an
// uninterrupted one gives; a file that does not match the run, or is damaged anywhere that
// matters, is refused with the reason and never used.
#include "runtime/prompt_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

const Model& stories() {
  static const auto m = Model::load(test::model_path("stories260K"));
  return *m;
}

std::vector<int32_t> random_ids(int n, uint32_t seed) {
  std::vector<int32_t> ids = {1};
  for (uint32_t s = seed; static_cast<int>(ids.size()) < n;) {
    s = s * 1664525u + 1013904223u;
    ids.push_back(3 + static_cast<int32_t>((s >> 8) % 500));
  }
  return ids;
}

SessionOptions options(KvType kv, int64_t planned = 0) {
  SessionOptions so;
  so.context = 512;
  so.prefill_chunk = 512;
  so.kv_k = so.kv_v = kv;
  so.planned_tokens = planned;
  return so;
}

std::string temp_file(const std::string& name) {
  static const std::string dir = test::scratch_dir("prompt-cache");
  return dir + "/" + name;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

struct Resume : ::testing::TestWithParam<KvType> {};

// A 300-token prompt is saved; later prompts extend it, equal it, or leave it mid-block (at 280,
// inside the second 256-token block). The resumed session runs the rest; an uninterrupted one
// runs the same tokens in the same chunks. Their logits and greedy tokens must be identical (the
// same codes in the cache, the same arithmetic), and close to one chunk of the whole prompt.
TEST_P(Resume, GivesTheLogitsAndTokensOfAnUninterruptedRun) {
  const KvType kv = GetParam();
  ThreadPool pool(2);
  const std::vector<int32_t> cached = random_ids(300, 11);
  const std::string path = temp_file(std::string("resume-") + kv_type_name(kv));
  {
    Session s(stories(), pool, options(kv));
    s.append(cached);
    save_prompt_cache(s, path);
  }
  std::vector<int32_t> extend = cached, diverge(cached.begin(), cached.begin() + 280);
  for (int32_t t : random_ids(60, 99)) extend.push_back(t), diverge.push_back(t);
  const struct {
    const char* name;
    std::vector<int32_t> prompt;
    int64_t reused;
  } cases[] = {{"extends", extend, 300},
               {"equals", cached, kv == KvType::kInt4 ? 288 : 299},
               {"diverges mid-block", diverge, kv == KvType::kInt4 ? 272 : 280}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Session resumed(stories(), pool, options(kv));
    const PromptCacheLoad got = load_prompt_cache(resumed, path, c.prompt);
    ASSERT_TRUE(got.found);
    ASSERT_EQ(got.refused, "");
    EXPECT_EQ(got.cached, 300);
    ASSERT_EQ(got.reused, c.reused);
    EXPECT_EQ(resumed.n_past(), c.reused);
    const std::vector<int32_t> rest(c.prompt.begin() + c.reused, c.prompt.end());
    std::vector<float> a = resumed.append(rest);

    Session whole(stories(), pool, options(kv));
    whole.append(std::vector<int32_t>(c.prompt.begin(), c.prompt.begin() + c.reused));
    std::vector<float> b = whole.append(rest);
    ASSERT_EQ(a, b);
    // The cached codes are the uninterrupted run's, bit for bit.
    for (int l = 0; l < resumed.kv().shape().n_layers; ++l)
      EXPECT_EQ(std::memcmp(resumed.kv().block_bytes(l, 0), whole.kv().block_bytes(l, 0),
                            resumed.kv().shape().bytes_per_layer_block()),
                0)
          << "layer " << l;
    for (int step = 0; step < 12; ++step) {
      const int32_t ta = static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin());
      const int32_t tb = static_cast<int32_t>(std::max_element(b.begin(), b.end()) - b.begin());
      ASSERT_EQ(ta, tb) << "step " << step;
      a = resumed.append({ta});
      b = whole.append({tb});
      ASSERT_EQ(a, b) << "step " << step;
    }
    if (kv == KvType::kF32) {  // and within 1e-6 of one pass over the whole prompt
      Session one(stories(), pool, options(kv));
      const std::vector<float>& c1 = one.append(c.prompt);
      Session again(stories(), pool, options(kv));
      ASSERT_EQ(load_prompt_cache(again, path, c.prompt).reused, c.reused);
      const std::vector<float>& c2 = again.append(rest);
      float scale = 1.f, worst = 0.f;
      for (float x : c1) scale = std::max(scale, std::abs(x));
      for (size_t j = 0; j < c1.size(); ++j) worst = std::max(worst, std::abs(c1[j] - c2[j]));
      EXPECT_LE(worst / scale, 1e-6);
    }
  }
  fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(KvTypes, Resume,
                         ::testing::Values(KvType::kF32, KvType::kF16, KvType::kInt8,
                                           KvType::kInt4),
                         [](const auto& info) { return std::string(kv_type_name(info.param)); });

// Every byte of the header flipped, a sample of bytes in every block flipped, every truncation at
// a block boundary (and within the header), and bytes appended: each is refused, and the session
// stays empty.
TEST(PromptCacheCorruption, EveryFlipAndTruncationIsRefused) {
  for (const KvType kv : {KvType::kF16, KvType::kInt4}) {
    SCOPED_TRACE(kv_type_name(kv));
    ThreadPool pool(1);
    const std::vector<int32_t> prompt = random_ids(300, 5);
    const std::string path = temp_file("corrupt");
    {
      Session s(stories(), pool, options(kv));
      s.append(prompt);
      save_prompt_cache(s, path);
    }
    const std::vector<uint8_t> good = read_all(path);
    uint64_t hlen = 0;
    std::memcpy(&hlen, good.data() + 16, 8);
    const size_t data0 = 32 + hlen;
    const size_t bb = Session(stories(), pool, options(kv)).kv().shape().bytes_per_layer_block();
    ASSERT_GT(good.size(), data0 + bb);
    Session s(stories(), pool, options(kv));  // refusals leave it empty: one serves every case
    auto refused = [&](const std::vector<uint8_t>& bytes, const std::string& what) {
      const PromptCacheLoad r = load_prompt_cache(s, bytes.data(), bytes.size(), prompt);
      EXPECT_NE(r.refused, "") << what;
      EXPECT_EQ(r.reused, 0) << what;
      EXPECT_EQ(s.n_past(), 0) << what;
      return !r.refused.empty();
    };
    {  // the intact file is used
      Session ok(stories(), pool, options(kv));
      ASSERT_EQ(load_prompt_cache(ok, path, prompt).refused, "");
    }
    int n = 0;
    for (size_t i = 0; i < data0; ++i) {
      std::vector<uint8_t> b = good;
      b[i] ^= 0x5A;
      n += refused(b, "header byte " + std::to_string(i));
    }
    EXPECT_EQ(n, static_cast<int>(data0));
    // Blocks (and int4's pending keys after them): their first and last byte and 30 others each.
    std::mt19937 rng(3);
    for (size_t at = data0; at < good.size(); at += bb) {
      const size_t end = std::min(good.size(), at + bb);
      std::vector<size_t> where = {at, end - 1};
      for (int k = 0; k < 30; ++k) where.push_back(at + rng() % (end - at));
      for (size_t i : where) {
        std::vector<uint8_t> b = good;
        b[i] ^= 0x01;
        refused(b, "data byte " + std::to_string(i));
      }
    }
    std::vector<size_t> lengths;
    for (size_t len = 0; len < data0; len += 7) lengths.push_back(len);
    for (size_t len = data0; len < good.size(); len += bb) {  // every block boundary, and halfway
      lengths.push_back(len);
      lengths.push_back(std::min(good.size() - 1, len + bb / 2));
    }
    lengths.push_back(good.size() - 1);
    for (size_t len : lengths)
      refused(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(len)),
              "truncated to " + std::to_string(len));
    std::vector<uint8_t> longer = good;
    longer.push_back(0);
    refused(longer, "one byte appended");
    fs::remove(path);
  }
}

// A cache from another model, another KV type or other RoPE factors is refused with the reason.
TEST(PromptCacheMismatch, AnotherModelKvTypeOrRopeFactorsIsRefusedWithTheReason) {
  ThreadPool pool(1);
  const std::vector<int32_t> prompt = random_ids(40, 8);
  const std::string path = temp_file("mismatch");
  {
    Session s(stories(), pool, options(KvType::kF16));
    s.append(prompt);
    save_prompt_cache(s, path);
  }
  {
    Session s(stories(), pool, options(KvType::kInt8));
    const PromptCacheLoad r = load_prompt_cache(s, path, prompt);
    EXPECT_NE(r.refused.find("another key type"), std::string::npos) << r.refused;
  }
  {
    const auto other = Model::load(test::model_path("babyllama-tok105"));
    Session s(*other, pool, options(KvType::kF16));
    const PromptCacheLoad r = load_prompt_cache(s, path, prompt);
    EXPECT_NE(r.refused.find("another model"), std::string::npos) << r.refused;
  }
  {  // a prompt that shares nothing
    Session s(stories(), pool, options(KvType::kF16));
    std::vector<int32_t> other = random_ids(40, 1234567);
    other[0] = 7;  // not even the BOS in common
    const PromptCacheLoad r = load_prompt_cache(s, path, other);
    EXPECT_NE(r.refused.find("no prefix"), std::string::npos) << r.refused;
  }
  // LongRoPE: keys rotated with the short factors are refused by a run planned past
  // original_max_position_embeddings (the long factors).
  RandomCheckpointOptions o;
  o.config_json = R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 512,
    "max_position_embeddings": 512, "original_max_position_embeddings": 64,
    "rope_scaling": {"type": "longrope", "short_factor": [1,1,1,1,1,1,1,1],
                     "long_factor": [1,2,3,4,5,6,7,8]}})";
  o.dtype = DType::kF32;
  const auto phi = Model::load(test::random_checkpoint_dir("phi3-longrope", o));
  const std::string phi_path = temp_file("phi3-cache");
  {
    Session s(*phi, pool, options(KvType::kF32, 48));
    s.append(prompt);
    save_prompt_cache(s, phi_path);
  }
  {
    Session s(*phi, pool, options(KvType::kF32, 48));
    EXPECT_EQ(load_prompt_cache(s, phi_path, prompt).refused, "");
  }
  {
    Session s(*phi, pool, options(KvType::kF32, 300));
    const PromptCacheLoad r = load_prompt_cache(s, phi_path, prompt);
    EXPECT_NE(r.refused.find("other RoPE factors"), std::string::npos) << r.refused;
    EXPECT_NE(r.refused.find("long factors"), std::string::npos) << r.refused;
  }
  fs::remove(path);
  fs::remove(phi_path);
}

TEST(PromptCacheFile, MissingFileIsNotAnErrorAndSavingIsAtomic) {
  ThreadPool pool(1);
  Session s(stories(), pool, options(KvType::kF16));
  const PromptCacheLoad r = load_prompt_cache(s, temp_file("does-not-exist"), {1, 2, 3});
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.refused, "");
  // A save into a folder that does not exist fails without leaving anything behind.
  s.append(random_ids(20, 2));
  EXPECT_THROW(save_prompt_cache(s, temp_file("no-such-dir/x")), Error);
  EXPECT_FALSE(fs::exists(temp_file("no-such-dir")));
}

}  // namespace
}  // namespace longctx
