// The Backend of `longctx serve`: an Engine, a Scheduler over it, and the chat template.
#include "engine_backend.h"

#include <optional>

#include "core/error.h"
#include "longctx/engine.h"
#include "longctx/scheduler.h"
#include "runtime/chat_template.h"

namespace longctx::server {

namespace {

class SchedulerStream : public GenerationStream {
 public:
  explicit SchedulerStream(std::shared_ptr<RequestStream> s) : s_(std::move(s)) {}
  ~SchedulerStream() override { s_->cancel(); }  // a response abandoned half-way frees its blocks
  std::optional<bool> next_for(SchedulerEvent& ev, std::chrono::milliseconds timeout) override {
    return s_->next_for(ev, timeout);
  }
  void cancel() override { s_->cancel(); }
  const Finish& finish() const override { return s_->finish(); }

 private:
  std::shared_ptr<RequestStream> s_;
};

class EngineBackend : public Backend {
 public:
  EngineBackend(std::unique_ptr<Engine> engine, const SchedulerOptions& opt,
                std::optional<ChatTemplate> tpl, std::string no_template)
      : engine_(std::move(engine)),
        sched_(std::make_unique<Scheduler>(*engine_, opt)),
        tpl_(std::move(tpl)),
        no_template_(std::move(no_template)) {
    // Instruct models end their turn with the template's end-of-turn token (<|im_end|>, ...)
    // rather than config.json's EOS: a chat stops there.
    if (tpl_) {
      const std::string eot = tpl_->end_of_turn();
      if (!eot.empty()) {
        const std::vector<int32_t> ids = engine_->tokenizer().encode(eot, /*add_special=*/false);
        if (ids.size() == 1) end_of_turn_ = ids;
      }
    }
  }

  std::vector<int32_t> tokenize(const std::string& text) const override {
    return engine_->tokenizer().encode(text, /*add_special=*/true);
  }

  ChatPrompt chat_prompt(const std::vector<ApiMessage>& messages) const override {
    if (!tpl_)
      throw ApiError(400, no_template_, "messages", "invalid_request_error",
                     "chat_template_unavailable");
    std::vector<ChatMessage> ms;
    ms.reserve(messages.size());
    for (const ApiMessage& m : messages) ms.push_back({m.role, m.content});
    ChatPrompt p;
    try {
      p.ids = tpl_->encode(engine_->tokenizer(), ms, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      // The family's template refuses this conversation (e.g. Llama 2: roles must alternate).
      if (e.kind() == ErrorKind::kInvalidArg) throw ApiError(400, e.what(), "messages");
      throw;
    }
    p.stop_tokens = end_of_turn_;
    return p;
  }

  std::string token_text(int32_t id) const override {
    const Tokenizer& tok = engine_->tokenizer();
    if (id < 0 || id >= tok.vocab_size()) return {};
    return tok.token_bytes(id);
  }

  std::unique_ptr<GenerationStream> submit(CompletionRequest req) override {
    return std::make_unique<SchedulerStream>(sched_->submit(std::move(req)));
  }

  SchedulerStats stats() const override { return sched_->stats(); }
  int64_t context() const override { return engine_->plan().context; }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Scheduler> sched_;  // declared after the engine: stopped before it goes
  std::optional<ChatTemplate> tpl_;
  std::string no_template_;
  std::vector<int32_t> end_of_turn_;  // one id, or none when the tokenizer has no such token
};

}  // namespace

void check_chat_template_name(const std::string& name) {
  if (!name.empty()) ChatTemplate::by_name(name);
}

ChatTemplateChoice resolve_chat_template(const std::string& model_path, const std::string& name) {
  ChatTemplateChoice c;
  if (!name.empty()) {
    c.tpl = ChatTemplate::by_name(name);
    c.message = "chat template: " + c.tpl->describe() + " (--chat-template)";
    return c;
  }
  std::string names;
  for (const std::string& n : ChatTemplate::names()) names += (names.empty() ? "" : ", ") + n;
  std::string jinja;
  try {
    jinja = model_chat_template(model_path);
  } catch (const Error& e) {
    c.message = std::string(
                    "chat requests are refused: the model's chat template cannot be "
                    "read (") +
                e.what() + "); start with --chat-template NAME, one of: " + names;
    return c;
  }
  if (jinja.empty()) {
    c.message =
        "chat requests are refused: the model has no chat template; start the server "
        "with --chat-template NAME, one of: " +
        names;
    return c;
  }
  try {
    c.tpl = ChatTemplate::detect(jinja);
    c.message = "chat template: " + c.tpl->describe() + " (the model's)";
  } catch (const Error& e) {
    c.message = std::string("chat requests are refused: ") + e.what();
  }
  return c;
}

std::unique_ptr<Backend> load_engine_backend(const PlannedRun& run, const SchedulerOptions& opt,
                                             const ChatTemplateChoice& chat) {
  auto engine = Engine::load(run);
  return std::make_unique<EngineBackend>(std::move(engine), opt, chat.tpl,
                                         chat.tpl ? std::string() : chat.message);
}

}  // namespace longctx::server
