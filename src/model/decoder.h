// The one decoder for every supported architecture: RMSNorm, RoPE (rotate_half), grouped-query
// attention without a mask, SiLU-gated MLP, optional q/k/v/o biases, tied or separate output head.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "core/memory_account.h"
#include "core/thread_pool.h"
#include "hooks/forward_hooks.h"
#include "io/weights.h"
#include "kernels/ops.h"
#include "kv/kv_cache.h"
#include "config/arch.h"
#include "model/rope_freqs.h"

namespace longctx {

struct LayerWeights {
  kernels::WeightView wq, wk, wv, wo, w_gate, w_up, w_down;
  std::vector<float> bq, bk, bv, bo;  // empty when the projection has no bias
  std::vector<float> attn_norm, mlp_norm;
  int64_t window = 0;  // 0: full attention
};

// Activation buffers for one forward call of up to `max_tokens` tokens. Sized by the chunk, never
// by the context: this is all the activation memory a forward pass uses.
class Activations {
 public:
  // Charges bytes_for(cfg, max_tokens) to `account` (when given) before allocating.
  Activations(const ModelConfig& cfg, int64_t max_tokens, MemoryAccount* account = nullptr);
  ~Activations();
  Activations(const Activations&) = delete;
  Activations& operator=(const Activations&) = delete;
  // Bytes that Activations(cfg, max_tokens) allocates (for the memory plan).
  static size_t bytes_for(const ModelConfig& cfg, int64_t max_tokens);
  int64_t max_tokens() const { return max_tokens_; }

  // Shapes (n = tokens of the chunk):
  std::vector<float> x;       // [n][hidden]        residual stream
  std::vector<float> xb;      // [n][hidden]        normed input / block output
  std::vector<float> q;       // [n][n_heads*head_dim]
  std::vector<float> k, v;    // [n][n_kv_heads*head_dim]
  std::vector<float> att;     // [n][n_heads*head_dim]  attention output
  std::vector<float> gate;    // [n][intermediate]
  std::vector<float> up;      // [n][intermediate]
  std::vector<int64_t> pos;   // [n]
  std::vector<float> scale, scale0;  // [n] RMSNorm scales, for the ln*.hook_scale points

 private:
  int64_t max_tokens_;
  MemoryAccount* account_;
  size_t charged_ = 0;
};

// One sequence's share of a batched forward pass (Model::forward_batch).
struct BatchEntry {
  KVCache* kv = nullptr;  // the sequence's cache: the entry's tokens go at positions kv->n_tokens()..
  const int32_t* tokens = nullptr;
  int64_t n = 0;          // tokens of this sequence in the pass (>= 1)
  int64_t rope_len = 0;   // as forward()'s rope_len; 0: kv->n_tokens() + n
  float* logits = nullptr;  // receives [vocab]: the logits after its last token; null: not needed
};

// The layers one process runs: [first, end). A whole model is {0, num_hidden_layers}; a pipeline
// stage (src/dist, mpirun) holds a contiguous part, the first stage also the embeddings and the
// last the final norm and output head.
struct StageRange {
  int first = 0, end = -1;  // end -1: through the last layer

  static StageRange all() { return {}; }
  int end_layer(const ModelConfig& cfg) const { return end < 0 ? cfg.num_hidden_layers : end; }
  bool whole(const ModelConfig& cfg) const { return first == 0 && end_layer(cfg) == cfg.num_hidden_layers; }
  bool has_embed() const { return first == 0; }
  bool has_head(const ModelConfig& cfg) const { return end_layer(cfg) == cfg.num_hidden_layers; }
};

// The KV-cache shape of a model of config `cfg` (layers, kv heads, head_dim, windows), keys stored
// as `k` and values as `v`, for `capacity` tokens; needs no weights (planning before loading).
// With a stage, only its layers (the cache's layer i is the model's layer stage.first + i).
KVCacheShape kv_cache_shape(const ModelConfig& cfg, KvType k, KvType v, int64_t capacity,
                            StageRange stage = StageRange::all());

// Where the weights live while the model runs.
enum class WeightMemory {
  // A private copy in anonymous memory on 2 MiB transparent huge pages (falls back to the file
  // mapping when the system has them off, or the copy cannot be reserved). Decode streams every
  // weight once per token; huge pages read faster (docs/kernels.md, "Weights and KV cache in huge
  // pages").
  kResident,
  // The file mapping itself: pages load on first use and the kernel may evict and re-read them.
  kMapped,
};

// Which names a model's tensors carry (config/arch.h TensorNames).
enum class WeightFormat { kHuggingFace, kGguf };

// True when `path` names a GGUF file (a regular file ending in .gguf, or starting with "GGUF")
// rather than a model folder.
bool is_gguf_path(const std::string& path);

class Model {
 public:
  // PATH is a Hugging Face folder (config.json + safetensors) or a GGUF file (config from its
  // metadata, config/gguf_config.h). Maps the weights and checks every tensor's shape and type
  // against the config. Errors name the tensor, what was expected and what was found.
  // `memory` kResident then copies the weights into huge pages (see WeightMemory).
  // With a stage (a pipeline rank) only the stage's tensors are read and checked: the weights
  // stay in the file mapping (no private copy), so only the stage's pages become resident.
  static std::unique_ptr<Model> load(const std::string& path,
                                     WeightMemory memory = WeightMemory::kResident,
                                     StageRange stage = StageRange::all());
  // Builds a model from an already parsed config and opened weights named as `format` names them.
  Model(ModelConfig cfg, std::unique_ptr<io::WeightSource> weights,
        WeightFormat format = WeightFormat::kHuggingFace, StageRange stage = StageRange::all());

