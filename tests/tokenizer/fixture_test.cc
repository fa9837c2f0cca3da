// Exact ids against independent references (see scripts/tokenizer-fixtures): Hugging Face
// tokenizers for tokenizer.json, SentencePiece for tokenizer.model.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

using test::Fixture;
using test::load_fixture;

// Checks encode and decode against every case of the fixture.
void check_fixture(const Tokenizer& tok, const Fixture& f) {
  ASSERT_FALSE(f.cases.empty());
  for (const auto& c : f.cases) {
    SCOPED_TRACE("text: \"" + c.text + "\" add_special=" + std::to_string(c.add_special) +
                 " (reference: " + f.reference + ")");
    EXPECT_EQ(tok.encode(c.text, c.add_special), c.ids);
    EXPECT_EQ(tok.decode(c.ids), c.decoded);
    if (c.has_decoded_with_special) {
      EXPECT_EQ(tok.decode(c.ids, false), c.decoded_with_special);
    }
  }
}

// decode(encode(s)) == s for every case, except the listed texts (where the reference itself
// does not round-trip; the fixture check above pins what it gives instead).
void check_round_trip(const Tokenizer& tok, const Fixture& f, bool keep_special,
                      const std::set<std::string>& exceptions = {}) {
  for (const auto& c : f.cases) {
    if (c.add_special || exceptions.count(c.text)) continue;
    EXPECT_EQ(tok.decode(tok.encode(c.text, false), !keep_special), c.text) << c.text;
  }
}

TEST(TokenizerFixture, SmolLM2ByteLevelBpe) {
  const auto tok = load_tokenizer_json(test::smollm2_json());
  const Fixture f = load_fixture("smollm2_bpe.json");
  check_fixture(*tok, f);
  // Special tokens are kept by decode(ids, skip_special=false), so every case round-trips.
  check_round_trip(*tok, f, /*keep_special=*/true);
  EXPECT_EQ(tok->vocab_size(), 49152);
  EXPECT_EQ(tok->bos_id(), 1);  // from config.json beside tokenizer.json
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(1000));
}

TEST(TokenizerFixture, SmolLM2LoadTokenizerPicksJson) {
  const auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/smollm2-bpe");
  EXPECT_EQ(tok->encode("<|im_start|>user\nhi<|im_end|>", true),
            (std::vector<int32_t>{1, 4093, 198, 6004, 2}));
}

TEST(TokenizerFixture, Llama2SentencePiece) {
  const auto tok = load_sentencepiece(test::llama2_model());
  const Fixture f = load_fixture("llama2_spm.json");
  check_fixture(*tok, f);
  // Llama 2's model has add_dummy_prefix and keeps extra whitespace, so SentencePiece's decode
  // (which drops the dummy-prefix space of the first piece) gives back every text exactly.
  check_round_trip(*tok, f, /*keep_special=*/false);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(13));
}

TEST(TokenizerFixture, Llama2SentencePieceLoadTokenizerPicksModel) {
  const auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/llama2-spm");
  EXPECT_EQ(tok->encode("Hello", true), (std::vector<int32_t>{1, 15043}));
}

// Control pieces written in text become their ids (as Hugging Face's LlamaTokenizer does); each
// piece of text between them is encoded by SentencePiece on its own. SentencePiece alone would
// spell "<s>" out, so the expected ids here are SentencePiece's ids of the pieces, joined.
TEST(TokenizerFixture, Llama2SentencePieceControlTokensInText) {
  const auto tok = load_sentencepiece(test::llama2_model());
  const auto hello = tok->encode("Hello", false);
  const auto world = tok->encode(" world", false);
  std::vector<int32_t> want{1};
  want.insert(want.end(), hello.begin(), hello.end());
  want.push_back(2);
  want.insert(want.end(), world.begin(), world.end());
  EXPECT_EQ(tok->encode("<s>Hello</s> world", false), want);
  EXPECT_EQ(tok->decode(want), "Hello  world");  // dummy prefix of " world" is kept
  // Keeping special tokens, the text after each gets its space back, as with Hugging Face's
  // Llama tokenizer (see "decoded_with_special" in llama2_hf_legacy.json).
  EXPECT_EQ(tok->decode(want, false), "<s> Hello</s>  world");
}

// The metaspace + byte-fallback tokenizer.json style (Llama 2 / Mistral), built at test time
// from the Llama 2 tokenizer.model exactly as scripts/tokenizer-fixtures/spm_to_tokenizer_json.py
// builds it for the reference; the merges fingerprint proves both builds agree.
class Llama2HfJson : public ::testing::TestWithParam<std::string> {};

TEST_P(Llama2HfJson, MatchesHuggingFace) {
  const std::string style = GetParam();
  const Fixture f = load_fixture("llama2_hf_" + style + ".json");
  const std::string dir = std::string(LONGCTX_BINARY_DIR) + "/tests/tokenizer/llama2_hf_" + style;
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/tokenizer.json";
  EXPECT_EQ(test::spm_to_tokenizer_json(test::llama2_model(), style, path), f.merges_fingerprint);
  const auto tok = load_tokenizer_json(path);
  check_fixture(*tok, f);
  if (style == "legacy") {
    // Prepend("▁") + Replace(" ", "▁") with Strip(left 1): the same ids as SentencePiece
    // (checked by the fixture) and every text round-trips.
    check_round_trip(*tok, f, true, {"<s>Hello</s> world"});
  } else {
    // Metaspace with prepend_scheme "first" does not prepend "▁" to a text that already starts
    // with a space, and its decoder drops every "▁" of the first token: Hugging Face itself
    // loses leading spaces here (the fixture pins what it gives).
    check_round_trip(*tok, f, true, {"     leading spaces", " ", "  ", "   ", " hello"});
  }
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
}

INSTANTIATE_TEST_SUITE_P(Styles, Llama2HfJson, ::testing::Values("legacy", "metaspace"));

// The same ids for the Llama 2 vocabulary through both code paths, for text SentencePiece and
// the legacy conversion agree on.
TEST(TokenizerFixture, Llama2JsonAgreesWithSentencePiece) {
  const Fixture spm = load_fixture("llama2_spm.json");
  const Fixture hf = load_fixture("llama2_hf_legacy.json");
  size_t compared = 0;
  for (const auto& a : spm.cases) {
    for (const auto& b : hf.cases) {
      if (a.text == b.text && a.add_special == b.add_special) {
        EXPECT_EQ(a.ids, b.ids) << a.text;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, spm.cases.size());
}

}  // namespace
}  // namespace longctx
