// GGUF parsing and validation (io/gguf.h): header, metadata, tensor directory, data section.
// Every read goes through a cursor that checks the bytes left first, and every count is checked
// against the bytes left before anything is reserved, so a hostile file costs at most its size.
#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "io/weights.h"

namespace longctx::io {

static_assert(std::endian::native == std::endian::little,
              "GGUF files are read as little-endian; big-endian hosts are not supported");

namespace {

constexpr char kReconvert[] = "; re-download or re-convert the file";

bool known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

// A bounds-checked little-endian reader over the file. `where` names what is being read, for
// messages ("metadata key 'general.name'", "tensor 'output.weight'").
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& file)
      : data_(data), size_(size), file_(file) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::kFormat, file_ + ": " + where + ": " + what);
  }

  size_t pos() const { return pos_; }
  const std::string& file() const { return file_; }
  uint64_t left() const { return size_ - pos_; }

  const uint8_t* take(uint64_t n, const char* what) {
    if (n > left())
      fail(std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes at offset " +
           std::to_string(pos_) + " but the file ends after " + std::to_string(left()) +
           kReconvert);
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  template <typename T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  std::string_view string(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > left())
      fail(std::string(what) + " has length " + std::to_string(n) + " but only " +
           std::to_string(left()) + " bytes follow" + kReconvert);
    return {reinterpret_cast<const char*>(take(n, what)), static_cast<size_t>(n)};
  }
  // Fails unless `count` items of at least `min_bytes` each can fit in the bytes left: checked
  // before a loop or a reservation, so a count of 2^63 fails at once.
  void check_count(uint64_t count, uint64_t min_bytes, const char* what) {
    if (count > left() / min_bytes)
      fail(std::string(what) + " count " + std::to_string(count) + " needs at least " +
           (count > UINT64_MAX / min_bytes ? std::string("2^64")
                                           : std::to_string(count * min_bytes)) +
           " bytes but only " + std::to_string(left()) + " bytes follow" + kReconvert);
  }

  std::string where = "header";

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
};

