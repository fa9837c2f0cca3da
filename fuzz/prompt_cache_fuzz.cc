// libFuzzer harness for prompt-cache files (runtime/prompt_cache.h): any input is either refused
// with a reason, leaving the session empty, or loaded into a session that then runs; never a
// crash, an over-read or an allocation past the context. Each input is loaded against a tiny
// random model (written once into a temporary folder) with f16 and with int4 KV.
//
// The seed corpus (fuzz/corpus/prompt_cache) holds valid files of that model, written by
//   build-fuzz/fuzz/prompt_cache_fuzz -make_seeds=fuzz/corpus/prompt_cache
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "runtime/prompt_cache.h"
#include "runtime/session.h"

using namespace longctx;

namespace {

std::unique_ptr<Model> g_model;
std::unique_ptr<ThreadPool> g_pool;

SessionOptions options(KvType kv) {
  SessionOptions so;
  so.context = 96;
  so.prefill_chunk = 32;
  so.kv_k = so.kv_v = kv;
  return so;
}

std::vector<int32_t> prompt(int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(1 + (i * 7) % 60);
  return ids;
}

void load_model() {
  // A 16-token block size would be nicer, but the cache shape is the real one: 256-token blocks,
  // so every file holds one block per layer.
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("longctx-fuzz-pc-" + std::to_string(getpid())))
          .string();
  RandomCheckpointOptions o;
  o.config_json = R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
    "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 64,
    "max_position_embeddings": 128, "sliding_window": 40})";
  o.dtype = DType::kF32;
  o.seed = 3;
  write_random_checkpoint(dir, o);
  g_model = Model::load(dir);
  std::filesystem::remove_all(dir);
  g_pool = std::make_unique<ThreadPool>(1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  load_model();
  for (int i = 1; i < *argc; ++i) {
    const std::string a = (*argv)[i];
    if (a.rfind("-make_seeds=", 0) != 0) continue;
    const std::string out = a.substr(12);
    std::filesystem::create_directories(out);
    int k = 0;
    for (const KvType kv : {KvType::kF16, KvType::kInt4})
      for (const int n : {5, 37, 70}) {  // window 40: 70 tokens recycle nothing (one block)
        Session s(*g_model, *g_pool, options(kv));
        s.append(prompt(n));
        save_prompt_cache(s, out + "/seed-" + std::to_string(k++));
      }
    std::exit(0);
  }
  return 0;
}

namespace {
void try_load(const uint8_t* data, size_t size, KvType kv) {
  Session s(*g_model, *g_pool, options(kv));
  const std::vector<int32_t> p = prompt(80);
  const PromptCacheLoad r = load_prompt_cache(s, data, size, p);
  if (!r.refused.empty()) {
    if (r.reused != 0 || s.n_past() != 0) __builtin_trap();  // a refusal uses nothing
    return;
  }
  if (r.reused <= 0 || r.reused >= static_cast<int64_t>(p.size()) || s.n_past() != r.reused)
    __builtin_trap();
  for (int64_t i = 0; i < r.reused; ++i)
    if (s.tokens()[static_cast<size_t>(i)] != p[static_cast<size_t>(i)]) __builtin_trap();
  // The loaded state runs: the rest of the prompt and a decode step.
  try {
    s.append(std::vector<int32_t>(p.begin() + r.reused, p.end()));
    s.append({3});
  } catch (const Error&) {
    __builtin_trap();  // a file that loads must leave a session that works
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try_load(data, size, KvType::kF16);
  try_load(data, size, KvType::kInt4);
  return 0;
}
