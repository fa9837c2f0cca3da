// Recognising a Jinja chat template (ChatTemplate::detect). The template is normalized (spacing,
// quotes, whitespace control) and then searched for the expressions that decide what the family's
// official templates write; every detail apply() depends on must be found, so a template edited
// in a way that changes the prompt is refused rather than rendered differently.
#include <cstdint>

#include "core/error.h"
#include "runtime/chat_template_text.h"

namespace longctx::chat {
namespace {

using SystemMode = ChatTemplate::SystemMode;
using Variant = ChatTemplate::Variant;

// The code point at s[i] (its length in *len), or -1 for an invalid sequence.
int32_t decode_utf8(std::string_view s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return -1;
  int32_t cp = n == 1 ? b : b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c >> 6) != 2) return -1;
    cp = (cp << 6) | (c & 0x3F);
  }
  *len = n;
  return cp;
}

bool py_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
}

// One piece of a template: text between tags, or a tag with its normalized body.
struct Piece {
  bool tag = false;
  char kind = 0;  // '{' expression, '%' statement, '#' comment
  std::string text;
  bool dash_open = false, plus_open = false, dash_close = false;
};

// Reads a string literal starting at t[i] (a quote); appends it, unescaped as Jinja does for the
// common escapes and re-escaped for single quotes, to out. Returns the index after it.
size_t read_literal(std::string_view t, size_t i, std::string& out) {
  const char q = t[i++];
  out += '\'';
  while (i < t.size() && t[i] != q) {
    char c = t[i++];
    if (c == '\\' && i < t.size()) {
      const char e = t[i++];
      switch (e) {
        case 'n':
          c = '\n';
          break;
        case 't':
          c = '\t';
          break;
        case 'r':
          c = '\r';
          break;
        case '\\':
        case '\'':
        case '"':
          c = e;
          break;
        default:
          out += '\\';
          c = e;  // kept as written
      }
    }
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return i + 1;
}

std::vector<Piece> lex(std::string_view t) {
  std::vector<Piece> out;
  size_t i = 0;
  while (i < t.size()) {
    const size_t open = t.find('{', i);
    const bool is_tag = open != std::string_view::npos && open + 1 < t.size() &&
                        (t[open + 1] == '{' || t[open + 1] == '%' || t[open + 1] == '#');
    if (!is_tag) {
      const size_t end = open == std::string_view::npos ? t.size() : open + 1;
      if (out.empty() || out.back().tag) out.push_back(Piece{});
      out.back().text.append(t.substr(i, end - i));
      i = end;
      continue;
    }
    if (open > i) {
      if (out.empty() || out.back().tag) out.push_back(Piece{});
      out.back().text.append(t.substr(i, open - i));
    }
    Piece p;
    p.tag = true;
    p.kind = t[open + 1];
    i = open + 2;
    if (i < t.size() && (t[i] == '-' || t[i] == '+'))
      (t[i++] == '-' ? p.dash_open : p.plus_open) = true;
    const char closer = p.kind == '{' ? '}' : p.kind;
    while (i < t.size()) {
      if (t[i] == closer && i + 1 < t.size() && t[i + 1] == '}') {
        i += 2;
        break;
      }
      if (p.kind != '#' && (t[i] == '\'' || t[i] == '"')) {
        i = read_literal(t, i, p.text);
      } else {
        if (!blank(t[i])) p.text += t[i];
        ++i;
      }
    }
    if (!p.text.empty() && (p.text.back() == '-' || p.text.back() == '+')) {
      p.dash_close = p.text.back() == '-';
      p.text.pop_back();
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size(), len = 0;
  while (b < e) {
    const int32_t c = decode_utf8(s, b, &len);
    if (c < 0 || !py_space(c)) break;
    b += len;
  }
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) >> 6) == 2 && e - start < 4) --start;
    const int32_t c = decode_utf8(s, start, &len);
    if (c < 0 || start + len != e || !py_space(c)) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::string normalize_jinja(std::string_view jinja, std::string* raw) {
  const std::vector<Piece> pieces = lex(jinja);
  std::string out;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const Piece& p = pieces[k];
    if (p.tag) {
      if (p.kind == '#') continue;
      out += '{';
      out += p.kind;
      out += p.text;
      out += p.kind == '{' ? '}' : '%';
      out += '}';
      continue;
    }
    std::string s = p.text;
    const Piece* next = k + 1 < pieces.size() ? &pieces[k + 1] : nullptr;
    const Piece* prev = k > 0 ? &pieces[k - 1] : nullptr;
    if (next != nullptr && next->dash_open) {
      while (!s.empty() && blank(s.back())) s.pop_back();
    } else if (next != nullptr && next->kind != '{' && !next->plus_open) {
      // lstrip_blocks: spaces and tabs from the start of a line up to a block tag.
      size_t a = s.size();
      while (a > 0 && (s[a - 1] == ' ' || s[a - 1] == '\t')) --a;
      if ((a == 0 && prev == nullptr) || (a > 0 && s[a - 1] == '\n')) s.resize(a);
    }
    if (prev != nullptr && prev->dash_close) {
      size_t a = 0;
      while (a < s.size() && blank(s[a])) ++a;
      s.erase(0, a);
    } else if (prev != nullptr && prev->kind != '{' && !s.empty() && s[0] == '\n') {
      s.erase(0, 1);  // trim_blocks: the first newline after a block tag
    }
    out += s;
    if (raw != nullptr) *raw += s;
  }
  replace_all(out, "message.role", "message['role']");
  replace_all(out, "message.content", "message['content']");
  return out;
}

