// Patches and steering vectors read from safetensors files (the CLI's --patch and --steer, and
// any front end that takes files): the tensor named like the hook, converted to f32.
#pragma once

#include <string>

#include "config/model_config.h"
#include "hooks/hook_runner.h"

namespace longctx::hooks {

// Metadata key of a capture file: the position of its rows' first row (`trace` writes it), so a
// patch from that file lands where it was captured whatever the --pos of the patched run.
inline constexpr const char* kPosFirstKey = "longctx.pos_first";

// "NAME=FILE.safetensors": the tensor NAME of FILE replaces hook NAME (shapes: see Patch).
// Error naming the fix for a malformed spec, an unknown hook, a missing file or tensor, or a
// tensor that is not f32/f16/bf16. Shapes and values are checked by HookRunner.
Patch load_patch(const std::string& spec, const ModelConfig& cfg);
// "NAME=FILE.safetensors:SCALE" (":SCALE" optional, default 1): adds SCALE x the [width] tensor
// NAME of FILE to hook NAME at every position.
Steer load_steer(const std::string& spec, const ModelConfig& cfg);

// Python-style positions "7,100,-1" (negative from the end).
std::vector<int64_t> parse_positions(const std::string& list, const std::string& flag);

}  // namespace longctx::hooks
