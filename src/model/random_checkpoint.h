// Deterministic random-weight checkpoints with a real architecture's shape, for speed and memory
// work (speed and memory do not depend on the weights' values). The text such a model writes is
// meaningless. The folder gets config.json, model.safetensors and a synthetic byte-level BPE
// tokenizer.json whose vocabulary matches the config's vocab_size.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace longctx {

struct RandomCheckpointOptions {
  std::string preset = "tinyllama-1.1b";  // a name from presets()
  std::string config_json;  // used instead of the preset when not empty
  int layers = 0;           // > 0: keep only this many layers
  int64_t max_position_embeddings = 0;  // > 0: override
  DType dtype = DType::kBF16;
  uint64_t seed = 1;
};

// Writes the checkpoint into `dir` (created if needed). Files are written to temporaries and
// renamed, so an interrupted run never leaves a half-written checkpoint behind.
void write_random_checkpoint(const std::string& dir, const RandomCheckpointOptions& opt);

// True when `dir` holds a complete checkpoint written by write_random_checkpoint with the same
// options (config.json carries a fingerprint of them).
bool random_checkpoint_matches(const std::string& dir, const RandomCheckpointOptions& opt);

}  // namespace longctx
