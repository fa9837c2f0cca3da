#include "api_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace longctx::server {

namespace {

using nlohmann::json;

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, message, param);
}

// The body as a JSON object. nlohmann's lexer checks UTF-8 inside strings, so invalid UTF-8 in a
// prompt (raw bytes, or an escaped lone surrogate) surfaces here: name it, with its byte offset.
json parse_object(std::string_view body) {
  // Nesting is bounded: a body of 8 MiB of '[' is valid JSON, and the values built from it would
  // be destroyed and printed recursively.
  constexpr int kMaxDepth = 64;
  const json::parser_callback_t depth_limit = [](int depth, json::parse_event_t, json&) {
    if (depth > kMaxDepth)
      throw bad(
          "", "the request body is nested more than " + std::to_string(kMaxDepth) + " levels deep");
    return true;
  };
  json j;
  try {
    j = json::parse(body.begin(), body.end(), depth_limit);
  } catch (const json::parse_error& e) {
    const std::string what = e.what();
    const std::string at = " at byte " + std::to_string(e.byte);
    if (what.find("UTF-8") != std::string::npos || what.find("surrogate") != std::string::npos)
      throw bad("", "the request body has invalid UTF-8" + at +
                        " (inside a string: prompts and messages must be UTF-8 text)");
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: "
    // prefix noise but keep the reason.
    std::string reason = what;
    if (const size_t p = reason.find(": "); p != std::string::npos) reason = reason.substr(p + 2);
    throw bad("", "the request body is not valid JSON" + at + ": " + reason);
  } catch (const json::exception& e) {
    // out_of_range: a number beyond double (1e400).
    std::string reason = e.what();
    if (const size_t p = reason.find("] "); p != std::string::npos) reason = reason.substr(p + 2);
    throw bad("", "the request body is not valid JSON: " + reason);
  }
  if (!j.is_object())
    throw bad("", std::string("the request body must be a JSON object, not ") + j.type_name());
  return j;
}

// A field's value, or null when absent (OpenAI treats an explicit null as absent).
const json* field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string type_word(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a number";
  return std::string("a") + (v.is_array() || v.is_object() ? "n " : " ") + v.type_name();
}

std::optional<double> get_number(const json& obj, const char* key, double lo, double hi,
                                 bool lo_open = false) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number())
    throw bad(key, std::string("'") + key + "' must be a number, not " + type_word(*v));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
    char range[96];
    std::snprintf(range, sizeof range, "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
    throw bad(key, std::string("'") + key + "' must be in " + range + ", not " + v->dump());
  }
  return x;
}

std::optional<int64_t> get_int(const json& obj, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  const std::string name = std::string("'") + key + "'";
  bool ok = v->is_number_integer();
  // 16.0 is an integer that went through a float somewhere; 1e300 and 2.5 are not.
  if (v->is_number_float()) {
    const double d = v->get<double>();
    ok = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15;
  }
  if (!ok) throw bad(key, name + " must be an integer, not " + type_word(*v));
  int64_t x;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    x = u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                          : int64_t(u);
  } else if (v->is_number_float()) {
    x = static_cast<int64_t>(v->get<double>());
  } else {
    x = v->get<int64_t>();
  }
  if (x < lo || x > hi)
    throw bad(key, name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], not " + v->dump());
  return x;
}

std::optional<bool> get_bool(const json& obj, const char* key) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean())
    throw bad(key, std::string("'") + key + "' must be true or false, not " + type_word(*v));
  return v->get<bool>();
}

void check_string(const json& v, const std::string& param) {
  if (!v.is_string()) throw bad(param, "'" + param + "' must be a string, not " + type_word(v));
}

// Accepted only at the value that changes nothing.
void refuse_unless(bool ok, const char* key, const std::string& why) {
  if (!ok) throw bad(key, std::string("'") + key + "' " + why);
}

