// Bad input gives longctx::Error with a message naming the file, never a crash.
#include "core/error.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

std::string scratch_dir(const std::string& name) {
  const std::string dir = std::string(LONGCTX_BINARY_DIR) + "/tests/tokenizer/errors/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs f, which must throw Error of `kind` whose message mentions `needle` (the file).
template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, MissingFiles) {
  const std::string dir = scratch_dir("missing");
  expect_error([&] { load_sentencepiece(dir + "/tokenizer.model"); }, ErrorKind::kIo,
               dir + "/tokenizer.model");
  expect_error([&] { load_tokenizer_json(dir + "/tokenizer.json"); }, ErrorKind::kIo,
               dir + "/tokenizer.json");
  expect_error([&] { load_tokenizer(dir); }, ErrorKind::kIo, dir);
  expect_error([&] { load_tokenizer(dir + "/no-such-dir"); }, ErrorKind::kIo, "no-such-dir");
  expect_error([&] { load_sentencepiece(dir); }, ErrorKind::kIo, dir);  // a directory
}

TEST(TokenizerErrors, TruncatedOrGarbageSentencePieceModel) {
  const std::string dir = scratch_dir("spm");
  const std::string data = test::read_text_file(test::llama2_model());
  const std::string path = dir + "/tokenizer.model";
  for (size_t n : {size_t{0}, size_t{1}, size_t{10}, size_t{1000}, data.size() / 2,
                   data.size() - 100, data.size() - 1}) {
    SCOPED_TRACE("truncated to " + std::to_string(n) + " bytes");
    test::write_text_file(path, data.substr(0, n));
    expect_error([&] { load_sentencepiece(path); }, ErrorKind::kFormat, path);
  }
  test::write_text_file(path, "this is not a protobuf at all\n");
  expect_error([&] { load_sentencepiece(path); }, ErrorKind::kFormat, path);
  test::write_text_file(path, std::string(300, '\xFF'));
  expect_error([&] { load_sentencepiece(path); }, ErrorKind::kFormat, path);
}

TEST(TokenizerErrors, MalformedJson) {
  const std::string dir = scratch_dir("json");
  const std::string path = dir + "/tokenizer.json";
  for (const std::string& text : {std::string(""), std::string("{ not json"), std::string("[1, 2]"),
                                  test::read_text_file(test::smollm2_json()).substr(0, 5000)}) {
    test::write_text_file(path, text);
    expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kFormat, path);
  }
  // Structurally wrong sections.
  for (const char* text : {
           R"({"model": {"type": "BPE", "vocab": [1, 2], "merges": []}})",
           R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})",
           R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 1}]})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"t": 1}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
               "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
               "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Odd"}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
               "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}]}})",
       }) {
    SCOPED_TRACE(text);
    test::write_text_file(path, text);
    expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kFormat, path);
  }
}

TEST(TokenizerErrors, UnsupportedTypes) {
  const std::string dir = scratch_dir("unsupported");
  const std::string path = dir + "/tokenizer.json";
  for (const char* text : {
           R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})",
           R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
               "pre_tokenizer": {"type": "BertPreTokenizer"}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
               "normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}})",
           R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "decoder": {"type": "CTC"}})",
       }) {
    SCOPED_TRACE(text);
    test::write_text_file(path, text);
    expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kUnsupported, path);
  }
  test::write_text_file(path, R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  expect_error([&] { load_tokenizer(dir); }, ErrorKind::kUnsupported, "WordPiece");
}

TEST(TokenizerErrors, BadIdsAndBadText) {
  const auto spm = load_sentencepiece(test::llama2_model());
  expect_error([&] { spm->decode({1, 32000}); }, ErrorKind::kOutOfRange, "32000");
  expect_error([&] { spm->decode({-1}); }, ErrorKind::kOutOfRange, "-1");
  expect_error([&] { spm->token_bytes(99999); }, ErrorKind::kOutOfRange, "99999");
  // Invalid UTF-8 input is repaired (U+FFFD) rather than rejected, as a Rust string would be.
  const auto hf = load_tokenizer_json(test::smollm2_json());
  const std::string bad = "ok \xFF\xC3 end";
  EXPECT_EQ(hf->decode(hf->encode(bad, false)), "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_FALSE(spm->encode(bad, false).empty());
  // Ids outside the vocabulary are skipped by tokenizer.json decode, as Hugging Face does.
  EXPECT_EQ(hf->decode({19556, 999999, -5}), "Hello");
  expect_error([&] { hf->token_bytes(999999); }, ErrorKind::kOutOfRange, "999999");
}

// Issue 19: ids index a table, so an id read from the file is bounded by what the file defines
// (twice its tokens + 256) before anything is allocated. An id of 20,000,000 used to take 640 MiB
// and 1e9 ended in std::bad_alloc.
TEST(TokenizerErrors, IdsBeyondWhatTheFileDefines) {
  const std::string dir = scratch_dir("ids");
  const std::string path = dir + "/tokenizer.json";
  const std::string model_head = R"({"model": {"type": "BPE", "merges": [], "vocab": )";
  // 3 tokens: ids must be below 2 x 3 + 256 = 262.
  test::write_text_file(path, model_head + R"({"a": 0, "b": 1, "ab": 20000000}}})");
  expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kFormat, "20000000");
  try {
    load_tokenizer_json(path);
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.vocab id 20000000 of 'ab'"), std::string::npos) << m;
    EXPECT_NE(m.find("defines 3 tokens"), std::string::npos) << m;
    EXPECT_NE(m.find("below 262"), std::string::npos) << m;
    EXPECT_NE(m.find(path), std::string::npos) << m;
  }
  test::write_text_file(path, model_head + R"({"a": 0, "b": 1}},
      "added_tokens": [{"id": 1000000000, "content": "<x>", "special": true}]})");
  expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kFormat,
               "added_tokens id 1000000000 of '<x>'");
  // The limit itself is refused; an id just below it (a file with gaps) loads.
  test::write_text_file(path, model_head + R"({"a": 0, "b": 1, "ab": 262}}})");
  expect_error([&] { load_tokenizer_json(path); }, ErrorKind::kFormat, "below 262");
  test::write_text_file(path, model_head + R"({"a": 0, "b": 1, "ab": 261}}})");
  const auto t = load_tokenizer_json(path);
  EXPECT_EQ(t->vocab_size(), 262);
}

}  // namespace
}  // namespace longctx
