// Chat templates: each official template (tests/runtime/fixtures/chat_templates.json) is detected
// as its family and variant, and renders a conversation to the string its Jinja produces under
// Hugging Face's apply_chat_template, written out here by hand from the template's statements.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "runtime/chat_template_text.h"

namespace longctx {
namespace {

std::string official(const std::string& model) {
  static const nlohmann::json fixture = [] {
    std::ifstream in(std::string(LONGCTX_SOURCE_DIR) +
                     "/tests/runtime/fixtures/chat_templates.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return nlohmann::json::parse(ss.str());
  }();
  for (const auto& t : fixture["templates"]) {
    if (t["model"] == model) return t["template"].get<std::string>();
  }
  ADD_FAILURE() << "no fixture template for " << model;
  return "";
}

// system + user + assistant + user; the assistant's reply has spaces around it, which Llama 2,
// Llama 3 and Mistral v0.3 strip and the others keep.
const std::vector<ChatMessage> kChat = {{"system", "You are terse."},
                                        {"user", "Hello!"},
                                        {"assistant", " Hi. "},
                                        {"user", "What is 2+2?"}};
const std::vector<ChatMessage> kNoSystem(kChat.begin() + 1, kChat.end());

template <typename Fn>
void expect_error(Fn&& fn, ErrorKind kind, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an Error of kind " << error_kind_name(kind);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, EveryOfficialTemplateIsDetectedAsItsFamilyAndVariant) {
  std::ifstream in(std::string(LONGCTX_SOURCE_DIR) + "/tests/runtime/fixtures/chat_templates.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  ASSERT_GE(fixture["templates"].size(), 14u);
  for (const auto& t : fixture["templates"]) {
    SCOPED_TRACE(t["model"].get<std::string>());
    const ChatTemplate c = ChatTemplate::detect(t["template"].get<std::string>());
    EXPECT_EQ(c.name(), t["family"].get<std::string>());
    EXPECT_EQ(c.variant().label, t["label"].get<std::string>());
  }
}

TEST(ChatTemplate, Llama2) {
  const ChatTemplate t = ChatTemplate::detect(official("meta-llama/Llama-2-7b-chat-hf"));
  EXPECT_EQ(t.apply(kChat, true, "<s>", "</s>"),
            "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello! [/INST] Hi. </s>"
            "<s>[INST] What is 2+2? [/INST]");
  // No generation prompt to add or leave out: the template always ends a user turn at [/INST].
  EXPECT_EQ(t.apply(kChat, false, "<s>", "</s>"), t.apply(kChat, true, "<s>", "</s>"));
  EXPECT_EQ(t.apply(kNoSystem, true, "<s>", "</s>"),
            "<s>[INST] Hello! [/INST] Hi. </s><s>[INST] What is 2+2? [/INST]");
  // .strip() applies to system + user together: outer blanks go, inner ones stay.
  EXPECT_EQ(t.apply({{"system", "  S  "}, {"user", " U \n"}}, true, "<s>", "</s>"),
            "<s>[INST] <<SYS>>\n  S  \n<</SYS>>\n\n U [/INST]");
  // A system message where an assistant one is due passes the template's check and is written
  // nowhere (the template has no branch for it).
  EXPECT_EQ(t.apply({{"user", "a"}, {"system", "s"}, {"user", "b"}}, true, "<s>", "</s>"),
            "<s>[INST] a [/INST]<s>[INST] b [/INST]");
  EXPECT_EQ(ChatTemplate::by_name("llama2").apply(kChat, true, "<s>", "</s>"),
            t.apply(kChat, true, "<s>", "</s>"));
}

TEST(ChatTemplate, MistralV01SystemInTheFirstUserTurn) {
  const ChatTemplate t = ChatTemplate::detect(official("mistralai/Mistral-7B-Instruct-v0.1"));
  EXPECT_EQ(t.variant().system, ChatTemplate::SystemMode::kFirstUser);
  EXPECT_EQ(t.apply(kChat, true, "<s>", "</s>"),
            "<s> [INST] You are terse.\n\nHello! [/INST]  Hi. </s> [INST] What is 2+2? [/INST]");
  EXPECT_EQ(t.apply(kNoSystem, false, "<s>", "</s>"),
            "<s> [INST] Hello! [/INST]  Hi. </s> [INST] What is 2+2? [/INST]");
  EXPECT_EQ(ChatTemplate::by_name("mistral").apply(kChat, true, "<s>", "</s>"),
            t.apply(kChat, true, "<s>", "</s>"));
}

TEST(ChatTemplate, MistralFirstTemplateRefusesASystemMessage) {
  const ChatTemplate t =
      ChatTemplate::detect(official("mistralai/Mistral-7B-Instruct-v0.2 (first template)"));
  EXPECT_EQ(t.variant().system, ChatTemplate::SystemMode::kRejected);
  EXPECT_EQ(t.apply(kNoSystem, true, "<s>", "</s>"),
            "<s>[INST] Hello! [/INST] Hi. </s>[INST] What is 2+2? [/INST]");
  expect_error([&] { t.apply(kChat, true, "<s>", "</s>"); }, ErrorKind::kInvalidArg,
               {"alternate", "message 0 (system) breaks that"});
}

TEST(ChatTemplate, MistralV03SystemInTheLastUserTurn) {
  const ChatTemplate t = ChatTemplate::detect(official("mistralai/Mistral-7B-Instruct-v0.3"));
  EXPECT_EQ(t.variant().system, ChatTemplate::SystemMode::kLastUser);
  EXPECT_EQ(t.apply(kChat, true, "<s>", "</s>"),
            "<s>[INST] Hello![/INST] Hi.</s>[INST] You are terse.\n\nWhat is 2+2?[/INST]");
  // Ending with the assistant's message, no user turn is the last one: the system message is
  // written nowhere.
  const std::vector<ChatMessage> ends_with_reply(kChat.begin(), kChat.begin() + 3);
  EXPECT_EQ(t.apply(ends_with_reply, false, "<s>", "</s>"), "<s>[INST] Hello![/INST] Hi.</s>");
  EXPECT_EQ(ChatTemplate::by_name("mistral-v0.3").apply(kChat, true, "<s>", "</s>"),
            t.apply(kChat, true, "<s>", "</s>"));
}

TEST(ChatTemplate, Llama3) {
  const ChatTemplate t = ChatTemplate::detect(official("meta-llama/Meta-Llama-3-8B-Instruct"));
  const std::string turns =
      "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>";
  EXPECT_EQ(
      t.apply(kChat, true, "<|begin_of_text|>", "<|eot_id|>"),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
          turns + "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t.apply(kNoSystem, false, "<|begin_of_text|>", "<|eot_id|>"),
            "<|begin_of_text|>" + turns);
  EXPECT_EQ(ChatTemplate::by_name("llama3").apply(kChat, true, "<|begin_of_text|>", "<|eot_id|>"),
            t.apply(kChat, true, "<|begin_of_text|>", "<|eot_id|>"));
}

TEST(ChatTemplate, Llama31WritesTheDatedSystemHeaderAlways) {
  const ChatTemplate t = ChatTemplate::detect(official("meta-llama/Llama-3.1-8B-Instruct"));
  EXPECT_TRUE(t.variant().dated_system_header);
  EXPECT_FALSE(t.variant().date_today);
  const std::string header =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
  const std::string turns =
      "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>";
  EXPECT_EQ(t.apply(kChat, true, "<|begin_of_text|>", "<|eot_id|>"),
            header + "You are terse.<|eot_id|>" + turns +
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t.apply(kNoSystem, false, "<|begin_of_text|>", "<|eot_id|>"),
            header + "<|eot_id|>" + turns);
  EXPECT_EQ(ChatTemplate::by_name("llama3.1").apply(kChat, true, "<|begin_of_text|>", "x"),
            t.apply(kChat, true, "<|begin_of_text|>", "x"));
}

TEST(ChatTemplate, Llama32WritesTodaysDateUnlessGiven) {
  ChatTemplate t = ChatTemplate::detect(official("meta-llama/Llama-3.2-3B-Instruct"));
  EXPECT_TRUE(t.variant().date_today);
  const std::string today = t.apply(kNoSystem, true, "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_TRUE(
      std::regex_search(today, std::regex("\nToday Date: [0-3][0-9] [A-Z][a-z]{2} 20[0-9]{2}\n\n")))
      << today;
  t.set_date_string("05 Mar 2025");
  EXPECT_EQ(t.apply({{"system", " Be brief. "}, {"user", "Hi"}}, true, "<|begin_of_text|>", "e"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 05 Mar 2025\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, ChatMLWithEachModelsDefaultSystemMessage) {
  const std::string turns =
      "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n Hi. <|im_end|>\n"
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n";
  const std::string open = "<|im_start|>assistant\n";
  const std::string given = "<|im_start|>system\nYou are terse.<|im_end|>\n";
  const struct {
    const char* model;
    const char* by_name;
    const char* default_system;  // null: none
  } cases[] = {
      {"Qwen/Qwen2-7B-Instruct", "qwen2", "You are a helpful assistant."},
      {"Qwen/Qwen2.5-7B-Instruct", "qwen2.5",
       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
      {"HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2",
       "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
      {"teknium/OpenHermes-2.5-Mistral-7B", "chatml", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    const ChatTemplate t = ChatTemplate::detect(official(c.model));
    EXPECT_EQ(t.variant().default_system.has_value(), c.default_system != nullptr);
    // A system message of the caller's replaces the default.
    EXPECT_EQ(t.apply(kChat, true, "", "<|im_end|>"), given + turns + open);
    const std::string dflt =
        c.default_system ? std::string("<|im_start|>system\n") + c.default_system + "<|im_end|>\n"
                         : "";
    EXPECT_EQ(t.apply(kNoSystem, false, "", "<|im_end|>"), dflt + turns);
    EXPECT_EQ(ChatTemplate::by_name(c.by_name).apply(kNoSystem, true, "", ""),
              t.apply(kNoSystem, true, "", ""));
  }
}

TEST(ChatTemplate, Phi3AndPhi35DifferOnAnEmptySystemMessage) {
  const ChatTemplate phi3 = ChatTemplate::detect(official("microsoft/Phi-3-mini-4k-instruct"));
  const ChatTemplate phi35 = ChatTemplate::detect(official("microsoft/Phi-3.5-mini-instruct"));
  const std::string turns =
      "<|user|>\nHello!<|end|>\n<|assistant|>\n Hi. <|end|>\n<|user|>\nWhat is 2+2?<|end|>\n";
  for (const ChatTemplate* t : {&phi3, &phi35}) {
    EXPECT_EQ(t->apply(kChat, true, "<s>", "<|endoftext|>"),
              "<|system|>\nYou are terse.<|end|>\n" + turns + "<|assistant|>\n");
    EXPECT_EQ(t->apply(kNoSystem, false, "<s>", "<|endoftext|>"), turns + "<|endoftext|>");
  }
  std::vector<ChatMessage> empty_system = kNoSystem;
  empty_system.insert(empty_system.begin(), {"system", ""});
  EXPECT_EQ(phi3.apply(empty_system, true, "<s>", "e"),
            "<|system|>\n<|end|>\n" + turns + "<|assistant|>\n");
  EXPECT_EQ(phi35.apply(empty_system, true, "<s>", "e"), turns + "<|assistant|>\n");
  EXPECT_EQ(ChatTemplate::by_name("phi3.5").apply(empty_system, true, "<s>", "e"),
            phi35.apply(empty_system, true, "<s>", "e"));
}

TEST(ChatTemplate, Phi3FirstTemplateDropsTheSystemMessage) {
  const ChatTemplate t =
      ChatTemplate::detect(official("microsoft/Phi-3-mini-4k-instruct (first template)"));
  const std::string prompt =
      "<s><|user|>\nHello!<|end|>\n<|assistant|>\n Hi. <|end|>\n"
      "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n";
  EXPECT_EQ(t.apply(kChat, true, "<s>", "</s>"), prompt);
  EXPECT_EQ(t.apply(kChat, false, "<s>", "</s>"), prompt);  // it has no add_generation_prompt
}

TEST(ChatTemplate, DetectionIgnoresSpacingQuotesAndWhitespaceControl) {
  // Llama 3's template written with double quotes, blanks, "-" markers and line breaks.
  const ChatTemplate t = ChatTemplate::detect(
      "{%- set loop_messages = messages -%}\n{%- for message in loop_messages %}\n"
      "  {%- set content = \"<|start_header_id|>\"+message[\"role\"] + \"<|end_header_id|>\\n\\n\" "
      "+"
      " message[\"content\"]|trim + \"<|eot_id|>\" %}\n"
      "  {%- if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}\n"
      "  {{- content }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n"
      "  {{- \"<|start_header_id|>assistant<|end_header_id|>\\n\\n\" }}\n{%- endif %}\n");
  EXPECT_EQ(t.name(), "llama3");
  EXPECT_FALSE(t.variant().generation_prompt_always);
  EXPECT_EQ(chat::normalize_jinja("{%- if x %}\n  {{- \"a\\\"b\" }}  \n{% endif %}\n{# c #}z"),
            "{%ifx%}{{'a\"b'}}  \n{%endif%}z");
}

TEST(ChatTemplate, UnknownOrEditedTemplatesAreRefusedNamingTheChoices) {
  const std::string gemma =
      "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' "
      "+ "
      "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
      "{{'<start_of_turn>model\\n'}}{% endif %}";
  try {
    ChatTemplate::detect(gemma);
    ADD_FAILURE() << "a Gemma template was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    for (const char* part : {"Llama 2", "Mistral", "Llama 3", "ChatML", "Phi-3", "--chat-template",
                             "llama2", "chatml", "phi3.5"}) {
      EXPECT_NE(m.find(part), std::string::npos) << part << " in " << m;
    }
    EXPECT_EQ(m.find("start_of_turn"), std::string::npos) << "the template is dumped: " << m;
  }
  // Llama 2's template with the assistant turn changed renders differently: refused.
  std::string edited = official("meta-llama/Llama-2-7b-chat-hf");
  edited.replace(edited.find("' '  + content.strip()"), 22, "content");
  expect_error([&] { ChatTemplate::detect(edited); }, ErrorKind::kUnsupported,
               {"looks like a Llama 2 template", "assistant", "--chat-template"});
  // Text between the tags is written into the prompt as it stands: refused too. (Of "\n\n" after
  // {% endfor %}, trim_blocks removes the first newline; the second is written.)
  std::string stray = official("teknium/OpenHermes-2.5-Mistral-7B");
  stray.insert(stray.find("{% if add_generation_prompt"), "\n\n");
  expect_error([&] { ChatTemplate::detect(stray); }, ErrorKind::kUnsupported,
               {"looks like a ChatML template", "outside", "(\"\\n\")"});
  expect_error([] { ChatTemplate::detect(" \n"); }, ErrorKind::kUnsupported,
               {"no chat template", "--chat-template"});
}

TEST(ChatTemplate, ByNameKnowsEveryNameAndRefusesOthers) {
  for (const std::string& n : ChatTemplate::names())
    EXPECT_FALSE(ChatTemplate::by_name(n).name().empty());
  EXPECT_EQ(ChatTemplate::by_name("qwen2").name(), "chatml");
  EXPECT_EQ(ChatTemplate::by_name("phi3.5").name(), "phi3");
  EXPECT_EQ(ChatTemplate::by_name("qwen2").describe(),
            "chatml (Qwen2; default system message \"You are a helpful assistant.\")");
  ChatTemplate llama31 = ChatTemplate::by_name("llama3.1");
  EXPECT_EQ(llama31.describe(), "llama3 (Llama 3.1; Today Date: 26 Jul 2024)");
  llama31.set_date_string("01 Jan 2025");
  EXPECT_EQ(llama31.describe(), "llama3 (Llama 3.1; Today Date: 01 Jan 2025)");
  expect_error([] { ChatTemplate::by_name("vicuna"); }, ErrorKind::kInvalidArg,
               {"\"vicuna\"", "llama2, mistral", "chatml", "phi3"});
}

TEST(ChatTemplate, BadMessagesAreInvalidArguments) {
  for (const std::string& n : ChatTemplate::names()) {
    SCOPED_TRACE(n);
    const ChatTemplate t = ChatTemplate::by_name(n);
    expect_error([&] { t.apply({}, true, "<s>", "</s>"); }, ErrorKind::kInvalidArg, {"none"});
    expect_error(
        [&] {
          t.apply({{"user", "a"}, {"tool", "b"}}, true, "<s>", "</s>");
        },
        ErrorKind::kInvalidArg, {"message 1", "\"tool\"", "system, user and assistant"});
  }
  for (const char* n : {"llama2", "mistral", "mistral-v0.3"}) {
    SCOPED_TRACE(n);
    const ChatTemplate t = ChatTemplate::by_name(n);
    expect_error(
        [&] {
          t.apply({{"user", "a"}, {"user", "b"}}, true, "<s>", "</s>");
        },
        ErrorKind::kInvalidArg, {"alternate", "message 1 (user) breaks that"});
    expect_error(
        [&] {
          t.apply({{"system", "s"}, {"assistant", "a"}}, true, "<s>", "</s>");
        },
        ErrorKind::kInvalidArg, {"alternate"});
  }
  // Mistral has no place for a second system message (Llama 2 writes it nowhere, above).
  expect_error(
      [] {
        ChatTemplate::by_name("mistral").apply({{"user", "a"}, {"system", "s"}}, true, "<s>", "");
      },
      ErrorKind::kInvalidArg, {"only the first message may be a system message"});
  // The other families take any order, as their templates do.
  EXPECT_EQ(ChatTemplate::by_name("chatml").apply({{"assistant", "a"}, {"assistant", "b"}}, false,
                                                  "", ""),
            "<|im_start|>assistant\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n");
}

TEST(ChatTemplate, PyStripIsPythonsStrip) {
  EXPECT_EQ(chat::py_strip(" \t\n\r\v\f a b \x1c\x1f"), "a b");
  // U+00A0, U+2003, U+3000 and U+0085 are whitespace to Python; U+200B (zero width) is not.
  EXPECT_EQ(chat::py_strip("\xC2\xA0\xE2\x80\x83x\xE3\x80\x80\xC2\x85"), "x");
  EXPECT_EQ(chat::py_strip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");
  EXPECT_EQ(chat::py_strip("   "), "");
  EXPECT_EQ(chat::py_strip("\xFF "), "\xFF");  // invalid bytes are not whitespace
}

}  // namespace
}  // namespace longctx
