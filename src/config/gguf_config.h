// ModelConfig from a GGUF file's metadata (llama.cpp's {arch}.* keys) and its RoPE factor tensors.
#pragma once

#include "config/model_config.h"

namespace longctx {

namespace io {
class GgufFile;
}

// Translates the metadata into the Hugging Face config.json it came from and parses that with
// parse_model_config, so defaults, checks and messages are the ones of a model folder:
//   general.architecture         -> model_type (ArchSpec::gguf_arch; "llama" also for Mistral)
//   {a}.embedding_length, feed_forward_length, block_count, attention.head_count(_kv),
//   attention.key_length (head_dim), context_length, attention.layer_norm_rms_epsilon,
//   rope.freq_base, rope.dimension_count (partial rotary), attention.sliding_window
//   {a}.rope.scaling.{type, factor, original_context_length, attn_factor, yarn_beta_*}
//   tensors rope_freqs (Llama 3.1 frequency factors), rope_factors_long / _short (Phi-3 LongRoPE)
//   the presence of output.weight (else tied), q/k/v and o bias tensors
//   tokenizer.ggml.{bos,eos}_token_id
// A missing required key is Error(kFormat) naming the key and the file.
ModelConfig config_from_gguf(const io::GgufFile& file);

}  // namespace longctx
