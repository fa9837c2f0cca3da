// libFuzzer harness for chat templates from user files: tokenizer_config.json's "chat_template"
// (config_chat_template, runtime/chat_template.h) and the Jinja text itself (ChatTemplate::detect,
// as from chat_template.jinja or a GGUF's tokenizer.chat_template). Any text either gives a
// template or throws a clean longctx::Error; a detected template renders a few conversations
// (apply; a refused message order is a clean Error) and describes itself.
//
// Input: the text of a tokenizer_config.json, which is also tried as a Jinja template.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "runtime/chat_template.h"

using namespace longctx;
using namespace longctx::fuzz;

namespace {

void exercise(const std::string& jinja) {
  quietly([&] {
    ChatTemplate t = ChatTemplate::detect(jinja);
    (void)t.describe();
    (void)t.end_of_turn();
    t.set_date_string("26 Jul 2024");
    const std::vector<std::vector<ChatMessage>> chats = {
        {{"user", "Hi"}},
        {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", " Hello "}, {"user", "2+2?"}},
        {{"system", ""}, {"user", ""}},
        {{"assistant", "x"}},
    };
    for (const auto& chat : chats)
      for (bool gen : {false, true}) quietly([&] { (void)t.apply(chat, gen, "<s>", "</s>"); });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::string jinja = config_chat_template(text, "tokenizer_config.json");
    if (!jinja.empty()) exercise(jinja);
  } catch (const Error& e) {
    check_error(e);
  }
  exercise(text);
  return 0;
}