// Reads one value of type `type` (the type number already read).
GgufValue read_value(Cursor& c, uint32_t type_number) {
  if (!known_type(type_number))
    c.fail("unknown value type " + std::to_string(type_number) +
           " (GGUF defines 0..12); the file is corrupt or from a newer GGUF version");
  GgufValue v;
  v.type = static_cast<GgufType>(type_number);
  switch (v.type) {
    case GgufType::kU8:
      v.i = *c.take(1, "a u8 value");
      break;
    case GgufType::kI8:
      v.i = static_cast<int8_t>(*c.take(1, "an i8 value"));
      break;
    case GgufType::kU16:
      v.i = c.get<uint16_t>("a u16 value");
      break;
    case GgufType::kI16:
      v.i = c.get<int16_t>("an i16 value");
      break;
    case GgufType::kU32:
      v.i = c.get<uint32_t>("a u32 value");
      break;
    case GgufType::kI32:
      v.i = c.get<int32_t>("an i32 value");
      break;
    case GgufType::kI64:
      v.i = c.get<int64_t>("an i64 value");
      break;
    case GgufType::kU64:
      // A u64 past INT64_MAX lives in `u` only (`i` stays 0); the getters refuse it as an int64.
      v.u = c.get<uint64_t>("a u64 value");
      v.i = v.u <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(v.u) : 0;
      return v;
    case GgufType::kF32:
      v.f = c.get<float>("an f32 value");
      return v;
    case GgufType::kF64:
      v.f = c.get<double>("an f64 value");
      return v;
    case GgufType::kBool: {
      const uint8_t b = *c.take(1, "a bool value");
      if (b > 1) c.fail("bool value " + std::to_string(b) + " is neither 0 nor 1" + kReconvert);
      v.i = b;
      break;
    }
    case GgufType::kString:
      v.str = c.string("a string value");
      return v;
    case GgufType::kArray: {
      const uint32_t elem = c.get<uint32_t>("an array's element type");
      if (elem == static_cast<uint32_t>(GgufType::kArray))
        throw Error(ErrorKind::kUnsupported,
                    c.file() + ": " + c.where +
                        ": nested arrays are not supported (no model metadata uses them)");
      if (!known_type(elem))
        c.fail("array of unknown element type " + std::to_string(elem) + " (GGUF defines 0..12)" +
               kReconvert);
      v.elem = static_cast<GgufType>(elem);
      v.count = c.get<uint64_t>("an array's element count");
      if (v.elem == GgufType::kString) {
        c.check_count(v.count, 8, "string array");  // each string has at least its length
        v.strs.reserve(static_cast<size_t>(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.strs.push_back(c.string("an array string"));
      } else {
        const uint64_t eb = gguf_scalar_bytes(v.elem);
        c.check_count(v.count, eb, "array element");
        v.array_data = c.take(v.count * eb, "the array's elements");
      }
      return v;
    }
  }
  if (v.i >= 0) v.u = static_cast<uint64_t>(v.i);
  return v;
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = path;
  g->file_ = file;
  g->parse_all(file->data(), file->size());
  return g;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size,
                                          const std::string& name) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->name_ = name;
  g->parse_all(data, size);
  return g;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

void GgufFile::parse_all(const uint8_t* data, size_t size) {
  Cursor c(data, size, name_);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
    c.fail("not a GGUF file (it does not start with the magic bytes \"GGUF\"); give a .gguf file");
  c.take(4, "the magic");
  version_ = c.get<uint32_t>("the version");
  if (version_ == 1)
    c.fail(
        "GGUF version 1 is not supported (versions 2 and 3 are); re-convert the model with a "
        "current llama.cpp");
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    if (swapped >= 1 && swapped <= 3)
      c.fail("this is a big-endian GGUF file (version " + std::to_string(swapped) +
             " byte-swapped); longctx reads little-endian files only: convert it without "
             "--bigendian");
    c.fail("unsupported GGUF version " + std::to_string(version_) +
           " (versions 2 and 3 are supported)");
  }
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
  const uint64_t n_kv = c.get<uint64_t>("the metadata count");
  // Smallest key/value: 8-byte key length, 4-byte type, 1-byte value. Smallest tensor info:
  // 8-byte name length, 4-byte n_dims, one 8-byte dimension, 4-byte type, 8-byte offset.
  c.check_count(n_kv, 8 + 4 + 1, "metadata");
  c.check_count(n_tensors, 8 + 4 + 8 + 4 + 8, "tensor");

  for (uint64_t k = 0; k < n_kv; ++k) {
    c.where = "metadata entry " + std::to_string(k);
    const std::string_view key = c.string("a metadata key");
    c.where = "metadata key '" + std::string(key) + "'";
    if (kv_.count(key)) c.fail("the key appears twice" + std::string(kReconvert));
    const uint32_t type = c.get<uint32_t>("the value type");
    auto it = kv_.emplace(std::string(key), read_value(c, type)).first;
    key_order_.push_back(it->first);
  }

  if (const GgufValue* a = find("general.alignment")) {
    c.where = "metadata key 'general.alignment'";
    if (a->type != GgufType::kU32)
      c.fail(std::string("the value is a ") + gguf_type_name(a->type) + ", expected u32" +
             kReconvert);
    if (a->u == 0 || !std::has_single_bit(a->u))
      c.fail("alignment " + std::to_string(a->u) + " is not a non-zero power of two" + kReconvert);
    alignment_ = a->u;
  }

  c.where = "tensor directory";
  c.check_count(n_tensors, 8 + 4 + 8 + 4 + 8, "tensor");
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    c.where = "tensor " + std::to_string(k);
    GgufTensor t;
    t.name = std::string(c.string("a tensor name"));
    c.where = "tensor '" + t.name + "'";
    if (tensor_index_.count(t.name))
      c.fail("the tensor name appears twice" + std::string(kReconvert));
    const uint32_t n_dims = c.get<uint32_t>("the dimension count");
    if (n_dims < 1 || n_dims > 4)
      c.fail("has " + std::to_string(n_dims) + " dimensions; GGUF tensors have 1 to 4" +
             kReconvert);
    int64_t ne[4] = {1, 1, 1, 1};
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = c.get<uint64_t>("a dimension");
      if (n == 0 || n > static_cast<uint64_t>(INT64_MAX))
        c.fail("dimension " + std::to_string(d) + " is " + std::to_string(static_cast<int64_t>(n)) +
               "; dimensions must be positive" + kReconvert);
      ne[d] = static_cast<int64_t>(n);
      if (__builtin_mul_overflow(numel, ne[d], &numel))
        c.fail("the element count overflows 64 bits" + std::string(kReconvert));
    }
    t.ggml_type = c.get<uint32_t>("the ggml type");
    const std::optional<GgmlTypeInfo> info = ggml_type_info(t.ggml_type);
    if (!info)
      c.fail("unknown ggml type " + std::to_string(t.ggml_type) +
             " (not a type ggml defines; removed types 4, 5, 31-33, 36-38 included)" + kReconvert);
    t.ggml_type_name = info->name;
    t.type = ggml_compute_type(t.ggml_type);
    if (ne[0] % info->block_elems != 0)
      c.fail("rows of " + std::to_string(ne[0]) + " elements are not a multiple of " + info->name +
             "'s block of " + std::to_string(info->block_elems) + kReconvert);
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel / info->block_elems, info->block_bytes, &nbytes))
      c.fail("the byte size overflows 64 bits" + std::string(kReconvert));
    t.nbytes = static_cast<uint64_t>(nbytes);
    t.offset = c.get<uint64_t>("the data offset");
    if (t.offset % alignment_ != 0)
      c.fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(alignment_) + kReconvert);
    for (uint32_t d = 0; d < n_dims; ++d) t.shape.push_back(ne[n_dims - 1 - d]);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (a file without tensors may
  // end before it: vocabulary-only files do).
  c.where = "data section";
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) return;
  if (data_offset_ > size)
    c.fail("the data section would start at byte " + std::to_string(data_offset_) +
           " but the file has " + std::to_string(size) + kReconvert);
  const uint64_t data_bytes = size - data_offset_;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
      c.where = "tensor '" + t.name + "'";
      c.fail("its " + std::to_string(t.nbytes) + " bytes at data offset " +
             std::to_string(t.offset) + " end past the end of the file (" +
             std::to_string(data_bytes) + " data bytes)" + kReconvert);
    }
    t.data = data + data_offset_ + t.offset;
  }
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = tensors_[order[k - 1]];
    const GgufTensor& t = tensors_[order[k]];
    if (prev.offset + prev.nbytes > t.offset) {  // no overflow: both end inside the file
      c.where = "tensor '" + t.name + "'";
      c.fail("its data at offset " + std::to_string(t.offset) + " overlaps tensor '" + prev.name +
             "' (" + std::to_string(prev.offset) + ".." +
             std::to_string(prev.offset + prev.nbytes) + ")" + kReconvert);
    }
  }
}

}  // namespace longctx::io
