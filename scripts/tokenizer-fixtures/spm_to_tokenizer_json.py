#!/usr/bin/python3
"""Converts a SentencePiece BPE tokenizer.model into a Hugging Face tokenizer.json the way
transformers' LlamaConverter does (BPE with byte_fallback, merges recovered from the vocabulary,
BOS template). Used to test longctx's metaspace + byte-fallback tokenizer.json path against
Hugging Face tokenizers; tests/tokenizer/spm_to_json.cc is the C++ twin that rebuilds the same
file at test time (the merges fingerprint printed here must match the one it computes).

Usage: /usr/bin/python3 spm_to_tokenizer_json.py MODEL OUT_JSON {legacy|metaspace}
  legacy:    normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], merges as "a b" strings,
             decoder Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  metaspace: pre_tokenizer Metaspace(prepend_scheme "first", split false), merges as [a, b],
             decoder Sequence[Metaspace, ByteFallback, Fuse]
Prints the merges fingerprint (count:fnv1a64-hex).
"""
import json
import sys

import sentencepiece as spm  # Debian python3-sentencepiece

SPACE = "\u2581"


def merges_from_vocab(sp):
    """transformers' generate_merges with vocab_scores (LlamaConverter: first 3 scores 0)."""
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    scores = [(sp.id_to_piece(i), 0.0 if i < 3 else sp.get_score(i)) for i in range(n)]
    merges = []
    for piece, score in dict(scores).items():
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def fingerprint(merges):
    h = 0xCBF29CE484222325
    for a, b in merges:
        for byte in (a + " " + b + "\n").encode("utf-8"):
            h ^= byte
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%d:%016x" % (len(merges), h)


def convert(model_path, style):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    merges = merges_from_vocab(sp)
    added = []
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i):
            added.append({"id": i, "content": sp.id_to_piece(i), "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True})
    bos = sp.id_to_piece(sp.bos_id())
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [sp.bos_id()], "tokens": [bos]}},
        },
        "decoder": None,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": sp.id_to_piece(sp.unk_id()),
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
            "byte_fallback": True, "ignore_merges": False, "vocab": vocab,
        },
    }
    if style == "legacy":
        tok["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]}
        tok["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
        tok["model"]["merges"] = [a + " " + b for a, b in merges]
    elif style == "metaspace":
        tok["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPACE,
                                "prepend_scheme": "first", "split": False}
        tok["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first",
             "split": False},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}
        tok["model"]["merges"] = [[a, b] for a, b in merges]
    else:
        raise SystemExit("style must be legacy or metaspace")
    return tok, fingerprint(merges)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    tok, fp = convert(sys.argv[1], sys.argv[3])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    print(fp)


if __name__ == "__main__":
    main()
