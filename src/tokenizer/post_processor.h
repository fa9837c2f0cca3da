// Post-processors of tokenizer.json ("post_processor" section), for a single sequence: ids to put
// before and after the encoded text when special tokens are requested.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace longctx::tok {

struct PostTemplate {
  std::vector<int32_t> prefix;  // e.g. BOS
  std::vector<int32_t> suffix;  // e.g. EOS / SEP
};

// Supported: TemplateProcessing, ByteLevel (ids unchanged), RobertaProcessing, BertProcessing,
// Sequence of these; null gives an empty template.
PostTemplate parse_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace longctx::tok
