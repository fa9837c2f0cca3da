#include "api_response.h"

#include <chrono>
#include <cstdio>
#include <random>

namespace longctx::server {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_json(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json error_json(const ApiError& e) { return error_json(e.what(), e.type(), e.param(), e.code()); }

const char* error_type_for_status(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "server_busy";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string sse_data(const json& j) { return "data: " + dump(j) + "\n\n"; }

const char* api_finish_reason(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
    case FinishReason::kEndOfSequence:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

json usage_json(const Finish& f) {
  return {{"prompt_tokens", f.prompt_tokens},
          {"completion_tokens", f.completion_tokens},
          {"total_tokens", f.prompt_tokens + f.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", f.cached_tokens}}}};
}

LogprobsBuilder::LogprobsBuilder(bool chat, int top, std::function<std::string(int32_t)> token_text,
                                 int64_t text_offset)
    : chat_(chat), top_(top), token_text_(std::move(token_text)), offset_(text_offset) {
  take();
}

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

}  // namespace

void LogprobsBuilder::add(const SchedulerEvent& ev) {
  if (ev.token < 0) {  // text released at the end, no token of its own
    offset_ += int64_t(ev.text.size());
    return;
  }
  const std::string tok = token_text_(ev.token);
  const size_t n = std::min<size_t>(ev.top.size(), size_t(std::max(top_, 0)));
  if (chat_) {
    json top = json::array();
    for (size_t i = 0; i < n; ++i) {
      const std::string t = token_text_(ev.top[i].first);
      top.push_back({{"token", t}, {"logprob", ev.top[i].second}, {"bytes", bytes_of(t)}});
    }
    content_.push_back(
        {{"token", tok}, {"logprob", ev.logprob}, {"bytes", bytes_of(tok)}, {"top_logprobs", top}});
    return;
  }
  tokens_.push_back(tok);
  token_logprobs_.push_back(ev.logprob);
  // The legacy shape maps token text to log-probability; two ids with the same text keep the
  // first (the more likely), as OpenAI's own answers do.
  json top = json::object();
  for (size_t i = 0; i < n; ++i) {
    const std::string t = token_text_(ev.top[i].first);
    if (!top.contains(t)) top[t] = ev.top[i].second;
  }
  top_logprobs_.push_back(top);
  text_offset_.push_back(offset_);
  offset_ += int64_t(ev.text.size());
}

json LogprobsBuilder::take() {
  json out;
  if (chat_) {
    out = {{"content", content_}};
    content_ = json::array();
  } else {
    out = {{"tokens", tokens_},
           {"token_logprobs", token_logprobs_},
           {"top_logprobs", top_logprobs_},
           {"text_offset", text_offset_}};
    tokens_ = token_logprobs_ = top_logprobs_ = text_offset_ = json::array();
  }
  return out;
}

ResponseIds new_response_ids(const std::string& prefix, const std::string& model) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[25];
  std::snprintf(hex, sizeof hex, "%016llx%08llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffu));
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return {prefix + hex, std::chrono::duration_cast<std::chrono::seconds>(now).count(), model};
}

namespace {

json head(const ResponseIds& ids, const char* object) {
  return {{"id", ids.id}, {"object", object}, {"created", ids.created}, {"model", ids.model}};
}

json reason_or_null(const char* r) { return r ? json(r) : json(nullptr); }

}  // namespace

json completion_json(const ResponseIds& ids, const std::string& text, const json& logprobs,
                     const Finish& f) {
  json j = head(ids, "text_completion");
  j["choices"] = json::array({{{"text", text},
                               {"index", 0},
                               {"logprobs", logprobs},
                               {"finish_reason", api_finish_reason(f.reason)}}});
  j["usage"] = usage_json(f);
  return j;
}

json chat_completion_json(const ResponseIds& ids, const std::string& text, const json& logprobs,
                          const Finish& f) {
  json j = head(ids, "chat.completion");
  j["choices"] = json::array({{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", text}}},
                               {"logprobs", logprobs},
                               {"finish_reason", api_finish_reason(f.reason)}}});
  j["usage"] = usage_json(f);
  return j;
}

json completion_chunk(const ResponseIds& ids, const std::string& text, const json& logprobs,
                      const char* finish_reason) {
  json j = head(ids, "text_completion");
  j["choices"] = json::array({{{"text", text},
                               {"index", 0},
                               {"logprobs", logprobs},
                               {"finish_reason", reason_or_null(finish_reason)}}});
  return j;
}

json chat_chunk(const ResponseIds& ids, const json& delta, const json& logprobs,
                const char* finish_reason) {
  json j = head(ids, "chat.completion.chunk");
  j["choices"] = json::array({{{"index", 0},
                               {"delta", delta},
                               {"logprobs", logprobs},
                               {"finish_reason", reason_or_null(finish_reason)}}});
  return j;
}

json usage_chunk(const ResponseIds& ids, bool chat, const Finish& f) {
  json j = head(ids, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage_json(f);
  return j;
}

json models_json(const std::string& model, int64_t created) {
  return {
      {"object", "list"},
      {"data",
       json::array(
           {{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "longctx"}}})}};
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, int64_t v) {
  out += name + " " + std::to_string(v) + "\n";
}

}  // namespace

std::string metrics_text(const SchedulerStats* s, const HttpCounters& http, bool loaded,
                         int parallel, int queue_limit) {
  std::string o;
  metric(o, "longctx_model_loaded", "gauge", "1 once the model is loaded and requests are served.");
  sample(o, "longctx_model_loaded", loaded ? 1 : 0);
  metric(o, "longctx_parallel", "gauge", "Sequences that run at once at most (--parallel).");
  sample(o, "longctx_parallel", parallel);
  metric(o, "longctx_queue_limit", "gauge", "Requests that wait for admission at most (--queue).");
  sample(o, "longctx_queue_limit", queue_limit);
  metric(o, "longctx_http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [status, n] : http.responses_by_status)
    sample(o, "longctx_http_responses_total{code=\"" + std::to_string(status) + "\"}", n);
  metric(o, "longctx_http_dropped_connections_total", "counter",
         "Connections closed unanswered: request not read within the deadline, or no worker "
         "free.");
  sample(o, "longctx_http_dropped_connections_total", http.dropped_connections);
  if (!s) return o;
  metric(o, "longctx_requests_total", "counter",
         "Generation requests by outcome: ok, cancelled (client gone), error, rejected_too_long "
         "(prompt + max_tokens beyond the context), rejected_busy (queue full).");
  sample(o, "longctx_requests_total{outcome=\"ok\"}", s->requests_ok);
  sample(o, "longctx_requests_total{outcome=\"cancelled\"}", s->requests_cancelled);
  sample(o, "longctx_requests_total{outcome=\"error\"}", s->requests_error);
  sample(o, "longctx_requests_total{outcome=\"rejected_too_long\"}", s->rejected_too_long);
  sample(o, "longctx_requests_total{outcome=\"rejected_busy\"}", s->rejected_busy);
  metric(o, "longctx_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.");
  sample(o, "longctx_prompt_tokens_total", s->prompt_tokens);
  metric(o, "longctx_cached_prompt_tokens_total", "counter",
         "Prompt tokens served from the prefix cache instead of being prefilled.");
  sample(o, "longctx_cached_prompt_tokens_total", s->cached_prompt_tokens);
  metric(o, "longctx_generated_tokens_total", "counter", "Tokens generated.");
  sample(o, "longctx_generated_tokens_total", s->generated_tokens);
  metric(o, "longctx_scheduler_steps_total", "counter", "Forward passes the scheduler ran.");
  sample(o, "longctx_scheduler_steps_total", s->steps);
  metric(o, "longctx_queue_length", "gauge", "Requests waiting for admission.");
  sample(o, "longctx_queue_length", s->queued);
  metric(o, "longctx_running_sequences", "gauge", "Sequences prefilling or decoding.");
  sample(o, "longctx_running_sequences", s->running);
  metric(o, "longctx_kv_blocks", "gauge",
         "KV-cache blocks of the pool by state: used (held by running sequences), cached "
         "(prefix cache, evictable), free.");
  sample(o, "longctx_kv_blocks{state=\"used\"}", s->kv_blocks_used);
  sample(o, "longctx_kv_blocks{state=\"cached\"}", s->kv_blocks_cached);
  sample(o, "longctx_kv_blocks{state=\"free\"}",
         std::max<int64_t>(0, s->kv_blocks_total - s->kv_blocks_used - s->kv_blocks_cached));
  metric(o, "longctx_kv_blocks_total", "gauge", "KV-cache blocks in the pool.");
  sample(o, "longctx_kv_blocks_total", s->kv_blocks_total);
  metric(o, "longctx_kv_block_bytes", "gauge", "Bytes of one KV-cache block (all layers).");
  sample(o, "longctx_kv_block_bytes", s->kv_block_bytes);
  metric(o, "longctx_context_tokens", "gauge", "Tokens one sequence may hold (prompt + output).");
  sample(o, "longctx_context_tokens", s->context);
  metric(o, "longctx_plan_budget_bytes", "gauge", "The memory budget the plan was made for.");
  sample(o, "longctx_plan_budget_bytes", s->budget_bytes);
  metric(o, "longctx_plan_total_bytes", "gauge", "Bytes the plan priced in all.");
  sample(o, "longctx_plan_total_bytes", s->planned_bytes);
  return o;
}

}  // namespace longctx::server
