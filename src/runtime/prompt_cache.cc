#include "runtime/prompt_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/rope_freqs.h"
#include "runtime/session.h"

namespace longctx {

namespace {

using nlohmann::json;

constexpr char kMagic[8] = {'L', 'C', 'P', 'C', 'A', 'C', 'H', 'E'};
constexpr size_t kPrefixBytes = 32;  // magic, version, reserved, header length, header checksum

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Which RoPE frequencies keys rotated for a sequence of rope length `len` carry.
std::string rope_set(const ModelConfig& cfg, int64_t len) {
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == RopeType::kLongRope)
    return len > rs.original_max_position_embeddings ? "longrope long factors"
                                                     : "longrope short factors";
  if (rs.type == RopeType::kDynamic && len > cfg.max_position_embeddings)
    return "dynamic NTK at length " + std::to_string(len);
  return rs.name;
}

// The part of the header that must equal this session's for the file to be usable, with what
// each field means in a refusal.
json identity(const Session& s, int64_t rope_len) {
  const KVCacheShape& sh = s.kv().shape();
  return {{"model", hex(s.model().fingerprint())},
          {"kv_k", kv_type_name(sh.k_type)},
          {"kv_v", kv_type_name(sh.v_type)},
          {"block_size", sh.block_size},
          {"layers", sh.n_layers},
          {"kv_heads", sh.n_kv_heads},
          {"head_dim", sh.head_dim},
          {"windows", sh.layer_window},
          {"rope", rope_set(s.model().config(), rope_len)}};
}

std::string field_meaning(const std::string& key) {
  if (key == "model") return "another model (its config or tensor directory differs)";
  if (key == "kv_k") return "another key type (--kv-dtype / --kv-dtype-k)";
  if (key == "kv_v") return "another value type (--kv-dtype / --kv-dtype-v)";
  if (key == "rope") return "other RoPE factors";
  return "another KV cache shape (" + key + ")";
}

size_t block_bytes(const Session& s) { return s.kv().shape().bytes_per_layer_block(); }

// Reads n bytes at `at` of the file into dst; false when they are not all there.
using ReadAt = std::function<bool(uint64_t at, void* dst, size_t n)>;

PromptCacheLoad load_from(Session& s, uint64_t size, const ReadAt& read_at,
                          const std::vector<int32_t>& prompt);

}  // namespace

void save_prompt_cache(const Session& s, const std::string& path) {
  if (s.options().pipeline)
    throw Error(ErrorKind::kUnsupported,
                "--prompt-cache needs the whole KV cache in one process; under mpirun each rank "
                "holds only its layers' part");
  const KVCache& kv = s.kv();
  const int L = kv.shape().n_layers;
  const size_t bb = block_bytes(s);
  json h = identity(s, s.rope_len());
  h["version"] = kPromptCacheVersion;
  h["rope_len"] = s.rope_len();
  h["n_tokens"] = kv.n_tokens();
  h["tokens"] = s.tokens();
  std::vector<uint64_t> sums;
  std::vector<int64_t> first(static_cast<size_t>(L));
  size_t data = 0;
  for (int l = 0; l < L; ++l) {
    first[static_cast<size_t>(l)] = kv.first_live_block(l);
    for (int64_t b = kv.first_live_block(l); b < kv.blocks_held(l); ++b) {
      const uint8_t* p = kv.block_bytes(l, b);
      if (!p) throw Error(ErrorKind::kInternal, "a KV block to save is missing");
      sums.push_back(XXH64(p, bb, 0));
      data += bb;
    }
  }
  const std::vector<float>& pending = kv.pending_keys();
  h["first_block"] = first;
  h["block_checksums"] = sums;
  h["pending_from"] = kv.pending_from();
  h["pending_checksum"] = XXH64(pending.data(), pending.size() * sizeof(float), 0);
  data += pending.size() * sizeof(float);
  h["data_bytes"] = data;
  const std::string text = h.dump();

  uint8_t prefix[kPrefixBytes] = {};
  std::memcpy(prefix, kMagic, 8);
  const uint32_t version = kPromptCacheVersion;
  std::memcpy(prefix + 8, &version, 4);
  const uint64_t hlen = text.size(), hsum = XXH64(text.data(), text.size(), 0);
  std::memcpy(prefix + 16, &hlen, 8);
  std::memcpy(prefix + 24, &hsum, 8);
  io::AtomicFileWriter out(path, kPrefixBytes + text.size() + data);
  out.write_at(0, prefix, kPrefixBytes);
  out.write_at(kPrefixBytes, text.data(), text.size());
  uint64_t at = kPrefixBytes + text.size();
  for (int l = 0; l < L; ++l)
    for (int64_t b = kv.first_live_block(l); b < kv.blocks_held(l); ++b, at += bb)
      out.write_at(at, kv.block_bytes(l, b), bb);
  if (!pending.empty()) out.write_at(at, pending.data(), pending.size() * sizeof(float));
  out.commit();
}

