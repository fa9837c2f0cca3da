// libFuzzer harness for the safetensors reader (WeightSource::parse_safetensors, io/weights.h):
// any bytes either parse or throw a clean longctx::Error; never a crash, an over-read or a huge
// allocation. A parsed file has every tensor's bytes read (ASan checks each one is inside the
// input), its shape x dtype checked against its size, and unsupported dtypes refused by find().
//
// Input: a whole .safetensors file, or (first byte '{') just a header: the harness then adds the
// 8-byte length in front and a 256-byte data section behind, so that mutations explore the JSON
// rather than the length field.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_util.h"
#include "io/weights.h"

using namespace longctx;
using namespace longctx::fuzz;

namespace {

void exercise(const io::WeightSource& w, const uint8_t* data, size_t size) {
  unsigned sum = 0;
  size_t total = 0;
  for (const auto& [name, t] : w.tensors()) {
    if (name != t.name || w.find(name) != &t || &w.get(name) != &t) __builtin_trap();
    const auto* p = static_cast<const uint8_t*>(t.data);
    if (p < data || t.nbytes > size || p + t.nbytes > data + size) __builtin_trap();
    if (t.offset != static_cast<size_t>(p - data)) __builtin_trap();
    // Supported dtypes are F32/F16/BF16: their size decides the bytes.
    const BlockLayout layout = block_layout(t.type);
    if (layout.elems != 1) __builtin_trap();
    const auto es = static_cast<uint64_t>(layout.bytes);
    uint64_t want = es;
    for (int64_t d : t.shape) {
      if (d < 0) __builtin_trap();
      want *= static_cast<uint64_t>(d);  // cannot overflow: the reader checked it
    }
    if (want != t.nbytes || static_cast<uint64_t>(t.numel()) * es != t.nbytes) __builtin_trap();
    for (size_t i = 0; i < t.nbytes; ++i) sum += p[i];
    total += t.nbytes;
  }
  if (total != w.total_bytes()) __builtin_trap();
  for (const auto& [name, dtype] : w.unsupported()) {
    if (w.tensors().count(name)) __builtin_trap();
    try {
      (void)w.find(name);
      __builtin_trap();  // an unsupported dtype must be refused by name
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kUnsupported) __builtin_trap();
    }
  }
  quietly([&] { (void)w.get("fuzz.missing.tensor"); });
  if (sum == 0xdeadbeef) __builtin_trap();  // keeps the reads
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> wrapped;
  if (size > 0 && data[0] == '{') {
    const uint64_t n = size;
    wrapped.resize(8 + size + 256);
    std::memcpy(wrapped.data(), &n, 8);
    std::memcpy(wrapped.data() + 8, data, size);
    for (size_t i = 0; i < 256; ++i) wrapped[8 + size + i] = static_cast<uint8_t>(i);
    data = wrapped.data();
    size = wrapped.size();
  }
  try {
    auto w = io::WeightSource::parse_safetensors(data, size, "fuzz.safetensors");
    exercise(*w, data, size);
  } catch (const Error& e) {
    check_error(e);
  }
  return 0;
}
