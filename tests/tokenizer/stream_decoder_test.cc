// StreamDecoder: pieces are always whole UTF-8 and join up to decode(all ids).
#include <gtest/gtest.h>

#include <filesystem>

#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace longctx {
namespace {

// Streams ids one by one; checks every piece is valid UTF-8; returns the pieces.
std::vector<std::string> stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder s(tok);
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    pieces.push_back(s.push(id));
    EXPECT_TRUE(tok::utf8_valid(pieces.back())) << "broken UTF-8 after id " << id;
  }
  pieces.push_back(s.flush());
  return pieces;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s;
  return out;
}

void check_all_fixture_texts(const Tokenizer& tok, const std::string& fixture) {
  for (const auto& c : test::load_fixture(fixture).cases) {
    EXPECT_EQ(join(stream_all(tok, c.ids)), tok.decode(c.ids)) << c.text;
  }
}

TEST(StreamDecoder, SentencePieceMatchesDecodeOnAllFixtureTexts) {
  const auto tok = load_sentencepiece(test::llama2_model());
  check_all_fixture_texts(*tok, "llama2_spm.json");
}

TEST(StreamDecoder, ByteLevelMatchesDecodeOnAllFixtureTexts) {
  const auto tok = load_tokenizer_json(test::smollm2_json());
  check_all_fixture_texts(*tok, "smollm2_bpe.json");
}

TEST(StreamDecoder, EmojiThroughByteFallbackIsHeldUntilComplete) {
  const auto tok = load_sentencepiece(test::llama2_model());
  const auto ids = tok->encode("x\xF0\x9F\x98\x80y", false);  // "x😀y"
  // ▁x, <0xF0>, <0x9F>, <0x98>, <0x80>, y
  ASSERT_EQ(ids, (std::vector<int32_t>{921, 243, 162, 155, 131, 29891}));
  const auto pieces = stream_all(*tok, ids);
  EXPECT_EQ(pieces, (std::vector<std::string>{"x", "", "", "", "\xF0\x9F\x98\x80", "y", ""}));
}

TEST(StreamDecoder, MultiByteCharSplitOverByteLevelTokens) {
  const auto tok = load_tokenizer_json(test::smollm2_json());
  // "👍🏽" is spelled with tokens that each hold part of a character's bytes.
  const auto ids = tok->encode("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok", false);
  ASSERT_GT(ids.size(), 3u);
  const auto pieces = stream_all(*tok, ids);
  EXPECT_EQ(join(pieces), "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok");
  EXPECT_EQ(pieces[0], "");  // the first token is only part of the thumbs-up emoji
}

TEST(StreamDecoder, LeadingSpaceOfFirstTokenStrippedLikeDecode) {
  const auto tok = load_sentencepiece(test::llama2_model());
  const auto ids = tok->encode("Hello world", false);  // ▁Hello ▁world
  const auto pieces = stream_all(*tok, ids);
  EXPECT_EQ(pieces[0], "Hello");
  EXPECT_EQ(pieces[1], " world");
  // A run of whitespace pieces keeps every space after the first token.
  const auto spaced = tok->encode("a   b", false);
  EXPECT_EQ(join(stream_all(*tok, spaced)), "a   b");
}

TEST(StreamDecoder, MetaspaceJsonByteFallbackEmoji) {
  const std::string dir =
      std::string(LONGCTX_BINARY_DIR) + "/tests/tokenizer/stream_llama2_hf_legacy";
  std::filesystem::create_directories(dir);
  test::spm_to_tokenizer_json(test::llama2_model(), "legacy", dir + "/tokenizer.json");
  const auto tok = load_tokenizer_json(dir + "/tokenizer.json");
  const std::string text = "Hi \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 family";  // 👨‍👩
  const auto ids = tok->encode(text, false);
  const auto pieces = stream_all(*tok, ids);
  EXPECT_EQ(join(pieces), text);
  EXPECT_EQ(pieces[0], "Hi");
}

TEST(StreamDecoder, SpecialTokensAreSkipped) {
  const auto tok = load_tokenizer_json(test::smollm2_json());
  const auto ids = tok->encode("<|im_start|>user\nhi<|im_end|>", false);
  EXPECT_EQ(join(stream_all(*tok, ids)), "user\nhi");
}

TEST(StreamDecoder, InvalidBytesComeOutAsReplacementCharacter) {
  const auto tok = load_sentencepiece(test::llama2_model());
  StreamDecoder s(*tok);
  EXPECT_EQ(s.push(243), "");  // <0xF0>: the start of a 4-byte character
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");
  StreamDecoder t(*tok);
  EXPECT_EQ(t.push(243), "");
  const std::string rest = t.push(29891);  // "y" shows the character never completes
  EXPECT_EQ(rest, tok->decode({243, 29891}));
  EXPECT_EQ(t.flush(), "");
}

}  // namespace
}  // namespace longctx
