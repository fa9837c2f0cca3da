#include "tokenizer/test_util.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace longctx::test {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

Fixture load_fixture(const std::string& name) {
  const auto j = nlohmann::json::parse(read_text_file(fixture_path(name)));
  Fixture f;
  f.reference = j.at("reference").get<std::string>();
  f.merges_fingerprint = j.value("merges_fingerprint", "");
  for (const auto& c : j.at("cases")) {
    FixtureCase fc;
    fc.text = c.at("text").get<std::string>();
    fc.add_special = c.at("add_special").get<bool>();
    fc.ids = c.at("ids").get<std::vector<int32_t>>();
    fc.decoded = c.at("decoded").get<std::string>();
    fc.has_decoded_with_special = c.contains("decoded_with_special");
    fc.decoded_with_special = c.value("decoded_with_special", "");
    f.cases.push_back(std::move(fc));
  }
  return f;
}

namespace {

size_t count_chars(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// transformers' generate_merges, as in spm_to_tokenizer_json.py: every split of a piece into two
// pieces of the vocabulary, ordered by (score, len(left), len(right)) descending, stable.
std::vector<std::pair<std::string, std::string>> merges_from_vocab(
    const sentencepiece::SentencePieceProcessor& sp) {
  const int n = sp.GetPieceSize();
  std::unordered_map<std::string, int> vocab;
  for (int i = 0; i < n; ++i) vocab.emplace(sp.IdToPiece(i), i);
  struct M {
    std::string a, b;
    float score;
    size_t la, lb;
  };
  std::vector<M> merges;
  for (int i = 0; i < n; ++i) {
    const std::string& piece = sp.IdToPiece(i);
    const float score = i < 3 ? 0.0f : sp.GetScore(i);
    std::vector<M> local;
    for (size_t k = 1; k < piece.size(); ++k) {
      if ((static_cast<unsigned char>(piece[k]) & 0xC0) == 0x80) continue;  // char boundary
      std::string a = piece.substr(0, k), b = piece.substr(k);
      if (vocab.count(a) && vocab.count(b)) {
        local.push_back({a, b, score, count_chars(a), count_chars(b)});
      }
    }
    std::stable_sort(local.begin(), local.end(), [&](const M& x, const M& y) {
      return std::make_pair(vocab[x.a], vocab[x.b]) < std::make_pair(vocab[y.a], vocab[y.b]);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const M& x, const M& y) {
    return std::tie(x.score, x.la, x.lb) > std::tie(y.score, y.la, y.lb);
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (auto& m : merges) out.emplace_back(std::move(m.a), std::move(m.b));
  return out;
}

std::string fingerprint(const std::vector<std::pair<std::string, std::string>>& merges) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const auto& [a, b] : merges) {
    for (unsigned char c : a + " " + b + "\n") {
      h ^= c;
      h *= 0x100000001B3ull;
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%zu:%016llx", merges.size(), static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string spm_to_tokenizer_json(const std::string& model_path, const std::string& style,
                                  const std::string& out_path) {
  using nlohmann::json;
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model_path).ok()) throw std::runtime_error("cannot load " + model_path);
  const std::string space = "\xE2\x96\x81";
  const int n = sp.GetPieceSize();
  json vocab = json::object();
  json added = json::array();
  for (int i = 0; i < n; ++i) {
    vocab[sp.IdToPiece(i)] = i;
    if (sp.IsControl(i) || sp.IsUnknown(i)) {
      added.push_back({{"id", i},
                       {"content", sp.IdToPiece(i)},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    }
  }
  const auto merges = merges_from_vocab(sp);
  const std::string bos = sp.IdToPiece(sp.bos_id());
  json tok = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{bos, {{"id", bos}, {"ids", {sp.bos_id()}}, {"tokens", {bos}}}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", sp.IdToPiece(sp.unk_id())},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab}}}};
  json m = json::array();
  if (style == "legacy") {
    tok["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "Prepend"}, {"prepend", space}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}})}};
    tok["decoder"] = {
        {"type", "Sequence"},
        {"decoders",
         json::array({{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    for (const auto& [a, b] : merges) m.push_back(a + " " + b);
  } else if (style == "metaspace") {
    const json meta = {{"type", "Metaspace"},
                       {"replacement", space},
                       {"prepend_scheme", "first"},
                       {"split", false}};
    tok["pre_tokenizer"] = meta;
    tok["decoder"] = {
        {"type", "Sequence"},
        {"decoders", json::array({meta, {{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
    for (const auto& [a, b] : merges) m.push_back(json::array({a, b}));
  } else {
    throw std::runtime_error("unknown style " + style);
  }
  tok["model"]["merges"] = std::move(m);
  write_text_file(out_path, tok.dump());
  return fingerprint(merges);
}

}  // namespace longctx::test
