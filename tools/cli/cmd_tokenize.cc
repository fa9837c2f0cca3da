// longctx tokenize: show how a model's tokenizer splits a text, in llama.cpp's llama-tokenize
// format (one "ID -> 'PIECE'" line per token, or "[ids]" with --ids-only).
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "plan_options.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace longctx::cli {
namespace {

struct TokenizeOpts {
  std::string model, prompt, file;
  bool ids_only = false, no_bos = false;
  bool has_prompt = false, has_file = false;  // -p "" is an empty text, not a missing one
};

// A folder is a Hugging Face checkpoint (tokenizer.json or tokenizer.model); a file is a GGUF
// model or vocabulary whose metadata holds the tokenizer.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& model) {
  struct stat st {};
  if (::stat(model.c_str(), &st) != 0) {
    throw Error(ErrorKind::kIo, model +
                                    ": no such file or folder; pass a Hugging Face model folder "
                                    "or a .gguf file with -m");
  }
  if (S_ISDIR(st.st_mode)) return load_tokenizer(model);
  return load_gguf_tokenizer(model);
}

std::string read_input(const TokenizeOpts& o) {
  if (o.has_prompt == o.has_file) {
    throw Error(ErrorKind::kInvalidArg,
                "say what to tokenize with exactly one of -p TEXT or -f FILE");
  }
  if (o.has_prompt) return o.prompt;
  return read_text_file(o.file, "-f", "auto");
}

}  // namespace

Runner add_tokenize_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("tokenize", "Show the tokens of a text (like llama.cpp's llama-tokenize)");
  auto o = std::make_shared<TokenizeOpts>();
  cmd->add_option("-m,--model", o->model, "Hugging Face model folder or .gguf file")->required();
  CLI::Option* prompt = cmd->add_option("-p,--prompt", o->prompt, "The text to tokenize");
  CLI::Option* file =
      cmd->add_option("-f,--file", o->file, "A file whose whole content is tokenized");
  cmd->add_flag("--ids-only", o->ids_only, "Print only the ids, as [1, 2, 3]");
  cmd->add_flag("--no-bos", o->no_bos,
                "Leave out BOS (and whatever else the tokenizer adds around the text)");
  return [o, prompt, file] {
    o->has_prompt = prompt->count() > 0;
    o->has_file = file->count() > 0;
    const std::string text = read_input(*o);
    const std::unique_ptr<Tokenizer> tok = open_tokenizer(o->model);
    const std::vector<int32_t> ids = tok->encode(text, !o->no_bos);
    if (o->ids_only) {
      std::string line = "[";
      for (size_t i = 0; i < ids.size(); ++i) {
        line += (i ? ", " : "") + std::to_string(ids[i]);
      }
      std::printf("%s]\n", line.c_str());
      return 0;
    }
    for (int32_t id : ids) {
      // Special tokens have no text of their own in token_bytes; show their name.
      const std::string piece =
          tok->is_special(id) ? tok->decode({id}, false) : tok->token_bytes(id);
      std::printf("%6d -> '", id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::printf("'\n");
    }
    return 0;
  };
}

}  // namespace longctx::cli
