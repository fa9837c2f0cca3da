// safetensors reading (header parsing and validation) and writing.
// Format: u64 little-endian header length N, N bytes of JSON header, then the data section.
// Header: {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}} with offsets relative to the start of the data section.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/error.h"
#include "io/json_util.h"
#include "io/weights.h"

namespace longctx::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts are not supported");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MB; real headers are at most a few MB

// Element size of a safetensors dtype name; 0 when the name is not known.
}  // namespace

size_t safetensors_elem_size(const std::string& d) {
  static const std::map<std::string, size_t> kSizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = kSizes.find(d);
  return it == kSizes.end() ? 0 : it->second;
}

namespace {

bool supported_dtype(const std::string& d, DType* out) {
  if (d == "F32")
    *out = DType::kF32;
  else if (d == "F16")
    *out = DType::kF16;
  else if (d == "BF16")
    *out = DType::kBF16;
  else
    return false;
  return true;
}

const char* safetensors_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "F32";
}

[[noreturn]] void bad(ErrorKind kind, const std::string& path, const std::string& what) {
  throw Error(kind, path + ": " + what);
}

const char* kRedownload = "; re-download the file";

// Reads a non-negative integer; false when `j` is not one.
bool get_u64(const nlohmann::json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                  uint64_t data_size) {
  const std::string where = "tensor " + name;
  if (!v.is_object()) bad(ErrorKind::kFormat, path, where + " is not a JSON object" + kRedownload);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key))
      bad(ErrorKind::kFormat, path,
          where + " lacks \"" + key + "\"; the header is malformed" + kRedownload +
              " or re-export it with safetensors");
  Entry e;
  e.name = name;
  if (!v["dtype"].is_string())
    bad(ErrorKind::kFormat, path, where + " has a non-string dtype" + kRedownload);
  e.dtype = v["dtype"].get<std::string>();
  const auto& shape = v["shape"];
  if (!shape.is_array()) bad(ErrorKind::kFormat, path, where + " has a shape that is not an array");
  for (const auto& d : shape) {
    uint64_t dim = 0;
    if (!get_u64(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX))
      bad(ErrorKind::kFormat, path,
          where + " has shape " + shape.dump() +
              " with a negative or non-integer dimension; the file is corrupt" + kRedownload);
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !get_u64(off[0], &e.begin) || !get_u64(off[1], &e.end))
    bad(ErrorKind::kFormat, path,
        where + " has data_offsets " + off.dump() +
            "; expected [begin, end] with non-negative integers" + kRedownload);
  if (e.begin > e.end)
    bad(ErrorKind::kFormat, path,
        where + " has reversed data_offsets [" + std::to_string(e.begin) + ", " +
            std::to_string(e.end) + "]; the header is corrupt" + kRedownload);
  if (e.end > data_size)
    bad(ErrorKind::kIo, path,
        "file is truncated: " + where + " needs bytes [" + std::to_string(e.begin) + "," +
            std::to_string(e.end) + ") but the data section has only " + std::to_string(data_size) +
            " bytes" + kRedownload);
  if (size_t es = safetensors_elem_size(e.dtype)) {
    uint64_t bytes = es;
    for (int64_t d : e.shape)
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
        bad(ErrorKind::kFormat, path, where + " has an impossibly large shape " + shape.dump());
    if (bytes != e.end - e.begin)
      bad(ErrorKind::kFormat, path,
          where + " is " + e.dtype + " " + shape.dump() + " = " + std::to_string(bytes) +
              " bytes but its data_offsets span " + std::to_string(e.end - e.begin) +
              " bytes; the header is corrupt" + kRedownload);
  }
  return e;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<std::string> WeightSource::add_file(const std::string& path) {
  auto file = MappedFile::open(path);
  std::vector<std::string> names = add_bytes(file->data(), file->size(), path);
  files_.push_back(std::move(file));
  return names;
}