GenerationParams parse_generation(const json& j, bool chat) {
  GenerationParams g;
  constexpr int64_t kMaxTokens = int64_t(1) << 30;
  if (chat) {
    // max_completion_tokens replaces max_tokens in the current API; either is accepted.
    if (auto v = get_int(j, "max_completion_tokens", 1, kMaxTokens))
      g.max_tokens = int(*v);
    else if (auto w = get_int(j, "max_tokens", 1, kMaxTokens))
      g.max_tokens = int(*w);
  } else if (auto v = get_int(j, "max_tokens", 1, kMaxTokens)) {
    g.max_tokens = int(*v);
  }
  if (auto v = get_number(j, "temperature", 0, 2)) g.temperature = float(*v);
  if (auto v = get_number(j, "top_p", 0, 1, /*lo_open=*/true)) g.top_p = float(*v);
  if (auto v = get_int(j, "top_k", 0, std::numeric_limits<int>::max())) g.top_k = int(*v);
  if (auto v = get_number(j, "min_p", 0, 1)) {
    refuse_unless(*v < 1, "min_p", "must be below 1 (it would drop every token)");
    g.min_p = float(*v);
  }
  if (auto v = get_number(j, "repeat_penalty", 0, 100, /*lo_open=*/true))
    g.repeat_penalty = float(*v);
  if (auto v = get_int(j, "seed", std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max()))
    g.seed = static_cast<uint64_t>(*v);
  if (const json* s = field(j, "stop")) {
    if (s->is_string()) {
      g.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > size_t(kMaxStopStrings))
        throw bad("stop", "'stop' takes at most " + std::to_string(kMaxStopStrings) +
                              " strings, not " + std::to_string(s->size()));
      for (const json& e : *s) {
        check_string(e, "stop");
        g.stop.push_back(e.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of strings, not " + type_word(*s));
    }
    for (const std::string& x : g.stop)
      if (x.empty()) throw bad("stop", "'stop' strings must not be empty");
  }
  if (auto v = get_bool(j, "ignore_eos")) g.ignore_eos = *v;
  if (auto v = get_bool(j, "stream")) g.stream = *v;
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object())
      throw bad("stream_options", "'stream_options' must be an object, not " + type_word(*so));
    if (auto v = get_bool(*so, "include_usage")) g.include_usage = *v;
  }
  if (auto n =
          get_int(j, "n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    refuse_unless(*n == 1, "n",
                  "must be 1: one choice per request is supported, not " + std::to_string(*n));
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (auto v = get_number(j, key, -2, 2))
      refuse_unless(*v == 0, key, "is not supported (only 0); use repeat_penalty instead");
  if (const json* lb = field(j, "logit_bias")) {
    if (!lb->is_object())
      throw bad("logit_bias", "'logit_bias' must be an object, not " + type_word(*lb));
    refuse_unless(lb->empty(), "logit_bias", "is not supported (only {})");
  }
  return g;
}

