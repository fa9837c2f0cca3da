// GGUF tokenizers built from small vocabularies written with GgufWriter: the "llama" merging rules
// on a vocabulary whose expected ids are worked out by hand, and clear errors for malformed or
// unsupported metadata.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/gguf_tokenizer.h"

namespace longctx {
namespace {

// A "llama" vocabulary: <unk> <s> </s>, byte tokens for 'a'..'c' and '\n' only, and pieces with
// scores chosen so that the order of merges matters.
io::GgufWriter llama_vocab() {
  io::GgufWriter g;
  g.set_string("general.name", "tiny");
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "<0x0A>", "<0x61>",
                                          "\xE2\x96\x81", "a", "b", "c", "ab", "bc",
                                          "\xE2\x96\x81"
                                          "a",
                                          "abc", "<|user|>"});
  g.set_f32s("tokenizer.ggml.scores", {0, 0, 0, 0, 0, -5, -1, -1, -1, -3, -2, -4, -6, 0});
  g.set_i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 4});
  g.set_u32("tokenizer.ggml.bos_token_id", 1);
  g.set_u32("tokenizer.ggml.eos_token_id", 2);
  g.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return g;
}

std::unique_ptr<GgufTokenizer> build(const io::GgufWriter& g) {
  const std::vector<uint8_t> bytes = g.bytes();
  const auto f = io::GgufFile::parse(bytes.data(), bytes.size(), "test.gguf");
  return load_gguf_tokenizer(*f);
}

// Expects load to throw Error of `kind` whose message contains every one of `parts`.
void expect_error(const io::GgufWriter& g, ErrorKind kind, std::vector<std::string> parts) {
  try {
    build(g);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(GgufLlamaTokenizer, MergesByScore) {
  const auto tok = build(llama_vocab());
  // " abc" -> "▁abc": symbols ▁ a b c. Candidate pairs: ▁a (-4), ab (-3), bc (-2). bc merges
  // first (highest score); then ▁a (-4) merges ("a"+"bc" = "abc" is -6, lower); then ▁a + bc is
  // no token. Result ▁a, bc = 11, 10; with BOS 1 in front when add_special.
  EXPECT_EQ(tok->encode("abc", false), (std::vector<int32_t>{11, 10}));
  EXPECT_EQ(tok->encode("abc", true), (std::vector<int32_t>{1, 11, 10}));
  // 'd' is no token and has no byte token: <unk>; '\n' falls back to <0x0A>.
  EXPECT_EQ(tok->encode("d\n", false), (std::vector<int32_t>{5, 0, 3}));
  // The user-defined token is one id; the text after it gets the space prefix again.
  EXPECT_EQ(tok->encode("<|user|>a", false), (std::vector<int32_t>{13, 11}));
  EXPECT_EQ(tok->decode({1, 11, 10, 3}, true), "abc\n");
  EXPECT_EQ(tok->decode({1, 11, 10}, false), "<s> abc");
  EXPECT_EQ(tok->token_bytes(4), "a");  // <0x61>
  EXPECT_THROW(tok->decode({99}, true), Error);
}

TEST(GgufTokenizerErrors, UnknownModel) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "t5");
  g.set_strings("tokenizer.ggml.tokens", {"a"});
  expect_error(g, ErrorKind::kUnsupported, {"test.gguf", "'t5'", "llama", "gpt2"});
}

TEST(GgufTokenizerErrors, UnknownPreTokenizer) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "gpt2");
  g.set_string("tokenizer.ggml.pre", "no-such-pre");
  g.set_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
  g.set_strings("tokenizer.ggml.merges", {"a b"});
  expect_error(g, ErrorKind::kUnsupported, {"'no-such-pre'", "llama-bpe", "qwen2", "smollm"});
}

TEST(GgufTokenizerErrors, NoTokenizer) {
  io::GgufWriter g;
  g.set_string("general.name", "weights only");
  expect_error(g, ErrorKind::kFormat, {"tokenizer.ggml.model"});
}

TEST(GgufTokenizerErrors, MismatchedArrayLengths) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  g.set_f32s("tokenizer.ggml.scores", {0, 0, 0, 0});
  g.set_i32s("tokenizer.ggml.token_type", {2, 3, 3});
  expect_error(g, ErrorKind::kFormat, {"tokenizer.ggml.token_type", "3", "4"});

  io::GgufWriter s;
  s.set_string("tokenizer.ggml.model", "llama");
  s.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
  s.set_f32s("tokenizer.ggml.scores", {0, 0, 0, 0, 0});
  expect_error(s, ErrorKind::kFormat, {"tokenizer.ggml.scores", "5"});
}

TEST(GgufTokenizerErrors, IdOutOfRange) {
  io::GgufWriter g = llama_vocab();
  g.set_u32("tokenizer.ggml.padding_token_id", 14);
  expect_error(g, ErrorKind::kFormat, {"tokenizer.ggml.padding_token_id", "14"});
}

TEST(GgufTokenizerErrors, BadTokenType) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
  g.set_i32s("tokenizer.ggml.token_type", {2, 3, 9});
  expect_error(g, ErrorKind::kFormat, {"token_type", "9"});
}

TEST(GgufTokenizerErrors, MergeNamesUnknownToken) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "gpt2");
  g.set_string("tokenizer.ggml.pre", "qwen2");
  g.set_strings("tokenizer.ggml.tokens", {"a", "b", "ab", "c"});
  g.set_strings("tokenizer.ggml.merges", {"a b", "ab x"});
  expect_error(g, ErrorKind::kFormat, {"tokenizer.ggml.merges[1]", "'ab x'"});

  io::GgufWriter m;
  m.set_string("tokenizer.ggml.model", "gpt2");
  m.set_strings("tokenizer.ggml.tokens", {"a", "b"});
  expect_error(m, ErrorKind::kFormat, {"tokenizer.ggml.merges"});
}

TEST(GgufTokenizerErrors, DuplicateToken) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "llama");
  g.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "a"});
  expect_error(g, ErrorKind::kFormat, {"'a'", "twice"});
}

TEST(GgufTokenizerErrors, AddBosWithoutBos) {
  io::GgufWriter g;
  g.set_string("tokenizer.ggml.model", "gpt2");
  g.set_string("tokenizer.ggml.pre", "llama-bpe");  // adds BOS by default
  g.set_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
  g.set_strings("tokenizer.ggml.merges", {"a b"});
  expect_error(g, ErrorKind::kFormat, {"add_bos_token", "bos_token_id"});
}

}  // namespace
}  // namespace longctx