PromptCacheLoad load_prompt_cache(Session& s, const std::string& path,
                                  const std::vector<int32_t>& prompt) {
  const auto t0 = std::chrono::steady_clock::now();
  PromptCacheLoad r;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    // Read with pread straight into the KV blocks: a mapping would leave file pages resident
    // beside the cache it fills (the kernel maps pages around each fault).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      r.refused = "it cannot be read (" + std::string(fd < 0 ? std::strerror(errno) : "not a regular file") + ")";
    } else {
      const ReadAt read_at = [fd](uint64_t at, void* dst, size_t n) {
        auto* out = static_cast<uint8_t*>(dst);
        while (n > 0) {
          const ssize_t got = ::pread(fd, out, n, static_cast<off_t>(at));
          if (got < 0 && errno == EINTR) continue;
          if (got <= 0) return false;
          out += got;
          at += static_cast<uint64_t>(got);
          n -= static_cast<size_t>(got);
        }
        return true;
      };
      r = load_from(s, static_cast<uint64_t>(st.st_size), read_at, prompt);
    }
    if (fd >= 0) ::close(fd);
    r.found = true;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

PromptCacheLoad load_prompt_cache(Session& s, const uint8_t* data, size_t size,
                                  const std::vector<int32_t>& prompt) {
  const ReadAt read_at = [data, size](uint64_t at, void* dst, size_t n) {
    if (at > size || n > size - at) return false;
    std::memcpy(dst, data + at, n);
    return true;
  };
  return load_from(s, size, read_at, prompt);
}

