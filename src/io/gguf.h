// GGUF files (llama.cpp's model format, versions 2 and 3): metadata key/values and tensor
// directory, read from a memory mapping without copying tensor data.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
// metadata (key string, u32 value type, value), the tensor infos (name, u32 n_dims, u64 ne[n_dims],
// u32 ggml type, u64 offset), padding to general.alignment (default 32), then the data section;
// a tensor's data starts at data_offset + its offset. Strings are u64 length + bytes (no NUL).
//
// Every count, length, dimension and offset is checked against the bytes actually present before
// anything is allocated: a truncated file, a string length past the end, an array of 2^63
// elements, a tensor beyond the file or overlapping another, an unknown value or tensor type is an
// Error(kFormat) naming the file, the key or tensor, and what is wrong.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor_type.h"

namespace longctx::io {

class MappedFile;

// GGUF metadata value types (the numbers of the format).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* gguf_type_name(GgufType t);  // "u32", "string", "array", ...
// Bytes of one value of a fixed-size type (u8 .. f64, bool); 0 for string, array and unknown.
uint64_t gguf_scalar_bytes(GgufType t);

// One metadata value. Scalars: the integer types fill `i` (and `u` when non-negative), floats
// fill `f`, bool fills `i` (0/1; any other byte is an Error(kFormat)), strings fill `str`. A u64
// past INT64_MAX is only in `u` (`i` is 0; get_int refuses it as out of range). Arrays: `elem` is
// the element type, `count` the element count; string elements are in `strs` (views into the file),
// numeric elements stay in the file at `array_data` (count elements of the element type,
// little-endian, unaligned). Nested arrays are refused as Error(kUnsupported) (no model metadata
// uses them).
struct GgufValue {
  GgufType type = GgufType::kU8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  std::string_view str;
  GgufType elem = GgufType::kU8;
  uint64_t count = 0;
  std::vector<std::string_view> strs;
  const uint8_t* array_data = nullptr;

  bool is_integer() const;  // any of the integer types (not bool)
  bool is_float() const;    // f32 / f64
};

// One tensor of the directory. `shape` is row-major like safetensors (outermost first), i.e. the
// reverse of GGUF's ne[]: a matrix of ne = {cols, rows} has shape {rows, cols}.
struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;  // the number in the file
  // The TensorType longctx computes with; nullopt for a valid ggml type longctx does not compute
  // with (Q2_K, IQ4_XS, I32, ...), which is listed but refused when the model asks for it.
  std::optional<TensorType> type;
  std::string ggml_type_name;  // "Q4_K", "F32", "IQ2_XXS", ...
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // relative to the data section, as stored
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
};

class GgufFile {
 public:
  // Maps PATH and parses it. Error(kIo) when it cannot be opened; Error(kFormat) when malformed.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a buffer that outlives the result (fuzzing, tests). `name` stands for the file in
  // messages.
  static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  const std::string& path() const { return name_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  // The mapping (null when parsed from a caller's buffer).
  const std::shared_ptr<MappedFile>& file() const { return file_; }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // The keys in the order the file holds them (metadata() is sorted by key).
  const std::vector<std::string_view>& keys() const { return key_order_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. Error(kFormat) naming the key and the file when the key is missing (the
  // message says which metadata key the model needs) or holds another type; integers are
  // range-checked (a negative value or one past the target type is an error).
  // get_int returns any value int64 holds (negative i8..i64 values included; a u64 past
  // INT64_MAX is an error); the bounded form also refuses values outside [min, max], naming them
  // (e.g. get_int("llama.block_count", 1, 65536)). get_ints refuses elements outside int32.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;  // any integer type
  int64_t get_int(std::string_view key, int64_t min, int64_t max) const;
  double get_float(std::string_view key) const;  // f32/f64, or an integer type
  bool get_bool(std::string_view key) const;
  // Array getters: the element type must match (integer arrays convert between integer types
  // with range checks; float arrays accept f32/f64).
  std::vector<std::string_view> get_strings(std::string_view key) const;
  std::vector<float> get_floats(std::string_view key) const;
  std::vector<int32_t> get_ints(std::string_view key) const;
  // Optional forms: the default when the key is absent (a present key of the wrong type is still
  // an error).
  std::optional<std::string> opt_string(std::string_view key) const;
  std::optional<int64_t> opt_int(std::string_view key) const;
  std::optional<double> opt_float(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse_all(const uint8_t* data, size_t size);

  std::shared_ptr<MappedFile> file_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<std::string_view> key_order_;  // views of kv_'s keys
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// ggml's block layout for a ggml type number (every type the format defines, so files of types
// longctx does not compute with still validate); nullopt for a number no ggml type has.
struct GgmlTypeInfo {
  const char* name;  // "Q4_K"
  int64_t block_elems;
  int64_t block_bytes;
};
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t ggml_type);
// The TensorType of a ggml type number; nullopt for types longctx does not compute with.
std::optional<TensorType> ggml_compute_type(uint32_t ggml_type);
// The ggml type number of a TensorType (F32 0, F16 1, Q4_0 2, Q8_0 8, Q4_K 12, Q5_K 13, Q6_K 14,
// BF16 30).
uint32_t ggml_type_number(TensorType t);

}  // namespace longctx::io
