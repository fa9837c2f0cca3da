// tokenizer.model through Debian's libsentencepiece: SentencePiece does the encoding and decoding
// (normalization, dummy prefix, BPE or unigram, byte fallback); this adds BOS, special-token
// matching in text and checked loading.
#include <sentencepiece_processor.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/file_util.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

// Reads a protobuf varint at data[pos]; false when it runs past the end.
bool read_varint(const std::string& data, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= data.size()) return false;
    const auto b = static_cast<unsigned char>(data[pos++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Walks the top level of the ModelProto wire format. A tokenizer.model cut short usually still
// parses as a (smaller) protobuf, so check that every field is whole and that trainer_spec (2)
// and normalizer_spec (3), which are written after the pieces, are present. Returns "" when the
// file looks whole, else what is wrong.
std::string check_model_proto(const std::string& data) {
  bool trainer = false, normalizer = false;
  size_t pieces = 0, pos = 0;
  while (pos < data.size()) {
    uint64_t tag, len;
    if (!read_varint(data, pos, tag)) return "a field tag runs past the end of the file";
    const uint64_t field = tag >> 3;
    switch (tag & 7) {
      case 0:
        if (!read_varint(data, pos, len)) return "a field runs past the end of the file";
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        if (!read_varint(data, pos, len) || len > data.size() - pos) {
          return "field " + std::to_string(field) + " runs past the end of the file";
        }
        pos += len;
        break;
      case 5:
        pos += 4;
        break;
      default:
        return "invalid protobuf wire type at byte " + std::to_string(pos);
    }
    if (pos > data.size()) return "a field runs past the end of the file";
    pieces += field == 1;
    trainer = trainer || field == 2;
    normalizer = normalizer || field == 3;
  }
  if (pieces == 0) return "it has no vocabulary pieces";
  if (!trainer || !normalizer) return "it ends before trainer_spec/normalizer_spec";
  return "";
}

class SpmTokenizer : public Tokenizer {
 public:
  SpmTokenizer(const std::string& data, const std::string& path) : path_(path) {
    const std::string problem = check_model_proto(data);
    if (!problem.empty()) {
      throw Error(ErrorKind::kFormat, path +
                                          ": truncated or malformed SentencePiece "
                                          "tokenizer.model (" +
                                          problem + "); download the file again");
    }
    sentencepiece::util::Status status;
    try {
      status = sp_.LoadFromSerializedProto(data);
    } catch (const std::exception& e) {
      // libsentencepiece throws from inside (e.g. its trie builder on an empty piece).
      throw Error(ErrorKind::kFormat, path + ": not a valid SentencePiece tokenizer.model (" +
                                          e.what() + "); download the file again");
    }
    if (!status.ok()) {
      // The library's own words, without its status code ("Internal: ...", which reads like a
      // bug of longctx) or its source location.
      std::string why = status.message();
      if (why.find("ParseFromArray") != std::string::npos || why.empty())
        why = "it is not a SentencePiece model protobuf";
      throw Error(ErrorKind::kFormat, path + ": not a valid SentencePiece tokenizer.model (" + why +
                                          "); download the file again");
    }
    n_ = sp_.GetPieceSize();
    if (n_ == 0)
      throw Error(ErrorKind::kFormat, path +
                                          ": the vocabulary is empty (no pieces), so no text "
                                          "can be tokenized; use the tokenizer.model that "
                                          "came with the checkpoint");
    for (int i = 0; i < n_; ++i) {
      if (sp_.IsControl(i) && !sp_.IdToPiece(i).empty())
        controls_.emplace_back(sp_.IdToPiece(i), i);
    }
    // Longest first, so that a longer control piece wins over its prefix.
    std::stable_sort(controls_.begin(), controls_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> out;
    if (add_special && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    // Control pieces written in the text ("<s>", "</s>") become their ids, as Hugging Face's
    // LlamaTokenizer does; SentencePiece itself would spell them out. Each piece of text between
    // them is encoded on its own (and so gets SentencePiece's dummy-prefix space).
    size_t done = 0;
    for (size_t pos = 0; pos < text.size(); ++pos) {
      for (const auto& [piece, id] : controls_) {
        if (text.compare(pos, piece.size(), piece) != 0) continue;
        encode_plain(text.substr(done, pos - done), out);
        out.push_back(id);
        pos += piece.size() - 1;
        done = pos + 1;
        break;
      }
    }
    encode_plain(text.substr(done), out);
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    for (int32_t id : ids) check_id(id);
    if (skip_special) return decode_run(ids);
    // Keep control pieces: decode the runs between them. SentencePiece drops the leading space
    // of the first piece only, so a run after a control piece keeps its own.
    std::string out;
    std::vector<int32_t> run;
    bool first = true;
    auto flush = [&] {
      if (run.empty()) return;
      std::string s = decode_run(run);
      if (!first && sp_.IdToPiece(run[0]).rfind("\xE2\x96\x81", 0) == 0) s.insert(s.begin(), ' ');
      out += s;
      run.clear();
      first = false;
    };
    for (int32_t id : ids) {
      if (sp_.IsControl(id)) {
        flush();
        out += sp_.IdToPiece(id);
        first = false;
      } else {
        run.push_back(id);
      }
    }
    flush();
    return out;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    if (sp_.IsControl(id)) return "";
    if (sp_.IsUnknown(id)) return " \xE2\x81\x87 ";  // SentencePiece's default unk surface
    const std::string& piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id))
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 3;
      } else {
        out += piece[i++];
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return n_; }
  int32_t bos_id() const override { return sp_.bos_id(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  bool is_special(int32_t id) const override { return id >= 0 && id < n_ && sp_.IsControl(id); }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= n_) {
      throw Error(ErrorKind::kOutOfRange, "token id " + std::to_string(id) +
                                              " is outside the vocabulary (size " +
                                              std::to_string(n_) + ") of " + path_);
    }
  }

  void encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) {
      throw Error(ErrorKind::kInvalidArg,
                  path_ + ": SentencePiece could not encode the text (" + status.ToString() + ")");
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string decode_run(const std::vector<int32_t>& ids) const {
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) {
      throw Error(ErrorKind::kInvalidArg,
                  path_ + ": SentencePiece could not decode the ids (" + status.ToString() + ")");
    }
    return text;
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  int n_ = 0;
  std::vector<std::pair<std::string, int32_t>> controls_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  return parse_sentencepiece(tok::read_file(path, "tokenizer.model"), path);
}

std::unique_ptr<Tokenizer> parse_sentencepiece(const std::string& data, const std::string& path) {
  return std::make_unique<SpmTokenizer>(data, path);
}

}  // namespace longctx