namespace {

// Detection of one normalized template.
class Detector {
 public:
  explicit Detector(std::string_view jinja) : t_(normalize_jinja(jinja, &raw_)) {}

  Detected run() {
    const bool is_llama3 = has("<|start_header_id|>"), is_chatml = has("<|im_start|>");
    const bool is_phi3 = has("<|user|>") || has("<|end|>"), inst = has("[INST]");
    if (!raw_.empty() && (is_llama3 || is_chatml || is_phi3 || inst)) {
      // The official templates write everything from {{ }}; text between the tags would be
      // written into the prompt as it stands, and the renderers do not write it.
      std::string excerpt = raw_.substr(0, 40);
      replace_all(excerpt, "\n", "\\n");
      differs(is_llama3   ? "Llama 3"
              : is_chatml ? "ChatML"
              : is_phi3   ? "Phi-3"
                          : "[INST]",
              "writes text outside its {{ }} expressions (\"" + excerpt + "\")");
    }
    if (is_llama3) return llama3();
    if (is_chatml) return chatml();
    if (is_phi3) return phi3();
    if (inst) return has("<<SYS>>") ? llama2() : mistral();
    throw Error(ErrorKind::kUnsupported,
                "the model's chat template is none of the families longctx recognises (Llama 2, "
                "Mistral [INST], Llama 3, ChatML as in Qwen2 and SmolLM2, Phi-3); pass "
                "--chat-template NAME with NAME one of " +
                    join_names(ChatTemplate::names()));
  }

 private:
  bool has(std::string_view m) const { return t_.find(m) != std::string::npos; }

  // A template of a known family whose details we do not reproduce.
  [[noreturn]] void differs(const std::string& family, const std::string& what) const {
    throw Error(ErrorKind::kUnsupported,
                "the model's chat template looks like a " + family + " template but " + what +
                    ", so longctx cannot render it exactly; pass --chat-template NAME with NAME "
                    "one of " +
                    join_names(ChatTemplate::names()) + " to use that model's official rendering");
  }
  void need(const std::string& family, std::string_view marker, const std::string& what) const {
    if (!has(marker)) differs(family, what);
  }

  Detected llama2() const {
    const std::string f = "Llama 2";
    need(f, "{%ifmessages[0]['role']=='system'%}",
         "does not take its system message from the "
         "first message");
    need(f, "'<<SYS>>\n'+system_message+'\n<</SYS>>\n\n'+message['content']",
         "writes the system message otherwise than <<SYS>>\\n...\\n<</SYS>>\\n\\n in the first "
         "turn");
    need(f, "bos_token+'[INST] '+content.strip()+' [/INST]'",
         "writes user turns otherwise than BOS + '[INST] ' + content.strip() + ' [/INST]'");
    need(f, "' '+content.strip()+' '+eos_token",
         "writes assistant turns otherwise than ' ' + content.strip() + ' ' + EOS");
    need(f, "!=(loop.index0%2==0)", "does not check that user and assistant alternate");
    if (has("system_message='")) differs(f, "has a default system message");
    if (has("elifmessage['role']=='system'")) differs(f, "writes later system messages");
    return {"llama2", Variant::labeled("Llama 2 chat")};
  }

