// GgufWriter (io/gguf_writer.h): metadata encoded as it is set, tensors laid out at write time.
#include "io/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"

namespace longctx::io {

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

uint64_t elem_bytes(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    default:
      return 0;
  }
}

uint64_t pad_to(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

[[noreturn]] void invalid(const std::string& what) {
  throw Error(ErrorKind::kInvalidArg, "GgufWriter: " + what);
}

}  // namespace

void GgufWriter::set_raw(std::string_view key, GgufType type, std::vector<uint8_t> value) {
  if (key.empty()) invalid("a metadata key is empty; give every value a name");
  if (key == "general.alignment") {
    uint32_t a = 0;
    if (type == GgufType::kU32) std::memcpy(&a, value.data(), 4);
    if (type != GgufType::kU32 || a == 0 || !std::has_single_bit(a))
      invalid("general.alignment must be a u32 power of two");
    alignment_ = a;
  }
  std::vector<uint8_t> encoded;
  put<uint32_t>(encoded, static_cast<uint32_t>(type));
  encoded.insert(encoded.end(), value.begin(), value.end());
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(encoded);
    return;
  }
  kv_index_.emplace(std::string(key), kv_.size());
  kv_.emplace_back(std::string(key), std::move(encoded));
}

#define LONGCTX_GGUF_SETTER(fn, T, tag)            \
  void GgufWriter::fn(std::string_view key, T v) { \
    std::vector<uint8_t> b;                        \
    put<T>(b, v);                                  \
    set_raw(key, GgufType::tag, std::move(b));     \
  }
LONGCTX_GGUF_SETTER(set_u8, uint8_t, kU8)
LONGCTX_GGUF_SETTER(set_i8, int8_t, kI8)
LONGCTX_GGUF_SETTER(set_u16, uint16_t, kU16)
LONGCTX_GGUF_SETTER(set_i16, int16_t, kI16)
LONGCTX_GGUF_SETTER(set_u32, uint32_t, kU32)
LONGCTX_GGUF_SETTER(set_i32, int32_t, kI32)
LONGCTX_GGUF_SETTER(set_u64, uint64_t, kU64)
LONGCTX_GGUF_SETTER(set_i64, int64_t, kI64)
LONGCTX_GGUF_SETTER(set_f32, float, kF32)
LONGCTX_GGUF_SETTER(set_f64, double, kF64)
#undef LONGCTX_GGUF_SETTER

void GgufWriter::set_bool(std::string_view key, bool v) {
  set_raw(key, GgufType::kBool, {static_cast<uint8_t>(v ? 1 : 0)});
}

void GgufWriter::set_string(std::string_view key, std::string_view v) {
  std::vector<uint8_t> b;
  put_string(b, v);
  set_raw(key, GgufType::kString, std::move(b));
}

void GgufWriter::set_array(std::string_view key, GgufType elem, const void* data, uint64_t count) {
  const uint64_t eb = elem_bytes(elem);
  if (eb == 0)
    invalid("array '" + std::string(key) + "' of " + gguf_type_name(elem) +
            ": give numeric elements (set_strings writes strings; arrays do not nest)");
  std::vector<uint8_t> b;
  put<uint32_t>(b, static_cast<uint32_t>(elem));
  put<uint64_t>(b, count);
  const auto* p = static_cast<const uint8_t*>(data);
  b.insert(b.end(), p, p + count * eb);
  set_raw(key, GgufType::kArray, std::move(b));
}

void GgufWriter::set_i32s(std::string_view key, const std::vector<int32_t>& v) {
  set_array(key, GgufType::kI32, v.data(), v.size());
}

void GgufWriter::set_f32s(std::string_view key, const std::vector<float>& v) {
  set_array(key, GgufType::kF32, v.data(), v.size());
}

void GgufWriter::set_strings(std::string_view key, const std::vector<std::string>& v) {
  GgufValue a;
  a.type = GgufType::kArray;
  a.elem = GgufType::kString;
  a.count = v.size();
  a.strs.assign(v.begin(), v.end());
  set(key, a);
}

