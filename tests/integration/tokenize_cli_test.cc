// longctx tokenize, run as a user would: on llama.cpp's vocabulary-only GGUF files (ids checked
// against the suite's .out files), on a Hugging Face folder and on the GGUF converted from it (ids
// checked against golden.json's prompt_ids), and on bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "integration/cli_util.h"
#include "tokenizer/vocab_suite.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

// "[1, 2, 3]" -> ids; fails the test on anything else.
std::vector<int32_t> parse_ids(const std::string& out) {
  std::vector<int32_t> ids;
  const size_t open = out.find('['), close = out.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    ADD_FAILURE() << "no [ids] in: " << out;
    return ids;
  }
  std::string body = out.substr(open + 1, close - open - 1);
  for (char& c : body) c = c == ',' ? ' ' : c;
  std::istringstream s(body);
  for (int32_t id; s >> id;) ids.push_back(id);
  return ids;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("longctx_tokenize_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

TEST(TokenizeCli, VocabFilesMatchLlamaCppSuite) {
  for (const char* name : {"llama-spm", "qwen2"}) {
    SCOPED_TRACE(name);
    const std::string vocab = test::vocab_path(name);
    const auto cases = test::read_vocab_cases(vocab);
    // A few cases each, through a file so that newlines and tabs reach the tokenizer unchanged.
    int n = 0;
    for (size_t i = 0; i < cases.size(); i += 7, ++n) {
      SCOPED_TRACE("case " + std::to_string(i) + ": '" + cases[i].text + "'");
      const std::string file = write_temp(std::string(name) + std::to_string(i), cases[i].text);
      const auto r =
          test::run_cli_argv({"tokenize", "-m", vocab, "-f", file, "--ids-only", "--no-bos"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      EXPECT_EQ(parse_ids(r.output), cases[i].ids) << r.output;
      fs::remove(file);
    }
    EXPECT_GE(n, 6);
  }
}

TEST(TokenizeCli, PiecesLikeLlamaTokenize) {
  // llama-spm: BOS (add_bos_token) then "▁Hello" 15043 "▁world" 3186 (the suite's .out).
  const auto r =
      test::run_cli_argv({"tokenize", "-m", test::vocab_path("llama-spm"), "-p", "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "     1 -> '<s>'\n 15043 -> ' Hello'\n  3186 -> ' world'\n");
}

TEST(TokenizeCli, ModelFolderAndItsGgufAgreeWithGolden) {
  const std::string shared = LONGCTX_SHARED_DIR;
  const auto golden =
      nlohmann::json::parse(test::slurp(shared + "/models/stories260K/golden.json"));
  int checked = 0;
  for (const auto& c : golden.at("cases")) {
    if (!c.contains("prompt_text") || !c.value("add_bos", true)) continue;
    const auto want = c.at("prompt_ids").get<std::vector<int32_t>>();
    const std::string text = c.at("prompt_text").get<std::string>();
    for (const std::string model :
         {shared + "/models/stories260K", shared + "/gguf/stories260K-f32.gguf"}) {
      SCOPED_TRACE(model);
      const auto r = test::run_cli_argv({"tokenize", "-m", model, "-p", text, "--ids-only"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      EXPECT_EQ(parse_ids(r.output), want);
      const auto nb =
          test::run_cli_argv({"tokenize", "-m", model, "-p", text, "--ids-only", "--no-bos"});
      EXPECT_EQ(parse_ids(nb.output), std::vector<int32_t>(want.begin() + 1, want.end()));
    }
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

TEST(TokenizeCli, BadInputFailsClearly) {
  const auto missing =
      test::run_cli_argv({"tokenize", "-m", "/nonexistent/vocab.gguf", "-p", "hi"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_LT(missing.exit_code, 128) << missing.output;
  EXPECT_NE(missing.output.find("/nonexistent/vocab.gguf"), std::string::npos) << missing.output;

  const auto no_text = test::run_cli_argv({"tokenize", "-m", test::vocab_path("qwen2")});
  EXPECT_NE(no_text.exit_code, 0);
  EXPECT_LT(no_text.exit_code, 128) << no_text.output;
  EXPECT_NE(no_text.output.find("-p TEXT or -f FILE"), std::string::npos) << no_text.output;

  const auto no_file =
      test::run_cli_argv({"tokenize", "-m", test::vocab_path("qwen2"), "-f", "/nonexistent/text"});
  EXPECT_NE(no_file.exit_code, 0);
  EXPECT_NE(no_file.output.find("/nonexistent/text"), std::string::npos) << no_file.output;
}

}  // namespace
}  // namespace longctx
