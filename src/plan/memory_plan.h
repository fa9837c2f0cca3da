// The memory planner (DESIGN.md decision 2): before any weight is mapped or cache allocated, a
// MemoryPlan totals weights, KV cache, activations for the prefill chunk and fixed overhead
// against a budget, picks the context and prefill chunk, and words the refusal when nothing fits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "kernels/kv_quant.h"
#include "kv/kv_cache.h"
#include "model/decoder.h"
#include "plan/memory_budget.h"

namespace longctx {

// KV-cache element types (KvType, kernels/kv_quant.h) are priced exactly as stored: bytes per
// token and layer = kv heads x (row bytes of the key type + row bytes of the value type), scales
// and minima of int8/int4 groups included (docs/kv-quantization.md).
size_t kv_bytes_per_token_layer(const ModelConfig& cfg, KvType k, KvType v);

// The model side of a plan: shapes plus bytes of weights as stored.
struct PlanModel {
  ModelConfig cfg;
  size_t weight_bytes = 0;   // bytes of the weight files (what becomes resident once touched)
  int weight_files = 1;      // how many: each resident copy ends in a partly used huge page
  size_t tokenizer_bytes = 0;  // size of the tokenizer file (its in-memory tables scale with it)
  std::string name;
  // Bytes of each layer's tensors, of the token embeddings, and of the rest (final norm, output
  // head, RoPE factor tensors): what each pipeline stage holds (plan/stage_plan.h).
  std::vector<size_t> layer_bytes;
  size_t embed_bytes = 0, head_bytes = 0;
  // xxHash64 of the config and the tensor directory (names, types, shapes, sizes): pipeline ranks
  // compare it to refuse mismatched files. 0 when planned from a config alone.
  uint64_t fingerprint = 0;
};

// Parameters of a config (embeddings, every projection and norm, biases, untied head).
size_t count_parameters(const ModelConfig& cfg);
// From a model folder (config.json plus the sizes of its weight files) or a GGUF file (its
// metadata and tensor directory: each tensor priced at its stored type's bytes). Reads no tensor
// data and maps nothing but a GGUF file's header.
PlanModel plan_model_from_path(const std::string& path);
// From a config alone (preset or --config): weights priced at `weights_dtype` bytes each.
PlanModel plan_model_from_config(const ModelConfig& cfg, size_t weights_dtype_bytes,
                                 const std::string& name);

struct PlanRequest {
  int64_t context = 0;         // 0: the largest that fits, capped at max_position_embeddings
  int batch = 1;
  KvType kv = KvType::kF16;
  std::optional<KvType> kv_k, kv_v;  // keys / values apart (unset: kv)
  int64_t prefill_chunk = 0;   // 0: auto
  int threads = 1;

  KvType key_type() const { return kv_k ? *kv_k : kv; }
  KvType value_type() const { return kv_v ? *kv_v : kv; }
};

struct MemoryPlan {
  int64_t context = 0;
  int batch = 1;
  KvType kv_k = KvType::kF16, kv_v = KvType::kF16;
  int64_t prefill_chunk = 0;
  bool chunk_auto = false;

  size_t weights = 0;
  size_t kv_bytes_per_token = 0;   // all layers, one sequence
  int full_layers = 0, window_layers = 0;
  size_t kv_full = 0;              // full-attention layers, all sequences
  size_t kv_window = 0;            // sliding-window layers, all sequences
  size_t kv_total = 0;
  size_t activations = 0;          // activation buffers + logits for one prefill chunk
  size_t scratch = 0;              // kernel scratch (per thread)
  size_t overhead = 0;             // program, tokenizer tables, small model tensors
  size_t total = 0;
  MemoryBudget budget;

  bool fits() const { return total <= budget.bytes; }
  int64_t headroom() const { return static_cast<int64_t>(budget.bytes) - static_cast<int64_t>(total); }
};

// What the program itself holds resident (code, libraries, runtime) in the plan's fixed overhead,
// calibrated against `longctx run`. A front end that carries more (longctx-serve's HTTP library)
// adds the difference as extra bytes.
constexpr size_t kProgramBytes = size_t{6} << 20;

// Largest prefill chunk the kernels run best at; auto never picks more.
constexpr int64_t kMaxAutoChunk = 512;
// Smallest chunk auto will pick before declaring that nothing fits.
constexpr int64_t kMinAutoChunk = 16;

// Prices `req` for `model` against `budget`. With context 0 it picks the largest context that fits
// (capped at max_position_embeddings); with prefill_chunk 0 it picks the chunk (see
// docs/memory-planner.md). Never throws for a request that does not fit: check fits().
MemoryPlan make_plan(const PlanModel& model, const PlanRequest& req, const MemoryBudget& budget);

// The plan of one pipeline stage (the layers `stage`, plus the embeddings on the first and the
// final norm and head on the last) at req.context and req.prefill_chunk (both > 0): its weights,
// its layers' KV cache, the activations of a chunk (plus `extra` bytes) and its overhead. The
// tokenizer is priced on the first stage only.
MemoryPlan price_stage(const PlanModel& model, StageRange stage, const PlanRequest& req,
                       const MemoryBudget& budget, size_t extra = 0);
// Bytes of the weights stage `stage` reads (the embeddings again on a last stage with a tied
// head).
size_t stage_weight_bytes(const PlanModel& model, StageRange stage);

// Largest context (a multiple of the KV block, or max_position_embeddings) that fits with keys
// and values both stored as `kv`, given the rest of `req`; 0 when none does.
int64_t largest_context(const PlanModel& model, const PlanRequest& req, KvType kv,
                        const MemoryBudget& budget);
// The same with keys stored as `k` and values as `v`.
int64_t largest_context(const PlanModel& model, const PlanRequest& req, KvType k, KvType v,
                        const MemoryBudget& budget);
// "f16", or "k int8, v int4" when keys and values differ.
std::string kv_setting_name(KvType k, KvType v);

// The one-line refusal for a plan that does not fit: what was asked, bytes by category, bytes
// available, and settings that do fit.
std::string refusal_message(const PlanModel& model, const PlanRequest& req, const MemoryPlan& plan);

// What a precomputed max_ctx x max_ctx mask per layer would hold (what longctx never builds).
size_t mask_elements(const ModelConfig& cfg, int64_t context);

}  // namespace longctx