std::vector<std::string> WeightSource::add_bytes(const uint8_t* data, size_t size,
                                                 const std::string& path) {
  if (size < 8)
    bad(ErrorKind::kIo, path,
        "file is " + std::to_string(size) +
            " bytes, shorter than the 8-byte header length of a safetensors file; it is "
            "truncated or not safetensors" +
            kRedownload);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > kMaxHeaderBytes)
    bad(ErrorKind::kFormat, path,
        "header length " + std::to_string(header_len) +
            " bytes is absurd (over 100 MB); this is not a safetensors file" + kRedownload);
  if (header_len > size - 8)
    bad(ErrorKind::kIo, path,
        "file is truncated: the header needs " + std::to_string(header_len) + " bytes but only " +
            std::to_string(size - 8) + " follow the length" + kRedownload);
  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  nlohmann::json header =
      parse_json_or_throw(std::string_view(hbegin, header_len), path + " (safetensors header)");
  if (!header.is_object())
    bad(ErrorKind::kFormat, path, "the header is not a JSON object" + std::string(kRedownload));

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object())
        bad(ErrorKind::kFormat, path,
            "__metadata__ is not a JSON object" + std::string(kRedownload));
      for (auto m = it->begin(); m != it->end(); ++m)
        metadata_.emplace(m.key(), m->is_string() ? m->get<std::string>() : m->dump());
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it, data_size));
  }

  // Non-empty tensors must not share bytes.
  std::vector<const Entry*> order;
  for (const Entry& e : entries)
    if (e.end > e.begin) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      bad(ErrorKind::kFormat, path,
          "tensors " + order[i - 1]->name + " and " + order[i]->name +
              " overlap in the data section; the header is corrupt" + kRedownload);

  std::vector<std::string> names;
  for (const Entry& e : entries) {
    auto clash = [&](const std::string& other_file) {
      bad(ErrorKind::kFormat, path,
          "tensor " + e.name + " also appears in " + other_file +
              "; each tensor must be stored once. Remove stray .safetensors files or "
              "re-download the checkpoint");
    };
    if (auto t = tensors_.find(e.name); t != tensors_.end()) clash(t->second.file);
    if (auto u = unsupported_file_.find(e.name); u != unsupported_file_.end()) clash(u->second);
    names.push_back(e.name);
    DType dt;
    if (!supported_dtype(e.dtype, &dt)) {
      unsupported_.emplace(e.name, e.dtype);
      unsupported_file_.emplace(e.name, path);
      continue;
    }
    TensorInfo t;
    t.name = e.name;
    t.type = tensor_type(dt);
    t.shape = e.shape;
    t.offset = static_cast<size_t>(data_start + e.begin);
    t.data = data + t.offset;
    t.nbytes = static_cast<size_t>(e.end - e.begin);
    t.file = path;
    tensors_.emplace(e.name, std::move(t));
  }
  return names;
}

std::unique_ptr<WeightSource> WeightSource::open_file(const std::string& path) {
  std::unique_ptr<WeightSource> w(new WeightSource());
  w->origin_ = path;
  w->add_file(path);
  return w;
}

std::unique_ptr<WeightSource> WeightSource::parse_safetensors(const uint8_t* data, size_t size,
                                                              const std::string& name) {
  std::unique_ptr<WeightSource> w(new WeightSource());
  w->origin_ = name;
  w->add_bytes(data, size, name);
  return w;
}

size_t WeightSource::make_resident() {
  size_t bytes = 0;
  for (const auto& f : files_) {
    const uint8_t* old = f->data();
    if (!f->make_resident()) continue;
    bytes += f->size();
    for (auto& [name, t] : tensors_)
      if (t.file == f->path()) t.data = f->data() + (static_cast<const uint8_t*>(t.data) - old);
  }
  return bytes;
}

const TensorInfo* WeightSource::find(const std::string& name) const {
  if (auto it = tensors_.find(name); it != tensors_.end()) return &it->second;
  if (auto u = unsupported_.find(name); u != unsupported_.end() && gguf_)
    throw Error(ErrorKind::kUnsupported,
                unsupported_file_.at(name) + ": tensor " + name + " is stored as " + u->second +
                    ", which longctx does not compute with (F32, F16, BF16, Q8_0, Q4_0, Q5_0, "
                    "Q5_1, Q4_K, Q5_K and Q6_K are); convert the Hugging Face folder with longctx "
                    "quantize --type q4_k_m, or requantize with llama-quantize to Q8_0 or Q4_K_M");
  if (auto u = unsupported_.find(name); u != unsupported_.end())
    throw Error(ErrorKind::kUnsupported,
                unsupported_file_.at(name) + ": tensor " + name + " is stored as " + u->second +
                    ", which longctx does not support (F32, F16 and BF16 are); convert the "
                    "checkpoint to one of those, e.g. load and save it with torch_dtype=bfloat16");
  return nullptr;
}

const TensorInfo& WeightSource::get(const std::string& name) const {
  if (const TensorInfo* t = find(name)) return *t;
  throw Error(ErrorKind::kShape, "tensor " + name + " not found in " + origin_ + " (" +
                                     std::to_string(tensors_.size()) +
                                     " tensors); the weights do not match this architecture or "
                                     "the checkpoint is incomplete");
}

size_t WeightSource::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.nbytes;
  return n;
}

size_t WeightSource::mapped_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f->size();
  return n;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorToWrite& t : tensors) {
    specs.push_back({t.name, safetensors_name(t.dtype), t.shape});
    bool empty = false;
    for (int64_t d : t.shape) empty |= d == 0;
    if (t.data == nullptr && !empty)
      throw Error(ErrorKind::kInvalidArg,
                  "write_safetensors(" + path + "): tensor " + t.name + " has no data");
  }
  SafetensorsWriter w(path, specs, metadata);
  for (size_t i = 0; i < tensors.size(); ++i)
    if (w.tensor_bytes(i) > 0) w.write(i, 0, tensors[i].data, w.tensor_bytes(i));
  w.commit();
}

}  // namespace longctx::io