  Detected mistral() const {
    const std::string f = "Mistral [INST]";
    Variant v;
    need(f, "{{bos_token}}", "does not start with BOS");
    if (!has("!=(loop.index0%2==0)") && !has("!=(ns.index%2==0)")) {
      differs(f, "does not check that user and assistant alternate");
    }
    int found = 0;
    for (const char* open : {" [INST] ", "[INST] ", "[INST]"}) {
      for (const char* close : {" [/INST]", "[/INST]"}) {
        if (has(std::string("'") + open + "'+message['content']+'" + close + "'")) {
          v.inst_open = open;
          v.inst_close = close;
          ++found;
        }
      }
    }
    if (found != 1) differs(f, "writes user turns otherwise than '[INST] ' + content + ' [/INST]'");
    if (has("loop.lastandsystem_messageisdefined")) {
      v.system = SystemMode::kLastUser;
    } else if (has("loop.firstandsystem_messageisdefined")) {
      v.system = SystemMode::kFirstUser;
    } else if (has("system_message")) {
      differs(f, "places its system message otherwise than in the first or last user turn");
    } else {
      v.system = SystemMode::kRejected;
    }
    if (v.system != SystemMode::kRejected) {
      need(f,
           "'" + v.inst_open + "'+system_message+'\n\n'+message['content']+'" + v.inst_close + "'",
           "joins the system message to the user turn otherwise than with \\n\\n");
    }
    if (has("' '+message['content']|trim+eos_token")) {
      v.assistant_prefix = " ";
      v.assistant_trim = true;
    } else if (has("' '+message['content']+eos_token")) {
      v.assistant_prefix = " ";
    } else if (has("{{message['content']|trim+eos_token}}")) {
      v.assistant_trim = true;
    } else if (has("{{message['content']+eos_token+' '}}")) {
      v.assistant_suffix = " ";
    } else if (!has("{{message['content']+eos_token}}")) {
      differs(f, "writes assistant turns otherwise than content + EOS");
    }
    const bool v1 = v.inst_open == " [INST] " && v.inst_close == " [/INST]" &&
                    v.system == SystemMode::kFirstUser && v.assistant_prefix == " " &&
                    !v.assistant_trim && v.assistant_suffix.empty();
    const bool v3 = v.inst_open == "[INST] " && v.inst_close == "[/INST]" &&
                    v.system == SystemMode::kLastUser && v.assistant_prefix == " " &&
                    v.assistant_trim;
    v.label = v1                                  ? "Mistral 7B Instruct v0.1/v0.2"
              : v3                                ? "Mistral 7B Instruct v0.3"
              : v.system == SystemMode::kRejected ? "Mistral [INST] without a system message"
                                                  : "Mistral [INST]";
    return {"mistral", v};
  }

  Detected llama3() const {
    const std::string f = "Llama 3";
    Variant v;
    need(f,
         "'<|start_header_id|>'+message['role']+'<|end_header_id|>\n\n'+message['content']|trim+"
         "'<|eot_id|>'",
         "writes messages otherwise than header + content|trim + <|eot_id|>");
    const std::string gen = "{{'<|start_header_id|>assistant<|end_header_id|>\n\n'}}";
    if (has("'Cutting Knowledge Date: December 2023\n'")) {
      v.dated_system_header = true;
      need(f, "'Today Date: '+date_string+'\n\n'", "writes another date line");
      need(f, "{%setsystem_message=messages[0]['content']|trim%}",
           "takes the system message otherwise than the first message's content|trim");
      if (t_.rfind("{{bos_token}}", 0) != 0) differs(f, "does not start with BOS");
      const std::string key = "{%setdate_string='";
      const size_t at = t_.find(key);
      const size_t end = at == std::string::npos ? at : t_.find("'%}", at + key.size());
      if (end == std::string::npos) differs(f, "has no default date_string");
      v.default_date = t_.substr(at + key.size(), end - at - key.size());
      if (has("strftime_now")) {
        need(f, "strftime_now('%d %b %Y')", "formats today's date otherwise than %d %b %Y");
        v.date_today = true;
      }
      need(f, "{%ifadd_generation_prompt%}" + gen, "opens the assistant turn otherwise");
      v.label = v.date_today ? "Llama 3.2" : "Llama 3.1";
      return {"llama3", v};
    }
    need(f, "{%ifloop.index0==0%}{%setcontent=bos_token+content%}{%endif%}",
         "does not write BOS before the first message");
    if (!has("{%ifadd_generation_prompt%}" + gen)) {
      need(f, gen, "opens the assistant turn otherwise");
      v.generation_prompt_always = true;
    }
    v.label = "Llama 3";
    return {"llama3", v};
  }

