#include "hooks/hook_files.h"

#include <charconv>
#include <cstdlib>
#include <utility>

#include "core/error.h"
#include "io/weights.h"

namespace longctx::hooks {

namespace {

// NAME and FILE of "NAME=FILE".
std::pair<std::string, std::string> split_spec(const std::string& spec, const char* flag,
                                               const char* form) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error(ErrorKind::kInvalidArg, std::string(flag) + " '" + spec + "': expected " + form);
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

// The tensor `name` of `file` as f32, with its shape; `first`: the position of its first row when
// the file says (kPosFirstKey).
std::vector<float> read_tensor(const std::string& file, const std::string& name,
                               const char* flag, std::vector<int64_t>& shape,
                               std::optional<int64_t>* first = nullptr) {
  const auto src = io::WeightSource::open_file(file);
  if (first) {
    const auto it = src->metadata().find(kPosFirstKey);
    if (it != src->metadata().end()) {
      int64_t v = -1;
      const auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
      if (ec != std::errc() || ptr != it->second.data() + it->second.size() || v < 0)
        throw Error(ErrorKind::kFormat, file + ": metadata " + kPosFirstKey + " = '" +
                                            it->second + "' is not a position");
      *first = v;
    }
  }
  if (const auto u = src->unsupported().find(name); u != src->unsupported().end())
    throw Error(ErrorKind::kUnsupported, std::string(flag) + ": " + file + " holds " + name +
                                             " as " + u->second +
                                             "; activations must be F32, F16 or BF16");
  const io::TensorInfo* t = src->find(name);
  if (!t) {
    std::string names;
    int shown = 0;
    for (const auto& [n, info] : src->tensors())
      if (shown++ < 8) names += (names.empty() ? "" : ", ") + n;
    throw Error(ErrorKind::kInvalidArg,
                std::string(flag) + ": " + file + " has no tensor named " + name +
                    " (it has " + (names.empty() ? std::string("none") : names) +
                    "); the tensor must be named like the hook it replaces");
  }
  shape = t->shape;
  std::vector<float> v(static_cast<size_t>(t->numel()));
  const std::optional<DType> dt = float_dtype(t->type);
  if (!dt)
    throw Error(ErrorKind::kInvalidArg, std::string(flag) + ": " + file + " stores " + name +
                                            " as " + tensor_type_name(t->type) +
                                            "; activations must be f32, f16 or bf16");
  to_f32(*dt, t->data, v.data(), v.size());
  return v;
}

}  // namespace

Patch load_patch(const std::string& spec, const ModelConfig& cfg) {
  const auto [name, file] = split_spec(spec, "--patch", "NAME=FILE.safetensors");
  Patch p;
  p.id = parse_hook_name(name, cfg.num_hidden_layers);
  auto values =
      std::make_shared<std::vector<float>>(read_tensor(file, name, "--patch", p.shape, &p.first));
  p.data = values->data();
  p.keep = values;
  return p;
}

Steer load_steer(const std::string& spec, const ModelConfig& cfg) {
  auto [name, file] = split_spec(spec, "--steer", "NAME=FILE.safetensors:SCALE");
  Steer s;
  const size_t colon = file.rfind(':');
  if (colon != std::string::npos) {
    const std::string scale = file.substr(colon + 1);
    char* end = nullptr;
    s.scale = std::strtof(scale.c_str(), &end);
    if (scale.empty() || end != scale.c_str() + scale.size())
      throw Error(ErrorKind::kInvalidArg, "--steer '" + spec + "': the scale '" + scale +
                                              "' after the last ':' is not a number");
    file = file.substr(0, colon);
  }
  s.id = parse_hook_name(name, cfg.num_hidden_layers);
  std::vector<int64_t> shape;
  s.vec = read_tensor(file, name, "--steer", shape);
  const std::vector<int64_t> dims = row_dims(s.id.point, cfg);
  const int64_t width = row_width(s.id.point, cfg);
  if (shape != dims && shape != std::vector<int64_t>{width} &&
      !is_pattern_point(s.id.point))
    throw Error(ErrorKind::kShape, "--steer " + name + ": " + file + " holds a tensor of " +
                                       std::to_string(s.vec.size()) +
                                       " values in another shape; give one row of the hook, [" +
                                       std::to_string(width) + "] values");
  return s;
}

std::vector<int64_t> parse_positions(const std::string& list, const std::string& flag) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    start = comma + 1;
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) continue;
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || ptr != item.data() + item.size())
      throw Error(ErrorKind::kInvalidArg,
                  flag + ": '" + item + "' is not a position (give integers like 7,100,-1)");
    out.push_back(v);
  }
  if (out.empty())
    throw Error(ErrorKind::kInvalidArg, flag + " is empty; give positions like 7,100,-1");
  return out;
}

}  // namespace longctx::hooks
