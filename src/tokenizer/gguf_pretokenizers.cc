#include "tokenizer/gguf_pretokenizers.h"

#include <utility>

namespace longctx::tok {
namespace {

// GPT-2's pattern (also the ByteLevel pre-tokenizer's).
const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3's tokenizer.json (numbers in groups of at most three digits).
const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's tokenizer.json (single digits).
const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-4o / Llama 4's tokenizer.json.
const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral's Tekken tokenizer.json.
const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Entry {
  std::vector<const char*> names;
  GgufPreTokenizer pre;
};

const std::vector<Entry>& table() {
  static const std::vector<Entry> t = {
      // llama.cpp's fallback for files without tokenizer.ggml.pre.
      {{"default"},
       {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}, false, false}},
      {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {{kLlama3}, true, true}},
      {{"dbrx", "smaug-bpe", "chatglm-bpe", "glm4"}, {{kLlama3}, false, false}},
      {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {{kQwen2}, false, false}},
      // Hugging Face Digits(individual_digits) then ByteLevel.
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {{R"(\p{N})", kGpt2}, false, false}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de"},
       {{kGpt2}, false, false}},
      {{"falcon"}, {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"}, false, false}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {{R"( ?[^(\s|.,!?…。，、।۔،)]+)"}, false, false}},
      {{"gpt-4o", "llama4"}, {{kGpt4o}, false, false}},
      {{"tekken"}, {{kTekken}, true, true}},
  };
  return t;
}

}  // namespace

const GgufPreTokenizer* find_gguf_pre_tokenizer(std::string_view name) {
  if (name.empty()) name = "default";
  for (const Entry& e : table()) {
    for (const char* n : e.names) {
      if (name == n) return &e.pre;
    }
  }
  return nullptr;
}

std::string gguf_pre_tokenizer_names() {
  std::string out;
  for (const Entry& e : table()) {
    for (const char* n : e.names) out += (out.empty() ? "" : ", ") + std::string(n);
  }
  return out;
}

}  // namespace longctx::tok
