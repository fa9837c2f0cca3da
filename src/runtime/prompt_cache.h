// Prompt-cache files (docs/prompt-cache.md): a session's tokens and KV blocks saved after a
// prefill and loaded by a later run whose prompt starts with the same tokens, so that only the
// rest is prefilled. The file cannot give wrong answers: a fingerprint of everything that changes
// the numbers (the model's config and tensor directory, KV types, block size, cache shape, the
// RoPE factors the keys were rotated with), a checksum of the header and of every block, and an
// exact size; anything that does not match is refused with the reason and nothing of it is used.
//
// Layout: "LCPCACHE" | u32 version | u32 0 | u64 header bytes H | u64 xxh64(header) |
//         header (JSON, H bytes) | blocks (layer-major, each bytes_per_layer_block) |
//         int4 pending keys (f32) when keys are int4.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longctx {

class Session;

inline constexpr uint32_t kPromptCacheVersion = 1;

struct PromptCacheLoad {
  bool found = false;        // the file exists
  int64_t cached = 0;        // tokens the file holds
  int64_t reused = 0;        // tokens of the prompt the session now holds from it
  std::string refused;       // why nothing was used (a mismatch, a corrupt or truncated file)
  double seconds = 0;        // reading and checking
};

// Writes the session's tokens and KV state to `path` through a temporary that is fsynced and
// renamed, so a crash leaves the old file or none. Error(kIo) when it cannot be written;
// Error(kUnsupported) for a pipelined session (its cache lives on several ranks).
void save_prompt_cache(const Session& session, const std::string& path);

// Loads into the empty `session` the longest prefix of `prompt` that the file at `path` holds, at
// most prompt.size() - 1 tokens (the last one is run for its logits). A missing file is not an
// error (found false). A file that cannot be used (another model, KV type, RoPE factors or
// shape, a corrupt or truncated file, one holding more tokens than the context) leaves the
// session empty and says why in `refused`. With int4 keys a prefix shorter than the file's ends
// on a whole 16-token key group, so the reused codes are exactly those of an uninterrupted run.
PromptCacheLoad load_prompt_cache(Session& session, const std::string& path,
                                  const std::vector<int32_t>& prompt);
// The same over a file's bytes already in memory (tests, the fuzz harness).
PromptCacheLoad load_prompt_cache(Session& session, const uint8_t* data, size_t size,
                                  const std::vector<int32_t>& prompt);

}  // namespace longctx