std::string message_content(const json& m, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  const json* c = field(m, "content");
  if (!c) return {};  // an assistant turn that only called tools; the template sees ""
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array())
    throw bad(param,
              "'" + param + "' must be a string or an array of text parts, not " + type_word(*c));
  std::string text;
  for (size_t k = 0; k < c->size(); ++k) {
    const json& part = (*c)[k];
    const std::string pp = param + "[" + std::to_string(k) + "]";
    if (!part.is_object()) throw bad(pp, "'" + pp + "' must be an object, not " + type_word(part));
    const json* type = field(part, "type");
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      throw bad(pp + ".type", "'" + pp +
                                  ".type' must be \"text\": only text content is "
                                  "supported (this server runs text-only models)");
    const json* t = field(part, "text");
    if (!t) throw bad(pp + ".text", "'" + pp + ".text' is missing");
    check_string(*t, pp + ".text");
    if (!text.empty()) text += "\n";
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

CompletionApiRequest parse_completion_request(std::string_view body) {
  const json j = parse_object(body);
  CompletionApiRequest r;
  r.gen = parse_generation(j, /*chat=*/false);
  if (const json* m = field(j, "model")) check_string(*m, "model");
  const json* p = field(j, "prompt");
  if (!p) throw bad("prompt", "'prompt' is missing");
  if (p->is_string()) {
    r.prompt_text = p->get<std::string>();
  } else if (p->is_array()) {
    if (p->empty()) throw bad("prompt", "'prompt' is an empty array");
    if ((*p)[0].is_string()) {
      // A batch of prompts: only a batch of one (n = 1, one choice per request).
      if (p->size() != 1)
        throw bad("prompt", "'prompt' holds " + std::to_string(p->size()) +
                                " prompts; send one prompt per request");
      r.prompt_text = (*p)[0].get<std::string>();
    } else {
      r.prompt_is_ids = true;
      for (size_t i = 0; i < p->size(); ++i) {
        const json& e = (*p)[i];
        if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
            e.get<int64_t>() > std::numeric_limits<int32_t>::max())
          throw bad("prompt",
                    "'prompt' must be a string or an array of token ids (integers "
                    ">= 0); element " +
                        std::to_string(i) + " is " + (e.is_number() ? e.dump() : type_word(e)));
        r.prompt_ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
      }
    }
  } else {
    throw bad("prompt", "'prompt' must be a string or an array of token ids, not " + type_word(*p));
  }
  if (auto v = get_int(j, "logprobs", 0, kMaxCompletionLogprobs)) r.logprobs = int(*v);
  if (auto v = get_bool(j, "echo")) refuse_unless(!*v, "echo", "is not supported (only false)");
  if (auto v = get_int(j, "best_of", std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max()))
    refuse_unless(*v == 1, "best_of", "must be 1");
  if (const json* s = field(j, "suffix")) {
    check_string(*s, "suffix");
    refuse_unless(s->get<std::string>().empty(), "suffix", "is not supported (insertion)");
  }
  return r;
}

ChatApiRequest parse_chat_request(std::string_view body) {
  const json j = parse_object(body);
  ChatApiRequest r;
  r.gen = parse_generation(j, /*chat=*/true);
  if (const json* m = field(j, "model")) check_string(*m, "model");
  const json* ms = field(j, "messages");
  if (!ms) throw bad("messages", "'messages' is missing");
  if (!ms->is_array()) throw bad("messages", "'messages' must be an array, not " + type_word(*ms));
  if (ms->empty()) throw bad("messages", "'messages' is empty");
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(param, "'" + param + "' must be an object, not " + type_word(m));
    const json* role = field(m, "role");
    if (!role) throw bad(param + ".role", "'" + param + ".role' is missing");
    check_string(*role, param + ".role");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";  // the newer name of the system role
    if (rs != "system" && rs != "user" && rs != "assistant")
      throw bad(param + ".role",
                "'" + param + ".role' must be system, user or assistant, not '" + rs + "'");
    r.messages.push_back({rs, message_content(m, i)});
  }
  if (auto v = get_bool(j, "logprobs")) r.logprobs = *v;
  if (auto v = get_int(j, "top_logprobs", 0, kMaxChatTopLogprobs)) {
    refuse_unless(r.logprobs || *v == 0, "top_logprobs", "needs \"logprobs\": true");
    r.top_logprobs = int(*v);
  }
  if (const json* t = field(j, "tools")) {
    if (!t->is_array()) throw bad("tools", "'tools' must be an array, not " + type_word(*t));
    refuse_unless(t->empty(), "tools", "are not supported (no tool calling)");
  }
  if (const json* rf = field(j, "response_format")) {
    const json* type = rf->is_object() ? field(*rf, "type") : nullptr;
    refuse_unless(type && type->is_string() && type->get<std::string>() == "text",
                  "response_format", "is not supported beyond {\"type\": \"text\"}");
  }
  return r;
}

}  // namespace longctx::server
