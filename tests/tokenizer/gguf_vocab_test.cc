// The tokenizers of GGUF metadata against independent references: llama.cpp's own tokenizer test
// suite (shared/gguf/vocab: ids that Hugging Face's tokenizers produced for each .inp string), and
// libsentencepiece on the tokenizer.model that stories260K-f32.gguf was converted from.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_suite.h"

namespace longctx {
namespace {

using test::read_vocab_cases;
using test::vocab_path;
using test::VocabCase;

class GgufVocabSuite : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVocabSuite, EncodesAndDecodesLikeLlamaCpp) {
  const std::string path = vocab_path(GetParam());
  const auto tok = load_gguf_tokenizer(path);
  const std::vector<VocabCase> cases = read_vocab_cases(path);
  ASSERT_GE(cases.size(), 40u);
  int nonempty = 0;
  for (const VocabCase& c : cases) {
    SCOPED_TRACE("input '" + c.text + "'");
    // test-tokenizer-0 tokenizes with add_special = false; the strings hold no special tokens,
    // so recognising them (as encode() always does) changes nothing here.
    EXPECT_EQ(tok->encode(c.text, false), c.ids);
    // llama.cpp's test checks only the ids; the round trip is checked here as well, and holds
    // exactly for every vocabulary: longctx does not apply llama.cpp's clean_spaces rewriting
    // (" ?" -> "?" for llama-bpe), and for the SentencePiece-style vocabularies (llama-spm,
    // phi-3) decode drops exactly the one space that encoding put before the first token.
    EXPECT_EQ(tok->decode(c.ids, true), c.text);
    // Streaming gives the same text, one id at a time.
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : c.ids) streamed += stream.push(id);
    EXPECT_EQ(streamed + stream.flush(), c.text);
    nonempty += !c.ids.empty();
  }
  EXPECT_GE(nonempty, 40);
}

