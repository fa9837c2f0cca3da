// Builds small GGUF files in memory (metadata only, no tensors) for tokenizer tests: the bytes are
// laid out by hand from the format description, independently of the reader under test.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace longctx::test {

class MiniGguf {
 public:
  void str(const std::string& key, const std::string& v) {
    head(key, 8);
    put_str(v);
  }
  void u32(const std::string& key, uint32_t v) {
    head(key, 4);
    put(v);
  }
  void boolean(const std::string& key, bool v) {
    head(key, 7);
    body_ += static_cast<char>(v ? 1 : 0);
  }
  void strs(const std::string& key, const std::vector<std::string>& v) {
    array(key, 8, v.size());
    for (const auto& s : v) put_str(s);
  }
  void f32s(const std::string& key, const std::vector<float>& v) {
    array(key, 6, v.size());
    for (float x : v) put(x);
  }
  void i32s(const std::string& key, const std::vector<int32_t>& v) {
    array(key, 5, v.size());
    for (int32_t x : v) put(x);
  }
  // Header (magic, version 3, no tensors, the key count), the key/values, padding to 32 bytes.
  std::vector<uint8_t> bytes() const {
    std::string out = "GGUF";
    auto put_to = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put_to(uint32_t{3});
    put_to(uint64_t{0});
    put_to(n_);
    out += body_;
    while (out.size() % 32 != 0) out += '\0';
    return std::vector<uint8_t>(out.begin(), out.end());
  }

 private:
  template <typename T>
  void put(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_str(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    body_ += s;
  }
  void head(const std::string& key, uint32_t type) {
    put_str(key);
    put(type);
    ++n_;
  }
  void array(const std::string& key, uint32_t elem, size_t n) {
    head(key, 9);
    put(elem);
    put(static_cast<uint64_t>(n));
  }

  std::string body_;
  uint64_t n_ = 0;
};

}  // namespace longctx::test