namespace {

PromptCacheLoad load_from(Session& s, uint64_t size, const ReadAt& read_at,
                          const std::vector<int32_t>& prompt) {
  PromptCacheLoad r;
  r.found = true;
  auto done = [&](std::string why) {
    r.refused = std::move(why);
    return r;
  };
  if (s.options().pipeline)
    return done("it cannot be used under mpirun (each rank holds only its layers' cache)");
  if (s.n_past() != 0) return done("the session already holds tokens");
  if (prompt.empty()) return done("the prompt is empty");
  uint8_t prefix[kPrefixBytes];
  if (size < kPrefixBytes || !read_at(0, prefix, kPrefixBytes) ||
      std::memcmp(prefix, kMagic, 8) != 0)
    return done("it is not a longctx prompt cache (no LCPCACHE magic)");
  uint32_t version = 0, reserved = 0;
  uint64_t hlen = 0, hsum = 0;
  std::memcpy(&version, prefix + 8, 4);
  std::memcpy(&reserved, prefix + 12, 4);
  std::memcpy(&hlen, prefix + 16, 8);
  std::memcpy(&hsum, prefix + 24, 8);
  if (version != kPromptCacheVersion || reserved != 0)
    return done("it is format version " + std::to_string(version) + ", this longctx reads " +
                std::to_string(kPromptCacheVersion));
  if (hlen > size - kPrefixBytes) return done("it is truncated (its header runs past the end)");
  // What a header for this session's context can be at most (a token is at most 12 characters
  // of JSON, a checksum 21), so that a file claiming more is refused before it is read.
  const KVCacheShape& shape = s.kv().shape();
  const uint64_t most_blocks =
      uint64_t(shape.n_layers) * uint64_t(s.context() / shape.block_size + 1);
  const uint64_t most_header = 4096 + uint64_t(s.context()) * 12 + most_blocks * 21 +
                               uint64_t(shape.n_layers) * 48 + shape.layer_window.size() * 24;
  if (hlen > most_header)
    return done("its header (" + std::to_string(hlen) + " bytes) is larger than any cache of this "
                "context (" + std::to_string(s.context()) + " tokens) can have");
  // The header is small beside the blocks (about 7 bytes a token); it is read whole.
  std::string header(static_cast<size_t>(hlen), '\0');
  if (!read_at(kPrefixBytes, header.data(), header.size()))
    return done("it is truncated (its header cannot be read)");
  if (XXH64(header.data(), header.size(), 0) != hsum)
    return done("its header is corrupt (checksum mismatch)");
  json h;
  std::vector<int32_t> tokens;
  std::vector<int64_t> first, pending_from;
  std::vector<uint64_t> sums;
  int64_t n = 0, rope_len = 0;
  uint64_t pending_sum = 0, data = 0;
  try {
    h = json::parse(header);
    n = h.at("n_tokens").get<int64_t>();
    rope_len = h.at("rope_len").get<int64_t>();
    tokens = h.at("tokens").get<std::vector<int32_t>>();
    first = h.at("first_block").get<std::vector<int64_t>>();
    sums = h.at("block_checksums").get<std::vector<uint64_t>>();
    pending_from = h.at("pending_from").get<std::vector<int64_t>>();
    pending_sum = h.at("pending_checksum").get<uint64_t>();
    data = h.at("data_bytes").get<uint64_t>();
  } catch (const std::exception& e) {
    return done(std::string("its header is malformed (") + e.what() + ")");
  }
  // Everything that changes the numbers, in the order a user can act on it.
  const int64_t want_rope = rope_length(s.model().config().rope_scaling,
                                        static_cast<int64_t>(prompt.size()),
                                        s.options().planned_tokens);
  const json mine = identity(s, want_rope);
  for (const char* key :
       {"model", "kv_k", "kv_v", "rope", "block_size", "layers", "kv_heads", "head_dim", "windows"}) {
    const json& value = mine.at(key);
    if (!h.contains(key) || h[key] != value)
      return done("it was saved from " + field_meaning(key) + ": the file has " +
                  (h.contains(key) ? h[key].dump() : std::string("none")) + ", this run " +
                  value.dump());
  }
  const KVCacheShape& sh = s.kv().shape();
  const int L = sh.n_layers;
  const size_t bb = sh.bytes_per_layer_block();
  const int64_t bs = sh.block_size, held = (n + bs - 1) / bs;
  if (n < 0 || static_cast<int64_t>(tokens.size()) != n || static_cast<int>(first.size()) != L)
    return done("its header is inconsistent (token count or layers)");
  if (n > s.context())
    return done("it holds " + std::to_string(n) + " tokens, more than the context (" +
                std::to_string(s.context()) + "; raise -c)");
  size_t blocks = 0;
  for (int64_t f0 : first) {
    if (f0 < 0 || f0 > held) return done("its header is inconsistent (block table)");
    blocks += static_cast<size_t>(held - f0);
  }
  const size_t pending_bytes = s.kv().pending_keys().size() * sizeof(float);
  if (sums.size() != blocks || data != blocks * bb + pending_bytes ||
      pending_from.size() != s.kv().pending_from().size())
    return done("its header is inconsistent (block sizes)");
  if (size != kPrefixBytes + hlen + data)
    return done(size < kPrefixBytes + hlen + data
                    ? "it is truncated (" + std::to_string(size) + " bytes of " +
                          std::to_string(kPrefixBytes + hlen + data) + ")"
                    : "it has " + std::to_string(size - (kPrefixBytes + hlen + data)) +
                          " bytes past its end");
  r.cached = n;

  // The prefix to reuse: the tokens both hold, leaving the prompt's last token to run.
  int64_t use = 0;
  const int64_t most = std::min<int64_t>(n, static_cast<int64_t>(prompt.size()) - 1);
  while (use < most && tokens[static_cast<size_t>(use)] == prompt[static_cast<size_t>(use)]) ++use;
  // int4 keys: a shorter prefix ends on a whole key group (the codes an uninterrupted run has).
  if (kernels::kv_per_channel(sh.k_type, true) && use < n)
    use = use / kernels::kKvChannelGroup * kernels::kKvChannelGroup;
  if (use == 0) return done("its tokens share no prefix with this prompt");
  for (int l = 0; l < L; ++l) {
    const int64_t w = sh.window(l);
    if (w > 0 && std::max<int64_t>(0, use - w + 1) < first[static_cast<size_t>(l)] * bs)
      return done("it ends " + std::to_string(n - use) +
                  " tokens past where this prompt departs from it, and a sliding-window layer "
                  "already dropped the keys that position needs");
  }

  // Blocks, read into the cache and each checked against its checksum.
  const uint64_t blocks_at = kPrefixBytes + hlen;
  std::vector<int64_t> offset(static_cast<size_t>(L));
  size_t i = 0;
  for (int l = 0; l < L; ++l) {
    offset[static_cast<size_t>(l)] = static_cast<int64_t>(i);
    i += static_cast<size_t>(held - first[static_cast<size_t>(l)]);
  }
  std::vector<float> pending(s.kv().pending_keys().size());
  if (!pending.empty()) {
    if (!read_at(blocks_at + blocks * bb, pending.data(), pending_bytes) ||
        XXH64(pending.data(), pending_bytes, 0) != pending_sum)
      return done("its int4 pending keys are corrupt (checksum mismatch)");
  }
  try {
    s.restore_state(
        n, first,
        [&](int layer, int64_t block, uint8_t* dst) {
          const size_t k = static_cast<size_t>(offset[static_cast<size_t>(layer)] + block -
                                               first[static_cast<size_t>(layer)]);
          if (!read_at(blocks_at + k * bb, dst, bb) || XXH64(dst, bb, 0) != sums[k])
            throw Error(ErrorKind::kFormat, "block " + std::to_string(block) + " of layer " +
                                                std::to_string(layer) +
                                                " is corrupt (checksum mismatch)");
        },
        pending, pending_from, tokens, rope_len);
  } catch (const Error& e) {
    return done(std::string("its ") + (e.kind() == ErrorKind::kFormat ? "" : "state: ") + e.what());
  }
  s.truncate(use);
  r.reused = use;
  return done("");
}

}  // namespace

}  // namespace longctx
