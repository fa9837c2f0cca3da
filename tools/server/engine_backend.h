// The real Backend of `longctx serve`: an Engine, a Scheduler over it, and the model's chat
// template (runtime/chat_template.h).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend.h"
#include "longctx/engine.h"
#include "runtime/chat_template.h"

namespace longctx::server {

// The template chat requests use, and the line the server prints about it at start.
struct ChatTemplateChoice {
  std::optional<ChatTemplate> tpl;  // none: chat requests get 400 with `message`
  std::string message;
};

// `name` non-empty: that template (Error(kInvalidArg) naming the choices for an unknown name).
// Empty: the model's own when it is recognised. A model without a template, or with one not
// recognised, still serves completions; its chat requests are refused with a message naming
// --chat-template and the choices (docs/serve.md).
ChatTemplateChoice resolve_chat_template(const std::string& model_path, const std::string& name);

// Error(kInvalidArg) naming the choices unless `name` is empty or a known template: for the CLI,
// so that a typo refuses before anything loads.
void check_chat_template_name(const std::string& name);

// Loads what `run` planned (tokenizer, weights) and starts a Scheduler with `opt` over it.
// Throws Error when the model cannot be loaded.
std::unique_ptr<Backend> load_engine_backend(const PlannedRun& run, const SchedulerOptions& opt,
                                             const ChatTemplateChoice& chat);

}  // namespace longctx::server
