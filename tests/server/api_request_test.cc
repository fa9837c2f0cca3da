// The request-body parser: every field's type and range, defaults, and the errors naming them.
#include "server/api_request.h"

#include <gtest/gtest.h>

namespace longctx::server {
namespace {

// The ApiError a body raises (status, param, message); fails the test when it parses.
template <typename F>
ApiError error_of(F parse, const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error: " << body;
  return ApiError(0, "");
}

ApiError completion_error(const std::string& body) {
  return error_of([](const std::string& b) { return parse_completion_request(b); }, body);
}
ApiError chat_error(const std::string& body) {
  return error_of([](const std::string& b) { return parse_chat_request(b); }, body);
}

TEST(ApiRequest, CompletionDefaultsFollowOpenAI) {
  const auto r = parse_completion_request(R"({"model": "x", "prompt": "Once upon"})");
  EXPECT_EQ(r.prompt_text, "Once upon");
  EXPECT_FALSE(r.prompt_is_ids);
  EXPECT_FALSE(r.gen.max_tokens.has_value());  // the endpoint's default (16) applies
  EXPECT_FLOAT_EQ(r.gen.temperature, 1.f);
  EXPECT_FLOAT_EQ(r.gen.top_p, 1.f);
  EXPECT_FALSE(r.gen.seed.has_value());
  EXPECT_FALSE(r.gen.stream);
  EXPECT_FALSE(r.logprobs.has_value());
  EXPECT_TRUE(r.gen.stop.empty());
}

TEST(ApiRequest, CompletionReadsEveryField) {
  const auto r = parse_completion_request(
      R"({"prompt": "p", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3,
          "min_p": 0.1, "seed": 42, "stop": ["\n", "END"], "stream": true,
          "stream_options": {"include_usage": true}, "n": 1, "logprobs": 2, "echo": false,
          "repeat_penalty": 1.1, "ignore_eos": true, "presence_penalty": 0})");
  EXPECT_EQ(*r.gen.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.gen.temperature, 0.f);
  EXPECT_FLOAT_EQ(r.gen.top_p, 0.5f);
  EXPECT_EQ(r.gen.top_k, 3);
  EXPECT_FLOAT_EQ(r.gen.min_p, 0.1f);
  EXPECT_EQ(*r.gen.seed, 42u);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.gen.stream);
  EXPECT_TRUE(r.gen.include_usage);
  EXPECT_EQ(*r.logprobs, 2);
  EXPECT_FLOAT_EQ(r.gen.repeat_penalty, 1.1f);
  EXPECT_TRUE(r.gen.ignore_eos);
}

TEST(ApiRequest, PromptForms) {
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["one"]})").prompt_text, "one");
  const auto ids = parse_completion_request(R"({"prompt": [1, 15043, 0]})");
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 15043, 0}));
  // Nulls are absent fields, as in OpenAI's API.
  EXPECT_FALSE(parse_completion_request(R"({"prompt": "a", "max_tokens": null})")
                   .gen.max_tokens.has_value());

  auto e = completion_error(R"({"prompt": ["one", "two"]})");
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(e.param(), "prompt");
  EXPECT_NE(std::string(e.what()).find("2 prompts"), std::string::npos) << e.what();
  EXPECT_EQ(completion_error(R"({"max_tokens": 3})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": 5})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": []})").param(), "prompt");
  e = completion_error(R"({"prompt": [1, -2]})");
  EXPECT_NE(std::string(e.what()).find("element 1 is -2"), std::string::npos) << e.what();
  EXPECT_EQ(completion_error(R"({"prompt": [1, 2.5]})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": [1, 4294967296]})").param(), "prompt");
}

