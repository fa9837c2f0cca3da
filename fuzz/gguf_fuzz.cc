// libFuzzer harness for the GGUF reader (io/gguf.h): any input either parses or throws
// longctx::Error; never a crash, an over-read, a hang or a huge allocation. A parsed file has
// every getter called on every key, every tensor's bytes read, its invariants checked, and is
// written again by GgufWriter and re-read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"

using namespace longctx;
using namespace longctx::io;

namespace {

template <typename Fn>
void quietly(Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
  }
}

void exercise(const GgufFile& g, const uint8_t* data, size_t size) {
  if (g.keys().size() != g.metadata().size()) __builtin_trap();
  for (std::string_view k : g.keys()) {
    if (g.find(k) == nullptr) __builtin_trap();
    quietly([&] { (void)g.get_string(k); });
    quietly([&] { (void)g.get_int(k); });
    quietly([&] { (void)g.get_int(k, -1, 1000); });
    quietly([&] { (void)g.get_float(k); });
    quietly([&] { (void)g.get_bool(k); });
    quietly([&] { (void)g.get_strings(k); });
    quietly([&] { (void)g.get_floats(k); });
    quietly([&] { (void)g.get_ints(k); });
    quietly([&] { (void)g.opt_string(k); });
    quietly([&] { (void)g.opt_int(k); });
    quietly([&] { (void)g.opt_float(k); });
    quietly([&] { (void)g.opt_bool(k); });
  }
  quietly([&] { (void)g.get_int("missing.key"); });
  if (g.opt_int("missing.key").has_value()) __builtin_trap();

  const uint64_t a = g.alignment();
  if (a == 0 || (a & (a - 1)) != 0 || g.data_offset() % a != 0) __builtin_trap();
  unsigned sum = 0;
  for (const GgufTensor& t : g.tensors()) {
    if (g.find_tensor(t.name) != &t) __builtin_trap();
    if (t.offset % a != 0 || t.shape.empty() || t.shape.size() > 4) __builtin_trap();
    if (t.data < data || t.nbytes > size || t.data + t.nbytes > data + size) __builtin_trap();
    for (uint64_t i = 0; i < t.nbytes; ++i) sum += t.data[i];  // ASan checks every byte
  }
  if (sum == 0xdeadbeef) __builtin_trap();  // keeps the reads

  // What was read can be written again, and reads back the same.
  GgufWriter w;
  try {
    for (std::string_view k : g.keys()) w.set(k, *g.find(k));
    for (const GgufTensor& t : g.tensors())
      w.add_tensor(t.name, t.ggml_type, t.shape, t.data, t.nbytes);
  } catch (const Error&) {
    return;  // e.g. an empty key, which the reader accepts but the writer refuses
  }
  // A general.alignment of 2^31 pads even an empty file to 2 GiB: not worth building here.
  if (w.file_bytes() > 16 * uint64_t{size} + (64 << 10)) return;
  const std::vector<uint8_t> bytes = w.bytes();
  auto again = GgufFile::parse(bytes.data(), bytes.size(), "rewritten");  // must not throw
  if (again->metadata().size() != g.metadata().size() ||
      again->tensors().size() != g.tensors().size())
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = GgufFile::parse(data, size, "fuzz.gguf");
    exercise(*g, data, size);
  } catch (const Error&) {
  }
  return 0;
}
