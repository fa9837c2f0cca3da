#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_util.h"

namespace longctx::tok {
namespace {

PostTemplate parse_template(const nlohmann::json& j, const std::string& where) {
  PostTemplate t;
  const auto& single = json_array(j, "single", where);
  const auto& specials = j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json();
  bool seen_sequence = false;
  for (const auto& item : single) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken")) json_fail(where, "TemplateProcessing item is malformed");
    const std::string name = json_string(item["SpecialToken"], "id", where);
    if (!specials.is_object() || !specials.contains(name)) {
      json_fail(where,
                "TemplateProcessing uses special token '" + name + "' missing from special_tokens");
    }
    const auto& ids = json_array(specials[name], "ids", where);
    for (const auto& id : ids) {
      if (!id.is_number_integer()) json_fail(where, "special token ids must be integers");
      (seen_sequence ? t.suffix : t.prefix).push_back(id.get<int32_t>());
    }
  }
  return t;
}

int32_t pair_id(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
      !j[key][1].is_number_integer()) {
    json_fail(where, std::string("post_processor \"") + key + "\" must be [token, id]");
  }
  return j[key][1].get<int32_t>();
}

}  // namespace

PostTemplate parse_post_processor(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return {};
  const std::string type = json_type(j, where, "post_processor");
  if (type == "TemplateProcessing") return parse_template(j, where);
  if (type == "ByteLevel") return {};
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    return {{pair_id(j, "cls", where)}, {pair_id(j, "sep", where)}};
  }
  if (type == "Sequence") {
    PostTemplate all;
    for (const auto& p : json_array(j, "processors", where)) {
      PostTemplate t = parse_post_processor(p, where);
      all.prefix.insert(all.prefix.begin(), t.prefix.begin(), t.prefix.end());
      all.suffix.insert(all.suffix.end(), t.suffix.begin(), t.suffix.end());
    }
    return all;
  }
  throw Error(ErrorKind::kUnsupported,
              where + ": unsupported post_processor type '" + type +
                  "'; longctx supports TemplateProcessing, ByteLevel, RobertaProcessing, "
                  "BertProcessing, Sequence");
}

}  // namespace longctx::tok