void GgufWriter::set(std::string_view key, const GgufValue& v) {
  switch (v.type) {
    case GgufType::kU8:
      return set_u8(key, static_cast<uint8_t>(v.i));
    case GgufType::kI8:
      return set_i8(key, static_cast<int8_t>(v.i));
    case GgufType::kU16:
      return set_u16(key, static_cast<uint16_t>(v.i));
    case GgufType::kI16:
      return set_i16(key, static_cast<int16_t>(v.i));
    case GgufType::kU32:
      return set_u32(key, static_cast<uint32_t>(v.i));
    case GgufType::kI32:
      return set_i32(key, static_cast<int32_t>(v.i));
    case GgufType::kU64:
      return set_u64(key, v.u);
    case GgufType::kI64:
      return set_i64(key, v.i);
    case GgufType::kF32:
      return set_f32(key, static_cast<float>(v.f));
    case GgufType::kF64:
      return set_f64(key, v.f);
    case GgufType::kBool:
      return set_bool(key, v.i != 0);
    case GgufType::kString:
      return set_string(key, v.str);
    case GgufType::kArray:
      if (v.elem != GgufType::kString) return set_array(key, v.elem, v.array_data, v.count);
      {
        std::vector<uint8_t> b;
        put<uint32_t>(b, static_cast<uint32_t>(GgufType::kString));
        put<uint64_t>(b, v.strs.size());
        for (std::string_view s : v.strs) put_string(b, s);
        set_raw(key, GgufType::kArray, std::move(b));
      }
      return;
  }
}

void GgufWriter::add_tensor(const std::string& name, uint32_t ggml_type,
                            const std::vector<int64_t>& shape, const void* data, uint64_t nbytes) {
  add_checked(name, ggml_type, shape, data, nbytes, false);
}

void GgufWriter::add_tensor_deferred(const std::string& name, TensorType type,
                                     const std::vector<int64_t>& shape) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i] > 0 ? shape[i] : 1;
  const int64_t cols = shape.empty() ? 0 : shape.back();
  const uint64_t nbytes =
      cols > 0 && cols % block_layout(type).elems == 0
          ? static_cast<uint64_t>(tensor_bytes(type, rows, cols))
          : 0;  // add_checked names the problem
  add_checked(name, ggml_type_number(type), shape, nullptr, nbytes, true);
}

void GgufWriter::add_checked(const std::string& name, uint32_t ggml_type,
                             const std::vector<int64_t>& shape, const void* data, uint64_t nbytes,
                             bool deferred) {
  const std::string what = "tensor '" + name + "'";
  if (name.empty() || tensor_index_.count(name))
    invalid(what + ": the name is empty or repeated; give each tensor a unique name");
  const std::optional<GgmlTypeInfo> info = ggml_type_info(ggml_type);
  if (!info) invalid(what + ": unknown ggml type " + std::to_string(ggml_type));
  if (shape.empty() || shape.size() > 4)
    invalid(what + ": " + std::to_string(shape.size()) + " dimensions; GGUF holds 1 to 4");
  int64_t numel = 1;
  for (int64_t d : shape)
    if (d < 1 || __builtin_mul_overflow(numel, d, &numel))
      invalid(what + ": a dimension is below 1 or the element count overflows");
  if (shape.back() % info->block_elems != 0)
    invalid(what + ": rows of " + std::to_string(shape.back()) +
            " elements are not a multiple of " + info->name + "'s block of " +
            std::to_string(info->block_elems));
  int64_t expected = 0;
  if (__builtin_mul_overflow(numel / info->block_elems, info->block_bytes, &expected))
    invalid(what + ": the byte size overflows");
  if (nbytes != static_cast<uint64_t>(expected))
    invalid(what + ": " + std::to_string(nbytes) + " bytes given, but the shape in " + info->name +
            " takes " + std::to_string(expected));
  if (data == nullptr && !deferred) invalid(what + ": no data");
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back({name, ggml_type, shape, data, nbytes});
}

