// Inputs the libFuzzer harnesses fuzz/tokenizer_json and fuzz/sentencepiece found, or their
// classes: a loaded tokenizer never hands out an id outside its vocabulary, and a malformed file
// is a clean Error naming it, not a crash or a huge allocation.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

// Runs f, which must throw Error of `kind` whose message has every part.
template <typename F>
void expect_error(F&& f, ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

const char* kTiny = R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}})";

std::unique_ptr<Tokenizer> tiny(const std::string& config_json) {
  return parse_tokenizer_json(kTiny, "tokenizer.json", "", config_json);
}

TEST(TokenizerJsonFuzzRegression, LoadsFromText) {
  const auto t = tiny("");
  EXPECT_EQ(t->vocab_size(), 3);
  EXPECT_EQ(t->encode("ab", false), (std::vector<int32_t>{2}));
  EXPECT_EQ(t->bos_id(), -1);
}

// config.json's bos/eos ids were taken as they were: encode(add_special) gave id 2147483647.
TEST(TokenizerJsonFuzzRegression, ConfigIdsOutsideTheVocabularyAreIgnored) {
  auto t = tiny(R"({"bos_token_id":2147483647,"eos_token_id":-5})");
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_EQ(t->eos_id(), -1);
  t = tiny(R"({"bos_token_id":4294967296,"eos_token_id":[3, 1]})");
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_EQ(t->eos_id(), -1);
  t = tiny(R"({"bos_token_id":1,"eos_token_id":[2, 0]})");  // in range: used
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
}

// A TemplateProcessing special token with an id beyond the vocabulary was added to encodings.
TEST(TokenizerJsonFuzzRegression, PostProcessorIdOutsideTheVocabulary) {
  const std::string j =
      R"({"model":{"type":"BPE","vocab":{"a":0,"<s>":1}},"post_processor":{"type":)"
      R"("TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},)"
      R"({"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[268]}}}})";
  expect_error([&] { parse_tokenizer_json(j, "tokenizer.json", "", ""); }, ErrorKind::kFormat,
               {"tokenizer.json", "post_processor", "268"});
}

// An id far beyond the tokens the file defines sized the id -> token table by it (an id of 1e9
// ended in std::bad_alloc; 2e7 took 640 MB).
TEST(TokenizerJsonFuzzRegression, IdFarBeyondTheTokensIsRefused) {
  expect_error(
      [] {
        parse_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":0,"b":20000000}}})",
                             "tokenizer.json", "", "");
      },
      ErrorKind::kFormat, {"tokenizer.json", "20000000", "out of range"});
  expect_error(
      [] {
        parse_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":0}},"added_tokens":)"
                             R"([{"id":1000000000,"content":"<x>","special":true}]})",
                             "tokenizer.json", "", "");
      },
      ErrorKind::kFormat, {"tokenizer.json", "added_tokens", "out of range"});
  // Gaps within the bound are fine (ids need not be contiguous).
  EXPECT_EQ(parse_tokenizer_json(R"({"model":{"type":"BPE","vocab":{"a":0,"b":200}}})",
                                 "tokenizer.json", "", "")
                ->vocab_size(),
            201);
}

// Found by the harness: a tokenizer with no token at all loaded (and every later step blamed
// something else).
TEST(TokenizerJsonFuzzRegression, EmptyVocabularyIsRefused) {
  expect_error(
      [] {
        parse_tokenizer_json(R"({"model":{"type":"BPE","vocab":{}}})", "tokenizer.json", "", "");
      },
      ErrorKind::kFormat, {"tokenizer.json", "vocabulary is empty"});
}

// --- tokenizer.model -----------------------------------------------------------------------

void varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
  out += static_cast<char>(v);
}
void bytes_field(std::string& out, int field, const std::string& s) {
  varint(out, static_cast<uint64_t>(field) << 3 | 2);
  varint(out, s.size());
  out += s;
}
void int_field(std::string& out, int field, uint64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, v);
}

// A unigram ModelProto with these pieces (type 2: unknown, 1: normal).
std::string unigram_model(const std::vector<std::pair<std::string, int>>& pieces) {
  std::string out;
  for (const auto& [text, type] : pieces) {
    std::string sp;
    bytes_field(sp, 1, text);
    varint(sp, 2 << 3 | 5);  // score: float -1
    const float score = -1.f;
    sp.append(reinterpret_cast<const char*>(&score), 4);
    int_field(sp, 3, static_cast<uint64_t>(type));
    bytes_field(out, 1, sp);
  }
  std::string trainer;
  int_field(trainer, 3, 1);                                    // model_type UNIGRAM
  int_field(trainer, 40, 0);                                   // unk_id
  int_field(trainer, 41, static_cast<uint64_t>(int64_t{-1}));  // no bos
  int_field(trainer, 42, static_cast<uint64_t>(int64_t{-1}));  // no eos
  bytes_field(out, 2, trainer);
  std::string norm;
  bytes_field(norm, 1, "identity");
  bytes_field(out, 3, norm);
  return out;
}

TEST(SentencePieceFuzzRegression, LoadsFromBytes) {
  const auto t = parse_sentencepiece(
      unigram_model({{"<unk>", 2}, {"a", 1}, {"b", 1}, {"\xE2\x96\x81", 1}}), "tokenizer.model");
  EXPECT_EQ(t->vocab_size(), 4);
  for (int32_t id : t->encode("ab", false)) EXPECT_TRUE(id >= 0 && id < 4);
}

// libsentencepiece's trie builder throws its own exception on an empty piece; it escaped as a
// std::exception (std::terminate in the harness).
TEST(SentencePieceFuzzRegression, EmptyPieceIsAnError) {
  expect_error(
      [] {
        parse_sentencepiece(unigram_model({{"<unk>", 2}, {"a", 1}, {"", 1}}), "tokenizer.model");
      },
      ErrorKind::kFormat, {"tokenizer.model", "SentencePiece"});
}

}  // namespace
}  // namespace longctx
