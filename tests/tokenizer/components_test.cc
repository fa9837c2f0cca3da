// Feature-by-feature checks: small tokenizer.json files (fixtures/mini_tokenizers.json, expected
// ids from Hugging Face tokenizers) and unit tests of the building blocks.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace longctx {
namespace {

TEST(TokenizerComponents, MiniTokenizersMatchHuggingFace) {
  const auto j =
      nlohmann::json::parse(test::read_text_file(test::fixture_path("mini_tokenizers.json")));
  const std::string dir = std::string(LONGCTX_BINARY_DIR) + "/tests/tokenizer/mini";
  std::filesystem::create_directories(dir);
  ASSERT_GE(j.at("tokenizers").size(), 5u);
  for (const auto& t : j.at("tokenizers")) {
    const std::string name = t.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const std::string path = dir + "/" + name + ".json";
    test::write_text_file(path, t.at("tokenizer").dump());
    const auto tok = load_tokenizer_json(path);
    for (const auto& c : t.at("cases")) {
      const std::string text = c.at("text").get<std::string>();
      const bool add = c.at("add_special").get<bool>();
      SCOPED_TRACE("text: \"" + text + "\" add_special=" + std::to_string(add));
      const auto ids = c.at("ids").get<std::vector<int32_t>>();
      EXPECT_EQ(tok->encode(text, add), ids);
      EXPECT_EQ(tok->decode(ids), c.at("decoded").get<std::string>());
      EXPECT_EQ(tok->decode(ids, false), c.at("decoded_with_special").get<std::string>());
    }
  }
}

TEST(TokenizerComponents, Utf8Lossy) {
  using tok::utf8_lossy;
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("plain"), "plain");
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"
                       "b"),
            "a" + fffd + "b");  // truncated 4-byte char
  EXPECT_EQ(utf8_lossy("\xC3\x28"), fffd + "(");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate: maximal subparts
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), fffd + fffd);             // overlong
  EXPECT_TRUE(tok::utf8_valid("\xF0\x9F\x91\x8D\xC3\xA9"));
  EXPECT_FALSE(tok::utf8_valid("\xF4\x90\x80\x80"));  // beyond U+10FFFF
}

TEST(TokenizerComponents, SplitBehaviors) {
  using tok::SplitBehavior;
  using R = std::vector<std::pair<size_t, size_t>>;
  // "a-b--c": matches at the dashes.
  const R m{{1, 2}, {3, 4}, {4, 5}};
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kRemoved, false), (R{{0, 1}, {2, 3}, {5, 6}}));
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kIsolated, false),
            (R{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}}));
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kMergedWithPrevious, false),
            (R{{0, 2}, {2, 4}, {4, 5}, {5, 6}}));
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kMergedWithNext, false),
            (R{{0, 1}, {1, 3}, {3, 4}, {4, 6}}));
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kContiguous, false),
            (R{{0, 1}, {1, 2}, {2, 3}, {3, 5}, {5, 6}}));
  EXPECT_EQ(tok::split_ranges(6, m, SplitBehavior::kRemoved, true), (R{{1, 2}, {3, 4}, {4, 5}}));
}

TEST(TokenizerComponents, BpeMergeOrderFollowsRank) {
  tok::Vocab vocab{{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  std::vector<int32_t> out;
  tok::BpeModel bc_first(vocab, {{"b", "c"}, {"a", "b"}, {"a", "bc"}}, {}, "test");
  bc_first.tokenize("abc", out);
  EXPECT_EQ(out, (std::vector<int32_t>{5}));
  out.clear();
  tok::BpeModel no_abc(vocab, {{"b", "c"}, {"a", "b"}, {"ab", "c"}}, {}, "test");
  no_abc.tokenize("abc", out);  // "b c" wins, and "a bc" is not a merge
  EXPECT_EQ(out, (std::vector<int32_t>{0, 4}));
  out.clear();
  no_abc.tokenize("abcabc", out);
  EXPECT_EQ(out, (std::vector<int32_t>{0, 4, 0, 4}));
}

TEST(TokenizerComponents, BpeLongWordIsFast) {
  // A 200k-character word: merging must not rescan the word after every merge (O(n^2) would
  // take minutes here).
  const auto tok = load_tokenizer_json(test::smollm2_json());
  std::string word;
  for (int i = 0; i < 20000; ++i) word += "abcdefghij";
  const auto ids = tok->encode(word, false);
  EXPECT_LT(ids.size(), word.size() / 2);
  EXPECT_EQ(tok->decode(ids), word);
}

TEST(TokenizerComponents, LongWhitespaceRunsAndLongInputs) {
  // The regexes backtrack over whitespace (\s+(?!\S)); long runs must neither fail nor crash.
  const auto tok = load_tokenizer_json(test::smollm2_json());
  for (const std::string& text :
       {std::string(100000, ' ') + "x", std::string(50000, '\n') + "y  \t\n",
        std::string(30000, '!') + " " + std::string(30000, '7')}) {
    EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
  }
  const auto spm = load_sentencepiece(test::llama2_model());
  const std::string spaces = std::string(100000, ' ') + "x";
  EXPECT_EQ(spm->decode(spm->encode(spaces, false)), spaces);
}

TEST(TokenizerComponents, TokenBytes) {
  const auto spm = load_sentencepiece(test::llama2_model());
  EXPECT_EQ(spm->token_bytes(13), "\n");         // <0x0A>
  EXPECT_EQ(spm->token_bytes(243), "\xF0");      // <0xF0>
  EXPECT_EQ(spm->token_bytes(15043), " Hello");  // ▁Hello
  EXPECT_EQ(spm->token_bytes(1), "");            // <s>
  const auto hf = load_tokenizer_json(test::smollm2_json());
  EXPECT_EQ(hf->token_bytes(216), " ");  // Ġ
  EXPECT_EQ(hf->token_bytes(1), "<|im_start|>");
  const auto thumbs = hf->encode("\xF0\x9F\x91\x8D", false);
  std::string bytes;
  for (int32_t id : thumbs) bytes += hf->token_bytes(id);
  EXPECT_EQ(bytes, "\xF0\x9F\x91\x8D");
}

}  // namespace
}  // namespace longctx