INSTANTIATE_TEST_SUITE_P(LlamaCppVocabs, GgufVocabSuite,
                         ::testing::Values("llama-spm", "llama-bpe", "phi-3", "qwen2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

TEST(GgufTokenizer, SpecialTokensAndMetadata) {
  {
    const auto tok = load_gguf_tokenizer(vocab_path("llama-bpe"));
    EXPECT_EQ(tok->info().model, "gpt2");
    EXPECT_EQ(tok->info().pre, "llama-bpe");
    EXPECT_EQ(tok->bos_id(), 128000);
    EXPECT_EQ(tok->eos_id(), 128001);
    EXPECT_EQ(tok->vocab_size(), 128256);
    // Llama 3 adds BOS (llama.cpp's default for llama-bpe); control tokens in the text are
    // single tokens. Ids from the model's tokenizer.json: "Hello" 9906, " world" 1917.
    EXPECT_EQ(tok->encode("<|start_header_id|>Hello world<|eot_id|>", true),
              (std::vector<int32_t>{128000, 128006, 9906, 1917, 128009}));
    EXPECT_TRUE(tok->is_special(128009));
    EXPECT_EQ(tok->decode({128000, 9906, 1917, 128009}, true), "Hello world");
    EXPECT_EQ(tok->decode({128000, 9906, 1917, 128009}, false),
              "<|begin_of_text|>Hello world<|eot_id|>");
  }
  {
    const auto tok = load_gguf_tokenizer(vocab_path("qwen2"));
    EXPECT_NE(tok->chat_template().find("<|im_start|>"), std::string::npos);
    // Qwen2's file sets no add_bos_token and llama.cpp's default for qwen2 is not to add one.
    EXPECT_EQ(tok->encode("<|im_start|>Hello", true), (std::vector<int32_t>{151644, 9707}));
    // [PAD151646] is user-defined: recognised in text, and kept by decode(skip_special).
    EXPECT_EQ(tok->encode("[PAD151646]", false), (std::vector<int32_t>{151646}));
    EXPECT_EQ(tok->decode({151646, 9707}, true), "[PAD151646]Hello");
  }
  {
    const auto tok = load_gguf_tokenizer(vocab_path("phi-3"));
    // Phi-3's chat tokens swallow the whitespace after them ("\n" here), and the text after a
    // special token gets the SentencePiece space prefix: "▁Hello" 15043.
    EXPECT_EQ(tok->encode("<|user|>\nHello<|end|>", true),
              (std::vector<int32_t>{1, 32010, 15043, 32007}));
    EXPECT_EQ(tok->decode({1, 32010, 15043, 32007}, true), "Hello");
  }
}

// stories260K-f32.gguf was converted from models/stories260K/tokenizer.model: libsentencepiece on
// that file is an independent implementation of the same vocabulary.
TEST(GgufTokenizer, Stories260KMatchesSentencePiece) {
  const auto gguf = load_gguf_tokenizer(test::shared_dir() + "/gguf/stories260K-f32.gguf");
  const auto spm = load_sentencepiece(test::shared_dir() + "/models/stories260K/tokenizer.model");
  ASSERT_EQ(gguf->vocab_size(), spm->vocab_size());
  EXPECT_EQ(gguf->bos_id(), spm->bos_id());
  EXPECT_EQ(gguf->eos_id(), spm->eos_id());
  std::vector<std::string> texts;
  std::istringstream lines(test::read_text_file(test::shared_dir() + "/text/stories.txt"));
  for (std::string line; std::getline(lines, line);) texts.push_back(line);
  ASSERT_GE(texts.size(), 5u);
  const std::vector<std::string> hostile = {
      "",
      " ",
      "   leading and trailing   ",
      "tabs\tand\nnewlines\r\n",
      "emoji 🦙 and 中文 and ĳ",         // characters outside the 512-token vocabulary: bytes
      "\xFF\xFE invalid \xC3 utf8 \xE2\x82",  // invalid UTF-8
      std::string("nul\0byte", 8),
      "<s>control</s> tokens <s>",
      "a  b   c    d",
      "<0x41> spelled byte token",
  };
  texts.insert(texts.end(), hostile.begin(), hostile.end());
  for (const std::string& t : texts) {
    SCOPED_TRACE("text '" + t + "'");
    for (bool add_special : {false, true}) {
      const std::vector<int32_t> ids = gguf->encode(t, add_special);
      EXPECT_EQ(ids, spm->encode(t, add_special)) << "add_special " << add_special;
      EXPECT_EQ(gguf->decode(ids, true), spm->decode(ids, true));
      EXPECT_EQ(gguf->decode(ids, false), spm->decode(ids, false));
    }
  }
}

// tokenizer.ggml.pre selects the regexes: Llama 3's vocabulary relabelled "qwen2" splits numbers
// into single digits, so "3333" becomes four times the id of "3" instead of "333" "3".
TEST(GgufTokenizer, PreTokenizerNameSelectsRegex) {
  const std::string path = vocab_path("llama-bpe");
  std::vector<int32_t> three, four;
  for (const VocabCase& c : read_vocab_cases(path)) {
    if (c.text == "3") three = c.ids;
    if (c.text == "3333") four = c.ids;
  }
  ASSERT_EQ(three.size(), 1u);
  ASSERT_EQ(four.size(), 2u);  // "333" "3"
  const auto f = io::GgufFile::open(path);
  io::GgufWriter w;
  for (const auto& [key, value] : f->metadata()) w.set(key, value);
  w.set_string("tokenizer.ggml.pre", "qwen2");
  const std::vector<uint8_t> bytes = w.bytes();
  const auto relabelled =
      load_gguf_tokenizer(*io::GgufFile::parse(bytes.data(), bytes.size(), "relabelled.gguf"));
  EXPECT_EQ(load_gguf_tokenizer(*f)->encode("3333", false), four);
  EXPECT_EQ(relabelled->encode("3333", false), std::vector<int32_t>(4, three[0]));
}

// SmolLM2's tokenizer.json written as GGUF metadata the way convert_hf_to_gguf.py does (tokens by
// id, "a b" merges, added special tokens as control tokens, pre "smollm") gives the ids and
// decodes that Hugging Face tokenizers gave for the fixture texts.
TEST(GgufTokenizer, SmolLM2AsGgufMatchesHuggingFace) {
  const auto j = nlohmann::json::parse(test::read_text_file(test::smollm2_json()));
  const auto& vocab = j.at("model").at("vocab");
  std::vector<std::string> tokens(vocab.size());
  for (const auto& [text, id] : vocab.items()) tokens.at(id.get<size_t>()) = text;
  std::vector<int32_t> types(tokens.size(), 1);
  for (const auto& a : j.at("added_tokens")) {
    if (a.at("special").get<bool>()) types.at(a.at("id").get<size_t>()) = 3;
  }
  io::GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "smollm");
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_strings("tokenizer.ggml.merges",
                j.at("model").at("merges").get<std::vector<std::string>>());
  const std::vector<uint8_t> bytes = w.bytes();
  const auto tok =
      load_gguf_tokenizer(*io::GgufFile::parse(bytes.data(), bytes.size(), "smollm2.gguf"));
  const test::Fixture fx = test::load_fixture("smollm2_bpe.json");
  ASSERT_GE(fx.cases.size(), 50u);
  for (const auto& c : fx.cases) {
    SCOPED_TRACE("text '" + c.text + "'");
    // SmolLM2 adds no BOS (no post-processor), so add_special changes nothing on either side.
    EXPECT_EQ(tok->encode(c.text, c.add_special), c.ids);
    EXPECT_EQ(tok->decode(c.ids, true), c.decoded);
  }
}

}  // namespace
}  // namespace longctx
