// The tokenizers of the two tiny trained models: prompts encode to golden.json's prompt_ids and
// greedy continuations decode to its greedy_text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

class TinyModelTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyModelTokenizer, MatchesGolden) {
  const std::string dir = test::shared_dir() + "/models/" + GetParam();
  const auto tok = load_tokenizer(dir);
  const auto golden = nlohmann::json::parse(test::read_text_file(dir + "/golden.json"));
  int prompts = 0, continuations = 0;
  for (const auto& c : golden.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    if (c.contains("prompt_text")) {
      const auto ids =
          tok->encode(c.at("prompt_text").get<std::string>(), c.value("add_bos", true));
      EXPECT_EQ(ids, c.at("prompt_ids").get<std::vector<int32_t>>());
      ++prompts;
    }
    // greedy_text is the continuation decoded on its own, so SentencePiece's rule applies: the
    // dummy-prefix space of its first piece ("▁She" after the prompt) is dropped, exactly as
    // decode() does. The same text comes out of a StreamDecoder fed the continuation alone.
    const auto greedy = c.at("greedy_ids").get<std::vector<int32_t>>();
    const std::string want = c.at("greedy_text").get<std::string>();
    EXPECT_EQ(tok->decode(greedy), want);
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : greedy) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, want);
    ++continuations;
  }
  EXPECT_GE(prompts, 1);
  EXPECT_GE(continuations, 1);
}

INSTANTIATE_TEST_SUITE_P(Models, TinyModelTokenizer,
                         ::testing::Values("stories260K", "babyllama-tok105"));

}  // namespace
}  // namespace longctx
