#include "tokenizer/hf_tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {

HfTokenizer::HfTokenizer(HfTokenizerParts parts) : p_(std::move(parts)) {
  std::vector<AddedToken> raw, norm;
  std::vector<std::string> raw_pat, norm_pat;
  for (size_t i = 0; i < p_.added.size(); ++i) {
    const AddedToken& t = p_.added[i];
    added_index_[t.id] = i;
    vocab_size_ = std::max<int64_t>(vocab_size_, int64_t{t.id} + 1);
    if (t.normalized) {
      // Hugging Face matches normalized tokens by their normalized form.
      std::string pat = t.content;
      if (p_.normalizer) p_.normalizer->normalize(pat);
      norm.push_back(t);
      norm_pat.push_back(std::move(pat));
    } else {
      raw.push_back(t);
      raw_pat.push_back(t.content);
    }
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw), std::move(raw_pat));
  norm_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(norm), std::move(norm_pat));
  vocab_size_ =
      std::max<int64_t>(vocab_size_, static_cast<int64_t>(p_.model->id_to_token().size()));
  if (p_.model->id_to_token().empty() && p_.added.empty())
    throw Error(ErrorKind::kFormat, p_.path +
                                        ": the vocabulary is empty (model.vocab has no "
                                        "entries and there are no added_tokens), so no text "
                                        "can be tokenized; use the tokenizer.json that came "
                                        "with the checkpoint");
}

const AddedToken* HfTokenizer::added_token(int32_t id) const {
  const auto it = added_index_.find(id);
  return it == added_index_.end() ? nullptr : &p_.added[it->second];
}

bool HfTokenizer::is_special(int32_t id) const {
  const AddedToken* t = added_token(id);
  return t != nullptr && t->special;
}

void HfTokenizer::encode_text(std::string_view text, bool at_origin,
                              std::vector<int32_t>& out) const {
  std::vector<PreSplit> splits{{std::string(text), at_origin}};
  if (p_.pre_tokenizer) p_.pre_tokenizer->pre_tokenize(splits);
  for (const auto& s : splits) p_.model->tokenize(s.text, out);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view input, bool add_special) const {
  // Rust strings are valid UTF-8 by construction; here invalid bytes become U+FFFD first.
  std::string repaired;
  if (!utf8_valid(input)) {
    repaired = utf8_lossy(input);
    input = repaired;
  }
  std::vector<int32_t> ids;
  if (add_special) ids = p_.post.prefix;
  std::vector<TextSegment> segs, sub;
  raw_matcher_->split(input, segs);
  for (const auto& seg : segs) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string text(seg.text);
    if (p_.normalizer) p_.normalizer->normalize(text);
    if (norm_matcher_->empty()) {
      encode_text(text, seg.offset == 0, ids);
      continue;
    }
    sub.clear();
    norm_matcher_->split(text, sub);
    for (const auto& s : sub) {
      if (s.id >= 0) {
        ids.push_back(s.id);
      } else {
        encode_text(s.text, seg.offset == 0 && s.offset == 0, ids);
      }
    }
  }
  if (add_special) ids.insert(ids.end(), p_.post.suffix.begin(), p_.post.suffix.end());
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const auto& vocab = p_.model->id_to_token();
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* t = added_token(id)) {
      if (!(skip_special && t->special)) tokens.push_back(t->content);
    } else if (id >= 0 && static_cast<size_t>(id) < vocab.size() && !vocab[id].empty()) {
      tokens.push_back(vocab[id]);
    }  // ids outside the vocabulary are skipped, as Hugging Face does
  }
  std::string text;
  if (p_.decoder) {
    p_.decoder->decode_chain(tokens, false);
    for (const auto& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text += ' ';
      text += tokens[i];
    }
  }
  return text;
}

std::string HfTokenizer::token_bytes(int32_t id) const {
  if (const AddedToken* t = added_token(id)) return t->content;
  const auto& vocab = p_.model->id_to_token();
  if (id < 0 || static_cast<size_t>(id) >= vocab.size()) {
    throw Error(ErrorKind::kOutOfRange,
                "token id " + std::to_string(id) + " is outside the vocabulary of " + p_.path);
  }
  std::vector<std::string> tokens{vocab[id]};
  if (p_.decoder) p_.decoder->decode_chain(tokens, true);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace longctx::tok