TEST(ApiRequest, WrongTypesNameTheField) {
  struct Case {
    const char* body;
    const char* param;
    const char* says;
  };
  const Case cases[] = {
      {R"({"prompt": "a", "max_tokens": "16"})", "max_tokens", "must be an integer, not a string"},
      {R"({"prompt": "a", "max_tokens": 2.5})", "max_tokens", "must be an integer"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature", "must be a number"},
      {R"({"prompt": "a", "temperature": true})", "temperature", "not a boolean"},
      {R"({"prompt": "a", "stream": 1})", "stream", "must be true or false"},
      {R"({"prompt": "a", "stop": 3})", "stop", "a string or an array"},
      {R"({"prompt": "a", "stop": ["x", 3]})", "stop", "must be a string"},
      {R"({"prompt": "a", "seed": "7"})", "seed", "must be an integer"},
      {R"({"prompt": "a", "stream_options": []})", "stream_options", "must be an object"},
      {R"({"prompt": "a", "model": 3})", "model", "must be a string"},
  };
  for (const Case& c : cases) {
    const ApiError e = completion_error(c.body);
    EXPECT_EQ(e.status(), 400) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body;
    EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.body << ": " << e.what();
  }
}

TEST(ApiRequest, OutOfRangeValuesAndUnsupportedSettingsAreRefused) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": -1})", "max_tokens"},
      {R"({"prompt": "a", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "a", "temperature": 2.5})", "temperature"},
      {R"({"prompt": "a", "top_p": 0})", "top_p"},
      {R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "a", "top_k": -1})", "top_k"},
      {R"({"prompt": "a", "min_p": 1})", "min_p"},
      {R"({"prompt": "a", "logprobs": 6})", "logprobs"},
      {R"({"prompt": "a", "logprobs": -1})", "logprobs"},
      {R"({"prompt": "a", "n": 2})", "n"},
      {R"({"prompt": "a", "echo": true})", "echo"},
      {R"({"prompt": "a", "best_of": 3})", "best_of"},
      {R"({"prompt": "a", "presence_penalty": 0.5})", "presence_penalty"},
      {R"({"prompt": "a", "frequency_penalty": 1})", "frequency_penalty"},
      {R"({"prompt": "a", "logit_bias": {"5": 1}})", "logit_bias"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
      {R"({"prompt": "a", "stop": ""})", "stop"},
      {R"({"prompt": "a", "suffix": "tail"})", "suffix"},
  };
  for (const auto& [body, param] : cases) {
    const ApiError e = completion_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
  }
  // The message says what is allowed.
  EXPECT_NE(
      std::string(completion_error(R"({"prompt": "a", "temperature": 3})").what()).find("[0, 2]"),
      std::string::npos);
  EXPECT_NE(std::string(completion_error(R"({"prompt": "a", "n": 3})").what()).find("must be 1"),
            std::string::npos);
}

TEST(ApiRequest, UnknownFieldsAreIgnored) {
  const auto r = parse_completion_request(
      R"({"prompt": "a", "user": "u1", "some_future_field": {"deep": [1, 2]}, "max_tokens": 3})");
  EXPECT_EQ(*r.gen.max_tokens, 3);
  const auto c = parse_chat_request(
      R"({"messages": [{"role": "user", "content": "hi", "name": "bob"}], "metadata": {}})");
  EXPECT_EQ(c.messages.size(), 1u);
}

TEST(ApiRequest, MalformedJsonAndNonObjects) {
  for (const char* body :
       {"", "{", R"({"prompt": "a",})", "nul", R"({"prompt": "a"} x)", R"({"prompt": 1e400})"}) {
    const ApiError e = completion_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  const ApiError e = completion_error(R"(["prompt"])");
  EXPECT_NE(std::string(e.what()).find("must be a JSON object, not array"), std::string::npos)
      << e.what();
}

TEST(ApiRequest, InvalidUtf8IsNamed) {
  // A raw 0xC3 followed by an ASCII byte, and an escaped lone surrogate.
  for (const std::string& body :
       {std::string("{\"prompt\": \"caf\xC3(\"}"), std::string(R"({"prompt": "\ud800"})")}) {
    const ApiError e = completion_error(body);
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8"), std::string::npos) << e.what();
  }
  // Valid multi-byte text and escapes pass.
  EXPECT_EQ(parse_completion_request("{\"prompt\": \"caf\xC3\xA9 \\u00e9\"}").prompt_text,
            "caf\xC3\xA9 \xC3\xA9");
}

TEST(ApiRequest, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep =
      R"({"prompt": "a", "x": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  const ApiError e = completion_error(deep);
  EXPECT_NE(std::string(e.what()).find("nested more than"), std::string::npos) << e.what();
}

TEST(ApiRequest, ChatMessagesAndContentParts) {
  const auto r = parse_chat_request(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hello"},
                                   {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null}],
      "max_completion_tokens": 9, "max_tokens": 4, "logprobs": true, "top_logprobs": 3})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hello\nthere");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(*r.gen.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(*parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}],
                                    "max_tokens": 4})")
                 .gen.max_tokens,
            4);
}

TEST(ApiRequest, ChatErrorsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": [3]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "wizard", "content": "x"}]})",
       "messages[1].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
       "messages[0].content[0].text"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})",
       "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}],
           "response_format": {"type": "json_object"}})",
       "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})",
       "max_completion_tokens"},
  };
  for (const auto& [body, param] : cases) {
    const ApiError e = chat_error(body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
  }
}

}  // namespace
}  // namespace longctx::server