  Detected chatml() const {
    const std::string f = "ChatML";
    Variant v;
    if (!has("'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>'+'\n'") &&
        !has("'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>\n'")) {
      differs(f, "writes messages otherwise than <|im_start|>role\\ncontent<|im_end|>\\n");
    }
    need(f, "{%ifadd_generation_prompt%}{{'<|im_start|>assistant\n'}}",
         "opens the assistant turn otherwise");
    // A default system message: a literal '<|im_start|>system\nTEXT<|im_end|>\n'.
    const std::string key = "'<|im_start|>system\n", tail = "<|im_end|>\n";
    for (size_t at = t_.find(key); at != std::string::npos; at = t_.find(key, at + 1)) {
      std::string text;
      size_t i = at + key.size();
      for (; i < t_.size() && t_[i] != '\''; ++i) {
        if (t_[i] == '\\' && i + 1 < t_.size()) ++i;
        text += t_[i];
      }
      if (text.size() < tail.size() || text.compare(text.size() - tail.size(), tail.size(), tail)) {
        continue;
      }
      text.resize(text.size() - tail.size());
      if (v.default_system && *v.default_system != text)
        differs(f, "has two default system messages");
      v.default_system = text;
    }
    if (v.default_system && !has("messages[0]['role']!='system'") &&
        !has("{%ifmessages[0]['role']=='system'%}")) {
      differs(f,
              "writes its default system message on another condition than a first message "
              "that is not a system one");
    }
    const std::string d = v.default_system.value_or("");
    v.label = !v.default_system                                                  ? "ChatML"
              : d.rfind("You are a helpful assistant", 0) == 0 && d.size() <= 28 ? "Qwen2"
              : d.rfind("You are Qwen, created by", 0) == 0                      ? "Qwen2.5"
              : d.rfind("You are a helpful AI assistant named SmolLM", 0) == 0
                  ? "SmolLM2"
                  : "ChatML with a default system message";
    return {"chatml", v};
  }

  Detected phi3() const {
    const std::string f = "Phi-3";
    Variant v;
    v.leading_bos = t_.rfind("{{bos_token}}", 0) == 0;
    if (has("'<|user|>'+'\n'+message['content']+'<|end|>'+'\n'+'<|assistant|>'+'\n'")) {
      need(f, "{{message['content']+'<|end|>'+'\n'}}", "writes assistant turns otherwise");
      if (has("<|system|>")) differs(f, "writes system messages");
      v.legacy_turns = true;
      v.system = SystemMode::kDropped;
      v.label = "Phi-3 (first template)";
      return {"phi3", v};
    }
    const std::string sys = "{{'<|system|>\n'+message['content']+'<|end|>\n'}}";
    if (has("'<|'+message['role']+'|>'+'\n'+message['content']+'<|end|>\n'")) {
      v.system = SystemMode::kOwnTurn;  // Phi-3-small: every role as <|role|>
    } else {
      need(f, "'<|user|>\n'+message['content']+'<|end|>\n'", "writes user turns otherwise");
      need(f, "'<|assistant|>\n'+message['content']+'<|end|>\n'",
           "writes assistant turns otherwise");
      if (has("message['role']=='system'andmessage['content']%}" + sys)) {
        v.system = SystemMode::kIfNonEmpty;
      } else if (has("message['role']=='system'%}" + sys)) {
        v.system = SystemMode::kOwnTurn;
      } else if (!has("<|system|>")) {
        v.system = SystemMode::kDropped;
      } else {
        differs(f, "writes system messages on another condition");
      }
    }
    need(f, "{%ifadd_generation_prompt%}{{'<|assistant|>\n'}}",
         "opens the assistant turn otherwise");
    v.eos_without_generation_prompt = has("{{'<|assistant|>\n'}}{%else%}{{eos_token}}");
    v.label = v.system == SystemMode::kIfNonEmpty ? "Phi-3.5-mini" : "Phi-3-mini";
    return {"phi3", v};
  }

  std::string raw_;  // declared before t_, which the constructor fills while filling raw_
  std::string t_;
};

}  // namespace

Detected detect_family(const std::string& jinja) {
  if (jinja.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw Error(ErrorKind::kUnsupported,
                "the model has no chat template; pass --chat-template NAME with NAME one of " +
                    join_names(ChatTemplate::names()));
  }
  return Detector(jinja).run();
}

}  // namespace longctx::chat
