// Rendering of the chat template families (chat_template.h). Each render_* function follows its
// family's Jinja statement by statement; the comments quote what they reproduce.
#include "runtime/chat_template.h"

#include <ctime>

#include "core/error.h"
#include "runtime/chat_template_text.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

using SystemMode = ChatTemplate::SystemMode;
using Variant = ChatTemplate::Variant;

[[noreturn]] void refuse(const std::string& family, const std::string& why) {
  throw Error(ErrorKind::kInvalidArg, "chat messages: " + why + " (the " + family +
                                          " chat template raises on this, as Hugging Face does)");
}

// Llama 2 chat: an optional first system message goes into the first turn inside <<SYS>>; user
// and assistant must alternate; every user turn starts with BOS.
//   {% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' +
//   system_message + '\n<</SYS>>\n\n' + message['content'] %}...
//   user: bos_token + '[INST] ' + content.strip() + ' [/INST]'
//   assistant: ' ' + content.strip() + ' ' + eos_token
std::string render_llama2(const std::vector<ChatMessage>& msgs, const std::string& bos,
                          const std::string& eos) {
  const bool has_system = msgs[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  std::string out;
  for (size_t i = first; i < msgs.size(); ++i) {
    const size_t k = i - first;  // loop.index0
    const ChatMessage& m = msgs[i];
    if ((m.role == "user") != (k % 2 == 0)) {
      refuse("Llama 2",
             "after an optional first system message, user and assistant messages "
             "must alternate, starting with a user message; message " +
                 std::to_string(i) + " (" + m.role + ") breaks that");
    }
    const std::string content = k == 0 && has_system
                                    ? "<<SYS>>\n" + msgs[0].content + "\n<</SYS>>\n\n" + m.content
                                    : m.content;
    if (m.role == "user") {
      out += bos + "[INST] " + chat::py_strip(content) + " [/INST]";
    } else if (m.role == "assistant") {
      out += " " + chat::py_strip(content) + " " + eos;
    }
    // A later system message where an assistant one is due passes the template's check and is
    // written nowhere (it has no branch for it).
  }
  return out;
}

// Mistral [INST]: the system message (when the variant takes one) is joined with "\n\n" to the
// first or the last user turn; user and assistant alternate after it; BOS once at the start.
std::string render_mistral(const Variant& v, const std::vector<ChatMessage>& msgs,
                           const std::string& bos, const std::string& eos) {
  const bool has_system = v.system != SystemMode::kRejected && msgs[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  for (size_t i = first; i < msgs.size(); ++i) {
    const std::string& role = msgs[i].role;
    if ((role == "user") != ((i - first) % 2 == 0)) {
      refuse("Mistral",
             "after an optional first system message, user and assistant messages "
             "must alternate, starting with a user message; message " +
                 std::to_string(i) + " (" + role + ") breaks that");
    }
    if (role != "user" && role != "assistant") {
      refuse("Mistral", "only the first message may be a system message");
    }
  }
  std::string out = bos;
  for (size_t i = first; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    if (m.role == "user") {
      // {%- if loop.first and system_message is defined %} (v0.1/v0.2) or loop.last (v0.3).
      const bool with_system =
          has_system && ((v.system == SystemMode::kFirstUser && i == first) ||
                         (v.system == SystemMode::kLastUser && i + 1 == msgs.size()));
      out += v.inst_open;
      if (with_system) out += msgs[0].content + "\n\n";
      out += m.content + v.inst_close;
    } else {
      out += v.assistant_prefix + (v.assistant_trim ? chat::py_strip(m.content) : m.content) + eos +
             v.assistant_suffix;
    }
  }
  return out;
}

std::string today_string() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  const size_t n = std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
  return std::string(buf, n);
}

// Llama 3: '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>'
// per message, BOS before the first. Llama 3.1+ first write a system header with the dates and
// the (trimmed) first system message, always, and every other message after it.
std::string render_llama3(const Variant& v, const std::string& date,
                          const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                          const std::string& bos) {
  auto turn = [](const std::string& role, const std::string& content) {
    return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + chat::py_strip(content) +
           "<|eot_id|>";
  };
  std::string out = bos;
  size_t first = 0;
  if (v.dated_system_header) {
    std::string system;
    if (msgs[0].role == "system") {
      system = chat::py_strip(msgs[0].content);
      first = 1;
    }
    out += "<|start_header_id|>system<|end_header_id|>\n\n";
    out += "Cutting Knowledge Date: December 2023\n";
    out += "Today Date: " + date + "\n\n";
    out += system + "<|eot_id|>";
  }
  for (size_t i = first; i < msgs.size(); ++i) out += turn(msgs[i].role, msgs[i].content);
  if (add_generation_prompt || v.generation_prompt_always) {
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return out;
}

// ChatML: '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n' per message, after the
// default system message when the first message is not a system one.
std::string render_chatml(const Variant& v, const std::vector<ChatMessage>& msgs,
                          bool add_generation_prompt) {
  std::string out;
  if (v.default_system && msgs[0].role != "system") {
    out += "<|im_start|>system\n" + *v.default_system + "<|im_end|>\n";
  }
  for (const ChatMessage& m : msgs)
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// Phi-3: '<|' + role + '|>\n' + content + '<|end|>\n' per message (system per the variant), then
// '<|assistant|>\n', or eos_token without a generation prompt. The first templates wrote only user
// and assistant turns and opened the assistant's after every user turn.
std::string render_phi3(const Variant& v, const std::vector<ChatMessage>& msgs,
                        bool add_generation_prompt, const std::string& bos,
                        const std::string& eos) {
  std::string out = v.leading_bos ? bos : "";
  if (v.legacy_turns) {
    for (const ChatMessage& m : msgs) {
      if (m.role == "user") {
        out += "<|user|>\n" + m.content + "<|end|>\n<|assistant|>\n";
      } else if (m.role == "assistant") {
        out += m.content + "<|end|>\n";
      }
    }
    return out;
  }
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") {
      if (v.system == SystemMode::kDropped) continue;
      if (v.system == SystemMode::kIfNonEmpty && m.content.empty()) continue;
    }
    out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
  }
  if (add_generation_prompt || v.generation_prompt_always) {
    out += "<|assistant|>\n";
  } else if (v.eos_without_generation_prompt) {
    out += eos;
  }
  return out;
}

struct Named {
  const char* name;
  const char* family;
  Variant (*make)();
};

Variant mistral_v1() {
  Variant v;
  v.label = "Mistral 7B Instruct v0.1/v0.2";
  v.system = SystemMode::kFirstUser;
  v.inst_open = " [INST] ";
  v.inst_close = " [/INST]";
  v.assistant_prefix = " ";
  return v;
}

Variant mistral_v3() {
  Variant v;
  v.label = "Mistral 7B Instruct v0.3";
  v.system = SystemMode::kLastUser;
  v.inst_open = "[INST] ";
  v.inst_close = "[/INST]";
  v.assistant_prefix = " ";
  v.assistant_trim = true;
  return v;
}

Variant llama31(bool today) {
  Variant v;
  v.label = today ? "Llama 3.2" : "Llama 3.1";
  v.dated_system_header = true;
  v.default_date = "26 Jul 2024";
  v.date_today = today;
  return v;
}

Variant chatml_with(const char* label, std::optional<std::string> system) {
  Variant v;
  v.label = label;
  v.default_system = std::move(system);
  return v;
}

Variant phi3(bool phi35) {
  Variant v;
  v.label = phi35 ? "Phi-3.5-mini" : "Phi-3-mini";
  v.system = phi35 ? SystemMode::kIfNonEmpty : SystemMode::kOwnTurn;
  v.eos_without_generation_prompt = true;
  return v;
}

const Named kNamed[] = {
    {"llama2", "llama2", [] { return Variant::labeled("Llama 2 chat"); }},
    {"mistral", "mistral", mistral_v1},
    {"mistral-v0.3", "mistral", mistral_v3},
    {"llama3", "llama3", [] { return Variant::labeled("Llama 3"); }},
    {"llama3.1", "llama3", [] { return llama31(false); }},
    {"llama3.2", "llama3", [] { return llama31(true); }},
    {"chatml", "chatml", [] { return chatml_with("ChatML", std::nullopt); }},
    {"qwen2", "chatml", [] { return chatml_with("Qwen2", "You are a helpful assistant."); }},
    {"qwen2.5", "chatml",
     [] {
       return chatml_with("Qwen2.5",
                          "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
     }},
    {"smollm2", "chatml",
     [] {
       return chatml_with("SmolLM2",
                          "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
     }},
    {"phi3", "phi3", [] { return phi3(false); }},
    {"phi3.5", "phi3", [] { return phi3(true); }},
};

}  // namespace

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> out;
  for (const Named& n : kNamed) out.emplace_back(n.name);
  return out;
}

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  for (const Named& n : kNamed) {
    if (name == n.name) return ChatTemplate(n.family, n.make());
  }
  throw Error(ErrorKind::kInvalidArg,
              "unknown chat template \"" + name + "\"; choose one of " + chat::join_names(names()));
}

