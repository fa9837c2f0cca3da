// The protobuf wire format written by hand (sentencepiece_model.proto): ModelProto {1: repeated
// SentencePiece {1: piece, 2: score, 3: type}, 2: TrainerSpec, 3: NormalizerSpec}.
#include "model/synthetic_spm.h"

#include <cstdio>
#include <cstring>
#include <set>

namespace longctx {
namespace {

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void tag(std::string& out, int field, int wire) { varint(out, (uint64_t(field) << 3) | wire); }

void bytes_field(std::string& out, int field, const std::string& s) {
  tag(out, field, 2);
  varint(out, s.size());
  out += s;
}

void int_field(std::string& out, int field, uint64_t v) {
  tag(out, field, 0);
  varint(out, v);
}

void float_field(std::string& out, int field, float f) {
  tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

// SentencePiece.Type
constexpr int kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;

}  // namespace

std::string synthetic_spm_model(const std::vector<std::string>& words, int64_t vocab) {
  struct Piece {
    std::string text;
    float score;
    int type;
  };
  std::vector<Piece> pieces = {{"<unk>", 0, kUnknown}, {"<s>", 0, kControl}, {"</s>", 0, kControl}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back({name, 0, kByte});
  }
  const std::string space = "\xE2\x96\x81";  // "▁", SentencePiece's word-start marker
  std::set<std::string> seen;
  auto add = [&](const std::string& t) {
    if (static_cast<int64_t>(pieces.size()) >= vocab || !seen.insert(t).second) return;
    // Merge priority: earlier pieces score higher.
    pieces.push_back({t, -static_cast<float>(pieces.size()), kNormal});
  };
  add(space);
  for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c));
  if (static_cast<int64_t>(pieces.size()) < 3 + 256 + 27 || vocab < 3 + 256 + 27) return "";
  for (const std::string& w : words) add(w);
  // Fill any remaining ids with letter pairs (every one reachable by merging two letters).
  for (char a = 'a'; a <= 'z'; ++a)
    for (char b = 'a'; b <= 'z'; ++b) add(std::string{a, b});
  for (int64_t i = 0; static_cast<int64_t>(pieces.size()) < vocab; ++i)
    add("<extra_" + std::to_string(i) + ">");

  std::string out;
  for (const Piece& p : pieces) {
    std::string sp;
    bytes_field(sp, 1, p.text);
    float_field(sp, 2, p.score);
    int_field(sp, 3, static_cast<uint64_t>(p.type));
    bytes_field(out, 1, sp);
  }
  std::string trainer;
  int_field(trainer, 3, 2);  // model_type BPE
  int_field(trainer, 4, static_cast<uint64_t>(vocab));
  int_field(trainer, 35, 1);  // byte_fallback
  int_field(trainer, 40, 0);  // unk_id
  int_field(trainer, 41, 1);  // bos_id
  int_field(trainer, 42, 2);  // eos_id
  int_field(trainer, 43, static_cast<uint64_t>(int64_t{-1}));  // pad_id: none
  bytes_field(out, 2, trainer);
  std::string norm;
  bytes_field(norm, 1, "identity");
  int_field(norm, 3, 1);  // add_dummy_prefix
  int_field(norm, 4, 0);  // remove_extra_whitespaces: off, as Llama 2's
  int_field(norm, 5, 1);  // escape_whitespaces
  bytes_field(out, 3, norm);
  return out;
}

}  // namespace longctx
