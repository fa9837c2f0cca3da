// Architectures as data (DESIGN.md decision 5): everything longctx knows about a family sits in
// its ArchSpec entry: the Hugging Face class defaults for absent config.json fields, the bias and
// sliding-window rules, the tensor names in Hugging Face checkpoints and in llama.cpp's GGUF files,
// and how a GGUF file pairs the RoPE dimensions. The config parsers, the planner's parameter
// count, the decoder and the checkpoint writers all read this one table. Adding a family is a new
// entry in arch.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

// Tensor names of one file format; "{l}" stands for the layer index. A fused projection name
// (qkv, gate_up) is used instead of its parts when set. Biases are the weight's name with
// "weight" replaced by "bias".
struct TensorNames {
  std::string embed, final_norm, lm_head;
  std::string attn_norm, mlp_norm;
  std::string q, k, v, qkv, o;
  std::string gate, up, gate_up, down;
};

// How config.json's sliding-window fields apply.
enum class WindowRule {
  kNone,         // no sliding window (LlamaConfig)
  kAllLayers,    // sliding_window applies to every layer (Mistral, Phi-3)
  kQwen2Layers,  // use_sliding_window + max_window_layers / layer_types (Qwen2)
};

struct ArchSpec {
  std::string model_type;  // config.json "model_type"
  std::string gguf_arch;   // GGUF general.architecture (Mistral is converted as "llama")
  std::string hf_class;    // config.json "architectures" entry (tools such as llama.cpp's
                           // converter detect the family from it)

  // transformers' class defaults for fields absent from config.json.
  int64_t max_position_embeddings = 2048;
  float rms_norm_eps = 1e-6f;
  int num_key_value_heads = 0;               // 0: num_attention_heads
  int64_t sliding_window = 0;                // when the key is absent; 0: none
  int64_t original_max_position_embeddings = 0;  // when absent (Phi-3: 4096)
  int bos = 1, eos = 2;                      // -1: none
  WindowRule window_rule = WindowRule::kNone;

  // Biases: Llama reads attention_bias (q, k, v and o) and mlp_bias; Qwen2 always has q/k/v
  // biases and never an o bias; Mistral and Phi-3 have none.
  bool reads_bias_flags = false;
  bool qkv_bias_always = false;

  TensorNames hf;
  TensorNames gguf;
  // llama.cpp's converter permutes the q/k rows of `llama` checkpoints so that RoPE rotates
  // adjacent pairs (2i, 2i+1); Hugging Face rotates (i, i + rot_dim/2). When true, longctx puts the
  // projected q/k back in Hugging Face order (docs/gguf.md, "RoPE pairing").
  bool gguf_qk_interleaved = false;
};

// The entry for a config.json model_type; Error(kUnsupported) naming the closest known one
// otherwise (`origin` names the file in the message).
const ArchSpec& arch_spec_for(const std::string& model_type, const std::string& origin = "");
// The entry for a GGUF general.architecture; Error(kUnsupported) listing the known ones.
const ArchSpec& arch_spec_for_gguf(const std::string& gguf_arch, const std::string& origin);
std::vector<std::string> supported_model_types();

// Replaces "{l}" in a name template with the layer index.
std::string layer_tensor_name(const std::string& name_template, int layer);

}  // namespace longctx
