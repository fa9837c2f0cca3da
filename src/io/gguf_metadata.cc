// GgufFile's typed metadata getters (io/gguf.h): a missing key, another type or an integer out
// of the target's range is an Error(kFormat) naming the key and the file.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/gguf.h"

namespace longctx::io {

namespace {

std::string describe(const GgufValue& v) {
  if (v.type != GgufType::kArray) return gguf_type_name(v.type);
  return std::string("array of ") + gguf_type_name(v.elem);
}

[[noreturn]] void wrong_type(const std::string& file, std::string_view key, const GgufValue& v,
                             const char* expected) {
  throw Error(ErrorKind::kFormat, file + ": metadata key '" + std::string(key) + "' is " +
                                      describe(v) + ", expected " + expected +
                                      "; the file was not written for this model type");
}

[[noreturn]] void out_of_range(const std::string& file, std::string_view key,
                               const std::string& value, const char* target) {
  throw Error(ErrorKind::kFormat, file + ": metadata key '" + std::string(key) + "' holds " +
                                      value + ", out of the range of " + target);
}

// Element k of an array (elements are unaligned in the file).
template <typename T>
T load(const uint8_t* p, uint64_t k) {
  T v;
  std::memcpy(&v, p + k * sizeof(T), sizeof(T));
  return v;
}

// Integer element k of an integer array: false when it does not fit int64 (a u64 past
// INT64_MAX), which *u then holds.
bool int_elem(const GgufValue& v, uint64_t k, int64_t* i, uint64_t* u) {
  switch (v.elem) {
    case GgufType::kU8:
      *i = load<uint8_t>(v.array_data, k);
      return true;
    case GgufType::kI8:
      *i = load<int8_t>(v.array_data, k);
      return true;
    case GgufType::kU16:
      *i = load<uint16_t>(v.array_data, k);
      return true;
    case GgufType::kI16:
      *i = load<int16_t>(v.array_data, k);
      return true;
    case GgufType::kU32:
      *i = load<uint32_t>(v.array_data, k);
      return true;
    case GgufType::kI32:
      *i = load<int32_t>(v.array_data, k);
      return true;
    case GgufType::kI64:
      *i = load<int64_t>(v.array_data, k);
      return true;
    case GgufType::kU64:
      *u = load<uint64_t>(v.array_data, k);
      if (*u > static_cast<uint64_t>(INT64_MAX)) return false;
      *i = static_cast<int64_t>(*u);
      return true;
    default:
      return false;
  }
}

// The value of `key`; Error(kFormat) naming the key and the file when it is missing.
const GgufValue& require(const GgufFile& g, std::string_view key) {
  const GgufValue* v = g.find(key);
  if (v == nullptr)
    throw Error(ErrorKind::kFormat,
                g.path() + ": metadata key '" + std::string(key) +
                    "' is missing, and the model needs it; the file is incomplete or was converted "
                    "for another architecture (re-convert it with a current llama.cpp)");
  return *v;
}

bool is_integer_type(GgufType t) {
  GgufValue probe;
  probe.type = t;
  return probe.is_integer();
}

}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->type != GgufType::kString) wrong_type(name_, key, *v, "a string");
  return std::string(v->str);
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (!v->is_integer()) wrong_type(name_, key, *v, "an integer");
  if (v->type == GgufType::kU64 && v->u > static_cast<uint64_t>(INT64_MAX))
    out_of_range(name_, key, std::to_string(v->u), "int64");
  return v->i;
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->is_integer()) return static_cast<double>(get_int(key));
  if (!v->is_float()) wrong_type(name_, key, *v, "a float");
  return v->f;
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->type != GgufType::kBool) wrong_type(name_, key, *v, "a bool");
  return v->i != 0;
}

std::vector<std::string_view> GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->type != GgufType::kArray || v->elem != GgufType::kString)
    wrong_type(name_, key, *v, "an array of strings");
  return v->strs;
}

std::vector<float> GgufFile::get_floats(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->type != GgufType::kArray || (v->elem != GgufType::kF32 && v->elem != GgufType::kF64))
    wrong_type(name_, key, *v, "an array of f32 or f64");
  std::vector<float> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    if (v->elem == GgufType::kF32) {
      out[k] = load<float>(v->array_data, k);
      continue;
    }
    const double d = load<double>(v->array_data, k);
    if (std::isfinite(d) && std::fabs(d) > FLT_MAX)
      out_of_range(name_, key, "element " + std::to_string(k) + " = " + std::to_string(d), "f32");
    out[k] = static_cast<float>(d);
  }
  return out;
}

std::vector<int32_t> GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = &require(*this, key);
  if (v->type != GgufType::kArray || !is_integer_type(v->elem))
    wrong_type(name_, key, *v, "an array of integers");
  std::vector<int32_t> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    int64_t i = 0;
    uint64_t u = 0;
    if (!int_elem(*v, k, &i, &u))
      out_of_range(name_, key, "element " + std::to_string(k) + " = " + std::to_string(u), "i32");
    if (i < INT32_MIN || i > INT32_MAX)
      out_of_range(name_, key, "element " + std::to_string(k) + " = " + std::to_string(i), "i32");
    out[k] = static_cast<int32_t>(i);
  }
  return out;
}

std::optional<std::string> GgufFile::opt_string(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}

std::optional<int64_t> GgufFile::opt_int(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}

std::optional<double> GgufFile::opt_float(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}

std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

}  // namespace longctx::io