void GgufWriter::add_tensor(const std::string& name, TensorType type,
                            const std::vector<int64_t>& shape, const void* data, uint64_t nbytes) {
  add_tensor(name, ggml_type_number(type), shape, data, nbytes);
}

std::vector<uint64_t> GgufWriter::offsets(uint64_t* data_bytes) const {
  std::vector<uint64_t> out;
  uint64_t at = 0;
  for (const Tensor& t : tensors_) {
    out.push_back(at);
    at = pad_to(at + t.nbytes, alignment_);
  }
  *data_bytes = at;
  return out;
}

std::vector<uint8_t> GgufWriter::header(const std::vector<uint64_t>& offsets) const {
  std::vector<uint8_t> h = {'G', 'G', 'U', 'F'};
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, kv_.size());
  for (const auto& [key, value] : kv_) {
    put_string(h, key);
    h.insert(h.end(), value.begin(), value.end());
  }
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const Tensor& t = tensors_[k];
    put_string(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<uint64_t>(h, *d);  // ne[]
    put<uint32_t>(h, t.ggml_type);
    put<uint64_t>(h, offsets[k]);
  }
  return h;
}

uint64_t GgufWriter::file_bytes() const {
  uint64_t data = 0;
  const std::vector<uint64_t> off = offsets(&data);
  return pad_to(header(off).size(), alignment_) + data;
}

std::vector<uint8_t> GgufWriter::bytes() const {
  uint64_t data = 0;
  const std::vector<uint64_t> off = offsets(&data);
  std::vector<uint8_t> out = header(off);
  const size_t start = pad_to(out.size(), alignment_);
  out.resize(start + data, 0);
  for (size_t k = 0; k < tensors_.size(); ++k) {
    if (!tensors_[k].data) invalid("tensor '" + tensors_[k].name + "' is deferred: use write()");
    std::memcpy(out.data() + start + off[k], tensors_[k].data, tensors_[k].nbytes);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const { write(path, Producer()); }

void GgufWriter::write(const std::string& path, const Producer& produce) const {
  uint64_t data = 0;
  const std::vector<uint64_t> off = offsets(&data);
  const std::vector<uint8_t> h = header(off);
  const uint64_t start = pad_to(h.size(), alignment_);
  const uint64_t total = start + data;
  const uint64_t free = free_bytes_at(path);
  if (free < total)
    throw Error(ErrorKind::kIo, "cannot write " + path + ": it takes " + format_bytes(total) +
                                    " but only " + format_bytes(free) +
                                    " are free there; free space or write elsewhere");
  AtomicFileWriter f(path, total);
  // Padding is written, not left as a hole: the file has its full size even where the file
  // system could not reserve it.
  static const uint8_t kZeros[4096] = {};
  auto zeros = [&](uint64_t at, uint64_t n) {
    for (; n > 0;
         at += std::min<uint64_t>(n, sizeof kZeros), n -= std::min<uint64_t>(n, sizeof kZeros))
      f.write_at(at, kZeros, std::min<uint64_t>(n, sizeof kZeros));
  };
  f.write_at(0, h.data(), h.size());
  std::vector<uint8_t> buf;  // one deferred tensor at a time
  zeros(h.size(), start - h.size());
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const Tensor& t = tensors_[k];
    const uint64_t at = start + off[k];
    if (t.data) {
      f.write_at(at, t.data, t.nbytes);
    } else {
      if (!produce) invalid("tensor '" + t.name + "' is deferred but no producer was given");
      buf.resize(t.nbytes);
      produce(k, buf.data(), t.nbytes);
      f.write_at(at, buf.data(), t.nbytes);
    }
    const uint64_t end = k + 1 < tensors_.size() ? start + off[k + 1] : total;
    zeros(at + t.nbytes, end - at - t.nbytes);
  }
  f.commit();
}

}  // namespace longctx::io
