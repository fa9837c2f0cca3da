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
  // Replace the files of a folder that is not empty (CLI: --force). Without it such a folder is
  // refused: it may hold a real model.
  bool overwrite = false;
};

// Writes the checkpoint into `dir`. The files are written into a temporary folder beside it and
// renamed into place once complete, so an interrupted or failed run leaves `dir` as it was. A
// folder that is not empty is Error(kInvalidArg) naming what it holds, unless opt.overwrite;
// then config.json (which marks a complete checkpoint) is removed first and renamed in last.
void write_random_checkpoint(const std::string& dir, const RandomCheckpointOptions& opt);

// True when `dir` holds a complete checkpoint written by write_random_checkpoint with the same
// options (config.json carries a fingerprint of them).
bool random_checkpoint_matches(const std::string& dir, const RandomCheckpointOptions& opt);

}  // namespace longctx