ChatTemplate ChatTemplate::detect(const std::string& jinja) {
  chat::Detected d = chat::detect_family(jinja);
  return ChatTemplate(std::move(d.family), std::move(d.variant));
}

std::string ChatTemplate::describe() const {
  std::string out = name_ + " (" + v_.label;
  if (v_.default_system) out += "; default system message \"" + *v_.default_system + "\"";
  if (v_.dated_system_header) {
    out += "; Today Date: " + (!date_override_.empty() ? date_override_
                               : v_.date_today         ? "today (" + today_string() + ")"
                                                       : v_.default_date);
  }
  return out + ")";
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, const std::string& bos,
                                const std::string& eos) const {
  if (messages.empty()) {
    throw Error(ErrorKind::kInvalidArg, "chat messages: there are none; send at least one");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      throw Error(ErrorKind::kInvalidArg, "chat messages: message " + std::to_string(i) +
                                              " has role \"" + r +
                                              "\"; the roles are system, user and assistant");
    }
  }
  if (name_ == "llama2") return render_llama2(messages, bos, eos);
  if (name_ == "mistral") return render_mistral(v_, messages, bos, eos);
  if (name_ == "llama3") {
    const std::string date = !date_override_.empty() ? date_override_
                             : v_.date_today         ? today_string()
                                                     : v_.default_date;
    return render_llama3(v_, date, messages, add_generation_prompt, bos);
  }
  if (name_ == "chatml") return render_chatml(v_, messages, add_generation_prompt);
  if (name_ == "phi3") return render_phi3(v_, messages, add_generation_prompt, bos, eos);
  throw Error(ErrorKind::kInternal, "chat template family \"" + name_ + "\" has no renderer");
}

std::vector<int32_t> ChatTemplate::encode(const Tokenizer& tok,
                                          const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const {
  const std::string prompt =
      apply(messages, add_generation_prompt, special_token_text(tok, tok.bos_id()),
            special_token_text(tok, tok.eos_id()));
  return tok.encode(prompt, /*add_special=*/false);
}

std::string special_token_text(const Tokenizer& tok, int32_t id) {
  if (id < 0) return "";
  return tok.decode({id}, /*skip_special=*/false);
}

std::string ChatTemplate::end_of_turn() const {
  if (name_ == "chatml") return "<|im_end|>";
  if (name_ == "llama3") return "<|eot_id|>";
  if (name_ == "phi3") return "<|end|>";
  return "";
}

}  // namespace longctx
