// BPE merging: the word starts as one symbol per character (or byte-fallback / unknown tokens);
// the lowest-ranked adjacent pair is merged until no pair has a merge. Pairs live in a min-heap
// keyed by (rank, position) over a doubly linked list of symbols, so a word of n symbols costs
// O(n log n) instead of rescanning all pairs after every merge. This is the order Hugging Face
// tokenizers uses (Word::merge_all), so ties resolve identically.
#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace longctx::tok {

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), opt_(std::move(options)) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab_) {
    if (id < 0) throw Error(ErrorKind::kFormat, where + ": negative id for token '" + tok + "'");
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = tok;

  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const int32_t ia = token_to_id(a), ib = token_to_id(b), inew = token_to_id(a + b);
    if (ia < 0 || ib < 0 || inew < 0) {
      throw Error(ErrorKind::kFormat, where + ": merge #" + std::to_string(r) + " ('" + a + "' '" +
                                          b +
                                          "') uses a token missing from model.vocab; the "
                                          "tokenizer.json is inconsistent, re-export it");
    }
    // A repeated pair keeps its last rank, as Hugging Face tokenizers' merge map does.
    merges_.insert_or_assign(pair_key(ia, ib), MergeInfo{static_cast<int32_t>(r), inew});
  }
  if (!opt_.unk_token.empty()) {
    unk_id_ = token_to_id(opt_.unk_token);
    if (unk_id_ < 0) {
      throw Error(ErrorKind::kFormat, where + ": model.unk_token '" + opt_.unk_token +
                                          "' is not in model.vocab; fix the tokenizer.json");
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = token_to_id(name);
  }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    const int32_t id = token_to_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Initial symbols: one per character; unknown characters become byte-fallback tokens, or the
  // unknown token (consecutive ones fused when fuse_unk), or are dropped when there is neither.
  std::vector<int32_t> syms;
  syms.reserve(word.size());
  bool pending_unk = false;
  utf8_for_each_char(word, [&](std::string_view ch) {
    const int32_t id = token_to_id(ch);
    if (id >= 0) {
      if (pending_unk) syms.push_back(unk_id_);
      pending_unk = false;
      syms.push_back(id);
      return;
    }
    if (opt_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        if (pending_unk) syms.push_back(unk_id_);
        pending_unk = false;
        for (char c : ch) syms.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        return;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !opt_.fuse_unk) syms.push_back(unk_id_);
      pending_unk = true;
    }
  });
  if (pending_unk) syms.push_back(unk_id_);
  merge_word(syms);
  out.insert(out.end(), syms.begin(), syms.end());
}

void BpeModel::merge_word(std::vector<int32_t>& syms) const {
  const int n = static_cast<int>(syms.size());
  if (n < 2) return;
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push_pair = [&](int left) {
    const int right = next[left];
    if (left < 0 || right < 0) return;
    const auto it = merges_.find(pair_key(syms[left], syms[right]));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);

  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int left = c.pos;
    if (!alive[left]) continue;
    const int right = next[left];
    if (right < 0) continue;
    // Skip stale entries: the pair at this position changed since it was queued.
    const auto it = merges_.find(pair_key(syms[left], syms[right]));
    if (it == merges_.end() || it->second.new_id != c.new_id) continue;
    syms[left] = c.new_id;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    if (prev[left] >= 0) push_pair(prev[left]);
    push_pair(left);
  }
  int w = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) syms[w++] = syms[i];
  syms.resize(static_cast<size_t>(w));
}

}  // namespace longctx::tok
