#!/usr/bin/env node
// Builds small tokenizer.json files that exercise one feature each (Llama 3 split regex,
// ignore_merges, added-token lstrip/rstrip/single_word/normalized, normalizers, Metaspace with
// split, Roberta post-processing, unk fusing, byte fallback) and records what Hugging Face
// tokenizers gives for a few texts. Usage: node gen_mini_fixtures.js OUT_JSON
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The GPT-2 byte-level alphabet, in byte order.
function byteLevelAlphabet() {
  const chars = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    chars.push(String.fromCodePoint(printable ? b : 256 + n++));
  }
  return chars;
}

function bpe(vocabList, merges, extra) {
  const vocab = {};
  vocabList.forEach((t, i) => (vocab[t] = i));
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
  return Object.assign({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
    merges: merges.map(([a, b]) => [a, b]) }, extra);
}

function added(content, opts) {
  return Object.assign({ id: -1, content, single_word: false, lstrip: false, rstrip: false,
    normalized: false, special: true }, opts);
}

const byteTokens = Array.from({ length: 256 }, (_, b) =>
  '<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>');
const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');

// Gives added tokens the ids Hugging Face would (their vocab id, else the next free id), and
// points post-processor special tokens at them.
function tokenizerJson(t) {
  const tok = Object.assign({ version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null }, t);
  const vocab = tok.model.vocab;
  let next = Math.max(...Object.values(vocab)) + 1;
  const ids = {};
  for (const a of tok.added_tokens) {
    a.id = a.content in vocab ? vocab[a.content] : next++;
    ids[a.content] = a.id;
  }
  const fix = (p) => {
    if (!p) return;
    if (p.type === 'Sequence') p.processors.forEach(fix);
    if (p.type === 'TemplateProcessing') {
      for (const [name, st] of Object.entries(p.special_tokens)) st.ids = st.tokens.map((x) => ids[x]);
    }
  };
  fix(tok.post_processor);
  return tok;
}

const minis = [
  {
    name: 'llama3_style',
    tokenizer: tokenizerJson({
      added_tokens: [added('<|begin_of_text|>'), added('<|eot_id|>')],
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
      post_processor: { type: 'Sequence', processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        { type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
                   { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [],
                                                   tokens: ['<|begin_of_text|>'] } } }] },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpe(byteLevelAlphabet().concat(['Ġworld']),
                 [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['Ġ', 'Ġ'], ['1', '2'], ['12', '3'],
                  ['l', 'l'], ['e', 'll'], ['H', 'ell'], ['Hell', 'o'], ['Ċ', 'Ċ']],
                 { ignore_merges: true }),
    }),
    texts: ["Hello world's 12345 !!!\n\n  x", "I'M HERE, you'LL see", 'the theme\r\n\r\nthen',
            '<|begin_of_text|>hi<|eot_id|>', 'ЁЖ 中文 123456789 ', '\t\tindent\n  \n', ''],
  },
  {
    name: 'added_token_flags',
    tokenizer: tokenizerJson({
      added_tokens: [added('<mask>', { lstrip: true, rstrip: true }),
                     added('xy', { single_word: true, special: false }),
                     added('[norm]', { normalized: true, special: false })],
      normalizer: { type: 'Lowercase' },
      model: bpe(['<unk>', ' ', 'a', 'b', 'c', 'd', 'n', 'x', 'y', '[', ']', 'o', 'r', 'm'],
                 [['a', 'b'], ['ab', 'c']], { unk_token: '<unk>', fuse_unk: true }),
    }),
    texts: ['x <mask> y', 'x<mask>y', '  <mask>  ', 'xy axy xya xy_ xy', 'XY', 'abc', '[NORM] and [norm]',
            'xzzqy', 'x z q y', ''],
  },
  {
    name: 'unk_not_fused',
    tokenizer: tokenizerJson({
      model: bpe(['<unk>', 'a', 'b'], [['a', 'b']], { unk_token: '<unk>', fuse_unk: false }),
      decoder: { type: 'Fuse' },
    }),
    texts: ['abzzab', 'zz', 'ab'],
  },
  {
    name: 'normalizers_byte_fallback',
    tokenizer: tokenizerJson({
      normalizer: { type: 'Sequence', normalizers: [
        { type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'WhitespaceSplit' }, { type: 'Digits', individual_digits: false },
        { type: 'Punctuation', behavior: 'Isolated' }] },
      decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
      model: bpe(byteTokens.concat(letters, ['1', '2', '3']),
                 [['h', 'e'], ['l', 'l'], ['he', 'll'], ['1', '2']], { byte_fallback: true }),
    }),
    texts: ['  Ｈｅｌｌｏ ﬁne  Cafe\u0301 ', 'ABC123def4512', 'wait... what?!', 'Ω≈ç√ 😀', ''],
  },
  {
    name: 'metaspace_split_roberta',
    tokenizer: tokenizerJson({
      added_tokens: [added('<s>'), added('</s>')],
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      post_processor: { type: 'RobertaProcessing', sep: ['</s>', 1], cls: ['<s>', 0],
                        trim_offsets: true, add_prefix_space: true },
      model: bpe(['<s>', '</s>', '<unk>', '▁'].concat(letters),
                 [['▁', 'a'], ['▁a', 'b'], ['b', 'c']], { unk_token: '<unk>' }),
    }),
    texts: ['ab  bc c', ' lead', 'trail ', 'abc', ''],
  },
];

async function main() {
  const out = { reference: 'Hugging Face tokenizers ' + require('tokenizers/package.json').version +
                ' (npm package "tokenizers")', tokenizers: [] };
  for (const m of minis) {
    const tok = Tokenizer.fromString(JSON.stringify(m.tokenizer));
    const cases = [];
    for (const text of m.texts) {
      for (const addSpecial of [false, true]) {
        const ids = Array.from((await tok.encode(text, null, { addSpecialTokens: addSpecial })).getIds());
        cases.push({ text, add_special: addSpecial, ids, decoded: await tok.decode(ids, true),
                     decoded_with_special: await tok.decode(ids, false) });
      }
    }
    out.tokenizers.push({ name: m.name, tokenizer: m.tokenizer, cases });
  }
  fs.writeFileSync(process.argv[2], JSON.stringify(out, null, 1) + '\n');
  console.log('wrote ' + minis.length + ' tokenizers to ' + process.argv[2]);
}

main().catch((e) => { console.error(e); process.exit(1); });
