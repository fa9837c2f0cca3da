// Where chat templates come from (model_chat_template: tokenizer_config.json, chat_template.jinja,
// GGUF metadata), and what rendered prompts tokenize to with real tokenizers: the special-token
// text a template writes must become the single ids Hugging Face's apply_chat_template(tokenize=
// True) gives. The ids below are the tokenizers' published ones (e.g. Llama 2's "[INST]" is
// 518 25580 29962, Llama 3's <|start_header_id|> 128006), not read back from our output.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "io/gguf_writer.h"
#include "io/test_util.h"
#include "runtime/chat_template.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

using io::testing::expect_error;
using io::testing::TempDir;
using io::testing::write_bytes;

const std::string kShared = LONGCTX_SHARED_DIR;
const std::vector<ChatMessage> kChat = {{"system", "You are terse."},
                                        {"user", "Hello!"},
                                        {"assistant", " Hi. "},
                                        {"user", "What is 2+2?"}};
const std::vector<ChatMessage> kNoSystem(kChat.begin() + 1, kChat.end());

const char* kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>'"
    " + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

size_t count(const std::vector<int32_t>& ids, int32_t id) {
  return static_cast<size_t>(std::count(ids.begin(), ids.end(), id));
}

bool contains(const std::vector<int32_t>& ids, const std::vector<int32_t>& run) {
  return std::search(ids.begin(), ids.end(), run.begin(), run.end()) != ids.end();
}

TEST(ModelChatTemplate, TokenizerConfigStringAndNamedForms) {
  TempDir d;
  write_bytes(d.file("tokenizer_config.json"),
              "{\"bos_token\": null, \"chat_template\": \"" + std::string("{{ 'x' }}") + "\"}");
  EXPECT_EQ(model_chat_template(d.path()), "{{ 'x' }}");
  write_bytes(d.file("tokenizer_config.json"),
              R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                    {"name": "default", "template": "D"}]})");
  EXPECT_EQ(model_chat_template(d.path()), "D");
  write_bytes(d.file("tokenizer_config.json"),
              R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "rag",
                  "template": "R"}]})");
  expect_error([&] { model_chat_template(d.path()); }, ErrorKind::kUnsupported,
               {"tool_use, rag", "\"default\"", "--chat-template"});
  write_bytes(d.file("tokenizer_config.json"), R"({"chat_template": 3})");
  expect_error([&] { model_chat_template(d.path()); }, ErrorKind::kFormat,
               {"tokenizer_config.json", "chat_template"});
  write_bytes(d.file("tokenizer_config.json"), R"({"chat_template": "x",)");
  expect_error([&] { model_chat_template(d.path()); }, ErrorKind::kFormat,
               {"tokenizer_config.json"});
  write_bytes(d.file("tokenizer_config.json"), R"({"model_max_length": 4096})");
  EXPECT_EQ(model_chat_template(d.path()), "");
}

TEST(ModelChatTemplate, ChatTemplateJinjaFileTakesPriority) {
  TempDir d;
  EXPECT_EQ(model_chat_template(d.path()), "");  // a folder without one
  write_bytes(d.file("chat_template.jinja"), kQwen2);
  EXPECT_EQ(model_chat_template(d.path()), kQwen2);
  write_bytes(d.file("tokenizer_config.json"), R"({"chat_template": "other"})");
  EXPECT_EQ(model_chat_template(d.path()), kQwen2);
  EXPECT_EQ(ChatTemplate::detect(model_chat_template(d.path())).variant().label, "Qwen2");
  expect_error([&] { model_chat_template(d.file("missing")); }, ErrorKind::kIo, {"missing"});
}

TEST(ModelChatTemplate, GgufMetadata) {
  TempDir d;
  io::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.chat_template", kQwen2);
  w.write(d.file("with.gguf"));
  EXPECT_EQ(model_chat_template(d.file("with.gguf")), kQwen2);
  io::GgufWriter none;
  none.set_string("general.architecture", "llama");
  none.write(d.file("none.gguf"));
  EXPECT_EQ(model_chat_template(d.file("none.gguf")), "");
  // llama.cpp's own conversions keep the model's template.
  const ChatTemplate phi3 =
      ChatTemplate::detect(model_chat_template(kShared + "/gguf/vocab/ggml-vocab-phi-3.gguf"));
  EXPECT_EQ(phi3.name(), "phi3");
  EXPECT_TRUE(phi3.variant().legacy_turns);
  const ChatTemplate qwen =
      ChatTemplate::detect(model_chat_template(kShared + "/gguf/vocab/ggml-vocab-qwen2.gguf"));
  EXPECT_EQ(qwen.name(), "chatml");
  EXPECT_EQ(qwen.variant().default_system, "You are a helpful assistant");
}

