// Chat templates: OpenAI-style messages -> the prompt text a model's own Jinja chat template
// (tokenizer_config.json "chat_template", tokenizer.chat_template in a GGUF) would produce.
//
// There is no Jinja engine here: detect() recognises the template families longctx runs (Llama 2,
// Mistral, Llama 3, ChatML for Qwen2 / SmolLM2, Phi-3) by markers of their official templates and
// keeps the details in which a family's templates differ (a default system message, where the
// system message goes, the Llama 3.1 date header, ...), and apply() renders them in C++ exactly
// as Jinja renders that template under Hugging Face's apply_chat_template (docs/chat-templates.md).
//
// BOS handling: apply() writes the BOS text wherever the template writes bos_token (Llama 2 before
// every [INST], Llama 3 and Mistral once at the start, ChatML and Phi-3.5 nowhere), so the prompt
// is exactly the rendered template. Encode it with add_special=false, as Hugging Face's
// apply_chat_template(tokenize=True) does: the tokenizers map special-token text in the string
// ("<s>", "</s>", "<|im_end|>", ...) to their ids. encode() below does both steps; adding the
// tokenizer's own BOS on top would give Llama models two BOS tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace longctx {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  // Where a family's templates put the system message.
  enum class SystemMode {
    kRejected,    // Mistral's first templates: a system message is an error
    kFirstUser,   // Mistral 7B v0.1/v0.2: "SYSTEM\n\nUSER" in the first user turn
    kLastUser,    // Mistral 7B v0.3, Nemo: in the last user turn, when the last message is a user's
    kOwnTurn,     // Llama 2 (<<SYS>> in the first turn), Llama 3, ChatML, Phi-3: a turn of its own
    kIfNonEmpty,  // Phi-3.5: its own turn, left out when the content is empty
    kDropped,     // the first Phi-3 templates: left out
  };

  // The details in which templates of one family differ; by_name() and detect() fill them.
  struct Variant {
    std::string label;  // which model's template this is, for describe()
    SystemMode system = SystemMode::kOwnTurn;
    // Mistral: a user turn is inst_open + content + inst_close; an assistant turn is
    // assistant_prefix + content (stripped when assistant_trim) + eos + assistant_suffix.
    std::string inst_open, inst_close, assistant_prefix, assistant_suffix;
    bool assistant_trim = false;
    // Llama 3.1 and later: a system header "Cutting Knowledge Date: December 2023\nToday Date:
    // DATE\n\n" + system message, always written; DATE is default_date, or today's date
    // (strftime "%d %b %Y", as Llama 3.2's strftime_now) when date_today.
    bool dated_system_header = false;
    std::string default_date;
    bool date_today = false;
    // Llama 3's first template and the first Phi-3 ones open the assistant turn whatever
    // add_generation_prompt says.
    bool generation_prompt_always = false;
    // ChatML: the system message written when the first message is not a system one (Qwen2's
    // "You are a helpful assistant.", SmolLM2's own); none for plain ChatML.
    std::optional<std::string> default_system;
    // Phi-3: the template starts with bos_token; ends with eos_token when add_generation_prompt
    // is false; writes "<|user|>\nQ<|end|>\n<|assistant|>\n" for every user turn (first Phi-3
    // templates, which have no add_generation_prompt).
    bool leading_bos = false;
    bool eos_without_generation_prompt = false;
    bool legacy_turns = false;

    static Variant labeled(std::string label) {
      Variant v;
      v.label = std::move(label);
      return v;
    }
  };

  // Every name by_name() accepts: the families "llama2", "mistral" (7B v0.1/v0.2), "llama3"
  // (Llama 3.0), "chatml" (no default system message), "phi3" (Phi-3-mini), then variants
  // "mistral-v0.3", "llama3.1" (dated system header, 26 Jul 2024), "llama3.2" (today's date),
  // "qwen2", "qwen2.5", "smollm2" (ChatML with their default system messages), "phi3.5".
  static std::vector<std::string> names();
  // Error(kInvalidArg) naming the choices for an unknown name.
  static ChatTemplate by_name(const std::string& name);
  // Recognises a Jinja template text. Error(kUnsupported) naming the recognised families and
  // `--chat-template NAME` when it is none of them, or when it looks like one of them but differs
  // from the official templates in a way apply() would not reproduce.
  static ChatTemplate detect(const std::string& jinja);

  // The family: "llama2", "mistral", "llama3", "chatml" or "phi3".
  const std::string& name() const { return name_; }
  const Variant& variant() const { return v_; }
  // One line for logs, e.g. `chatml (Qwen2; default system message "You are a helpful
  // assistant.")`.
  std::string describe() const;
  // The date Llama 3.1+ templates write ("26 Jul 2024"), as apply_chat_template(date_string=...)
  // sets it; empty: the template's own default. Ignored by the other families.
  void set_date_string(std::string date) { date_override_ = std::move(date); }

  // The prompt text for `messages`, ending with the assistant's turn opened when
  // add_generation_prompt (Llama 2 and Mistral templates always end a user turn with [/INST] and
  // ignore it, as their Jinja does). bos/eos: the text of the tokenizer's BOS/EOS tokens.
  // Error(kInvalidArg) for no messages, a role other than system/user/assistant, or an order the
  // family's template raises on (Llama 2 / Mistral: user and assistant must alternate after an
  // optional first system message).
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                    const std::string& bos, const std::string& eos) const;
  // The text of the token that ends an assistant turn in this family ("<|im_end|>" for ChatML,
  // "<|eot_id|>" for Llama 3, "<|end|>" for Phi-3); "" when it is the tokenizer's EOS (Llama 2,
  // Mistral). Generation for a chat must stop at it: instruct models often end their turn with it
  // rather than with the EOS id of config.json.
  std::string end_of_turn() const;
  // apply() with the tokenizer's BOS/EOS text, then tok.encode(prompt, add_special=false): the ids
  // Hugging Face's apply_chat_template(messages, add_generation_prompt, tokenize=True) gives.
  std::vector<int32_t> encode(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt) const;

 private:
  ChatTemplate(std::string name, Variant v) : name_(std::move(name)), v_(std::move(v)) {}

  std::string name_;
  Variant v_;
  std::string date_override_;
};

// The text of token `id` as a chat template writes it (bos_token, eos_token): the token kept as
// written by decode; "" when id < 0 (the tokenizer has no such token).
std::string special_token_text(const Tokenizer& tok, int32_t id);

// The model's chat template text: for a .gguf file its tokenizer.chat_template metadata; for a
// folder chat_template.jinja when present (Hugging Face gives that file priority), else
// tokenizer_config.json's "chat_template" (a string, or a list of {"name", "template"} of which
// "default" is used). "" when the model has none. Error(kFormat) for malformed files,
// Error(kUnsupported) for named templates without a "default" one, Error(kIo) for a path that is
// neither a folder nor a file.
std::string model_chat_template(const std::string& model_path);
// The "chat_template" of a tokenizer_config.json's text, as model_chat_template reads it: a
// string, or (transformers' named templates) a list of {"name", "template"} objects of which
// "default" is the one apply_chat_template uses. `path` names the file in messages.
std::string config_chat_template(const std::string& text, const std::string& path);

}  // namespace longctx