  const ModelConfig& config() const { return cfg_; }
  const io::WeightSource& weights() const { return *weights_; }
  // The tensor names of the weights' format (Hugging Face or GGUF).
  const TensorNames& tensor_names() const { return names_; }
  // Whether the weights were copied into huge pages (WeightMemory::kResident took effect).
  bool weights_resident() const;
  int64_t vocab_size() const { return cfg_.vocab_size; }
  // The layers this model runs (all of them unless loaded as a pipeline stage), and the names of
  // the tensors those need.
  StageRange stage() const { return stage_; }
  // model_fingerprint of the config and tensor directory (model/checkpoint_check.h).
  uint64_t fingerprint() const { return fingerprint_; }
  const std::vector<std::string>& stage_tensors() const { return stage_tensors_; }

  // Runs tokens[0..n) at positions pos0..pos0+n through the model, appending their keys/values to
  // `kv` (which must hold exactly pos0 tokens). n <= act.max_tokens().
  // logits: [vocab] for the last token, or [n][vocab] when all_logits. Token ids outside
  // [0, vocab) are Error(kOutOfRange). `rope_len` is the sequence length whose RoPE frequencies
  // the pass uses (dynamic and longrope scaling depend on it; see rope_length()); 0: pos0 + n.
  // `hooks` (null: none) sees, and may change, every activation it turned on (docs/hooks.md).
  // A pipeline stage without the embeddings takes its input rows from act.x (the previous stage's
  // output; `tokens` is not read), and one without the head leaves its output rows in act.x
  // (`logits` is not written).
  void forward(ThreadPool& pool, const int32_t* tokens, int64_t n, int64_t pos0, KVCache& kv,
               Activations& act, float* logits, bool all_logits = false, int64_t rope_len = 0,
               hooks::ForwardHooks* hooks = nullptr) const;

  // Runs several sequences in one pass over the weights (continuous batching): the entries' rows
  // go through every projection and MLP together (decode reads the weights once per step for the
  // whole batch); attention, RoPE and the KV cache stay per sequence. Each entry gives exactly the
  // logits forward() gives it alone, up to the kernels' row-count-dependent rounding. The rows of
  // all entries together must fit act.max_tokens(); each entry needs its own KVCache.
  void forward_batch(ThreadPool& pool, const BatchEntry* entries, int n_entries,
                     Activations& act) const;

  // Re-rotates m cached keys [m][n_kv_heads][head_dim] (as the cache stores them, RoPE applied
  // for sequence rope length `rope_len`) to positions `delta` earlier: a context shift.
  void rotate_keys(float* keys, int64_t m, int64_t delta, int64_t rope_len) const;

  // The KV-cache shape this model needs (layers, kv heads, head_dim, windows) with keys stored as
  // `k` and values as `v`, for `capacity` tokens.
  KVCacheShape kv_shape(KvType k, KvType v, int64_t capacity) const;

 private:
  // A run of rows of one sequence inside a pass.
  struct Segment {
    KVCache* kv;
    int64_t row0, n, pos0;
    const RopeFreqs* rope;
  };
  // Embeds the segments' tokens, runs every layer; rows = the segments' rows together. Hooks (one
  // segment only) see positions from segs[0].pos0.
  // rows: the rows of all segments; decode_rows: how many of them (the first) take the decode
  // order of the projections (kernels::matmul), the rest the prefill order.
  void run_layers(ThreadPool& pool, const int32_t* const* tokens, const Segment* segs, int n_segs,
                  int64_t rows, int64_t decode_rows, Activations& act,
                  hooks::ForwardHooks* h) const;
  void attention_block(ThreadPool& pool, int layer, const Segment* segs, int n_segs, int64_t rows,
                       int64_t decode_rows, Activations& act, hooks::ForwardHooks* h) const;
  const RopeFreqs& select_rope(int64_t rope_len, RopeFreqs& scratch) const;
  void mlp_block(ThreadPool& pool, int layer, int64_t n, int64_t decode_rows, int64_t pos0,
                 Activations& act, hooks::ForwardHooks* h) const;
  // y = rmsnorm(x) * weight for rows of x; with h, fires the scale and normalized points of the
  // norm (layer, scale_p, norm_p) when on and goes on with what they hold.
  void norm(const float* x, const std::vector<float>& weight, int64_t n, int64_t pos0, float* y,
            Activations& a, hooks::ForwardHooks* h, int layer, hooks::Point scale_p,
            hooks::Point norm_p) const;
  // The final norm and output head over rows [first, n) of the chunk into logits [n - first][V].
  void head(ThreadPool& pool, int64_t n, int64_t pos0, bool all_logits, Activations& a,
            float* logits, hooks::ForwardHooks* h) const;

  ModelConfig cfg_;
  StageRange stage_;
  uint64_t fingerprint_ = 0;
  std::vector<std::string> stage_tensors_;
  std::unique_ptr<io::WeightSource> weights_;
  TensorNames names_;
  // GGUF llama files: q/k rows come in llama.cpp's adjacent-pair order; attention_block puts the
  // projected q and k back in Hugging Face's half-split order before RoPE.
  bool qk_interleaved_ = false;
  kernels::WeightView embed_, lm_head_;
  std::vector<float> final_norm_;
  std::vector<float> ones_;  // [hidden]: RMSNorm without its weight (the hook_normalized points)
  std::vector<LayerWeights> layers_;
  RopeFreqs rope_init_;  // at load time (longrope: short factors; dynamic: base as configured)
  RopeFreqs rope_long_;  // longrope's long factors; empty otherwise
};

}  // namespace longctx
