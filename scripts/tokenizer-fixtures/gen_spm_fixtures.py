#!/usr/bin/python3
"""Writes expected ids for a SentencePiece tokenizer.model, computed by SentencePiece itself
(Debian's python3-sentencepiece): the independent reference for longctx's tokenizer.model code.

Usage: /usr/bin/python3 gen_spm_fixtures.py MODEL OUT_JSON
Each case of cases.json is encoded without and with BOS (add_special); "decoded" is
SentencePiece's decode of the ids.
"""
import json
import os
import sys

import sentencepiece as spm  # Debian python3-sentencepiece (use /usr/bin/python3)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model, out = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "cases.json"), encoding="utf-8") as f:
        texts = json.load(f)
    sp = spm.SentencePieceProcessor(model_file=model)
    cases = []
    for text in texts:
        for add_special in (False, True):
            ids = sp.encode(text)
            if add_special:
                ids = [sp.bos_id()] + ids
            cases.append({"text": text, "add_special": add_special, "ids": ids,
                          "decoded": sp.decode(ids)})
    doc = {"reference": "SentencePiece %s (Debian python3-sentencepiece)" % spm.__version__,
           "cases": cases}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