// SmolLM2's tokenizer.json: <|im_start|> is 1 and <|im_end|> 2, added special tokens.
TEST(ChatTemplateTokens, ChatMLSpecialTokensAreSingleIds) {
  const auto tok = load_tokenizer_json(kShared + "/tokenizers/smollm2-bpe/tokenizer.json");
  const ChatTemplate t = ChatTemplate::by_name("smollm2");
  const std::vector<int32_t> ids = t.encode(*tok, kNoSystem, true);
  auto enc = [&](const std::string& s) { return tok->encode(s, false); };
  std::vector<int32_t> want;
  for (const std::string& turn :
       {std::string("system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"),
        std::string("user\nHello!"), std::string("assistant\n Hi. "),
        std::string("user\nWhat is 2+2?")}) {
    want.push_back(1);
    for (int32_t id : enc(turn)) want.push_back(id);
    want.push_back(2);
    want.push_back(198);  // "\n"
  }
  want.push_back(1);
  for (int32_t id : enc("assistant\n")) want.push_back(id);
  EXPECT_EQ(ids, want);
  EXPECT_EQ(count(ids, 1), 5u);
  EXPECT_EQ(count(ids, 2), 4u);
  EXPECT_EQ(tok->decode(ids, false), t.apply(kNoSystem, true, "", ""));
}

// Llama 2 (SentencePiece): "<s>[INST]" is 1 518 25580 29962, "[/INST]" 518 29914 25580 29962, and
// "</s><s>" between turns stays two ids.
TEST(ChatTemplateTokens, Llama2BosAndEosBetweenTurns) {
  const auto tok = load_sentencepiece(kShared + "/tokenizers/llama2-spm/tokenizer.model");
  EXPECT_EQ(special_token_text(*tok, tok->bos_id()), "<s>");
  EXPECT_EQ(special_token_text(*tok, tok->eos_id()), "</s>");
  const std::vector<int32_t> ids = ChatTemplate::by_name("llama2").encode(*tok, kChat, true);
  ASSERT_GE(ids.size(), 8u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 4),
            (std::vector<int32_t>{1, 518, 25580, 29962}));
  EXPECT_TRUE(contains(ids, {2, 1, 518, 25580, 29962}));
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 4, ids.end()),
            (std::vector<int32_t>{518, 29914, 25580, 29962}));
  EXPECT_EQ(count(ids, 1), 2u);  // one BOS per user turn, none added on top
  EXPECT_EQ(count(ids, 2), 1u);
  // llama.cpp's conversion of the same vocabulary gives the same ids.
  const auto gguf = load_gguf_tokenizer(kShared + "/gguf/vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(ChatTemplate::by_name("llama2").encode(*gguf, kChat, true), ids);
}

// Llama 3 (llama.cpp's vocabulary): <|begin_of_text|> 128000, <|start_header_id|> 128006,
// <|end_header_id|> 128007, <|eot_id|> 128009, "\n\n" 271.
TEST(ChatTemplateTokens, Llama3HeaderTokens) {
  const auto tok = load_gguf_tokenizer(kShared + "/gguf/vocab/ggml-vocab-llama-bpe.gguf");
  EXPECT_EQ(special_token_text(*tok, tok->bos_id()), "<|begin_of_text|>");
  const std::vector<int32_t> ids = ChatTemplate::by_name("llama3.1").encode(*tok, kChat, true);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 2),
            (std::vector<int32_t>{128000, 128006}));
  EXPECT_EQ(count(ids, 128000), 1u);
  EXPECT_EQ(count(ids, 128006), 5u);  // system, three turns, the generation prompt
  EXPECT_EQ(count(ids, 128007), 5u);
  EXPECT_EQ(count(ids, 128009), 4u);
  EXPECT_EQ(std::vector<int32_t>(ids.end() - 2, ids.end()), (std::vector<int32_t>{128007, 271}));
}

// Phi-3 (llama.cpp's vocabulary, whose file carries the first Phi-3 template): <s> 1,
// <|user|> 32010, <|end|> 32007, <|assistant|> 32001.
TEST(ChatTemplateTokens, Phi3ChatTokens) {
  const std::string path = kShared + "/gguf/vocab/ggml-vocab-phi-3.gguf";
  const auto tok = load_gguf_tokenizer(path);
  const ChatTemplate t = ChatTemplate::detect(tok->chat_template());
  const std::vector<int32_t> ids = t.encode(*tok, kChat, true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 2), (std::vector<int32_t>{1, 32010}));
  EXPECT_EQ(count(ids, 1), 1u);
  EXPECT_EQ(count(ids, 32010), 2u);
  EXPECT_EQ(count(ids, 32007), 3u);
  EXPECT_EQ(count(ids, 32001), 2u);
}

// Qwen2 (llama.cpp's vocabulary and template): <|im_start|> 151644, <|im_end|> 151645.
TEST(ChatTemplateTokens, Qwen2ImTokens) {
  const auto tok = load_gguf_tokenizer(kShared + "/gguf/vocab/ggml-vocab-qwen2.gguf");
  const ChatTemplate t = ChatTemplate::detect(tok->chat_template());
  const std::vector<int32_t> ids = t.encode(*tok, kNoSystem, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(count(ids, 151644), 5u);  // default system, three turns, the generation prompt
  EXPECT_EQ(count(ids, 151645), 4u);
}

}  // namespace
}  // namespace longctx
