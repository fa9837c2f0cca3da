// Built-in config.json texts of the models users ask about, with the shapes from their published
// Hugging Face config.json. Used to price a model without downloading it and to generate
// random-weight checkpoints of a real architecture's shape.
#pragma once

#include <string>
#include <vector>

namespace longctx {

struct Preset {
  std::string name;         // e.g. "tinyllama-1.1b"
  std::string config_json;  // a config.json text
};

const std::vector<Preset>& presets();
// Error(kInvalidArg) listing the known names when absent.
const Preset& find_preset(const std::string& name);

}  // namespace longctx
