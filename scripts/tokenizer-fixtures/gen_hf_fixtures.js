#!/usr/bin/env node
// Writes expected ids for a tokenizer.json, computed by Hugging Face `tokenizers` (the Rust
// library, through its Node bindings): the independent reference for longctx's tokenizer.json
// code. Usage:
//   node gen_hf_fixtures.js TOKENIZER_JSON OUT_JSON [--extra CASES_JSON]... [--meta KEY=VALUE]...
// Cases are cases.json plus the strings of each --extra file (e.g. text with special tokens);
// each is encoded with and without special tokens.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 2) {
    console.error('usage: gen_hf_fixtures.js TOKENIZER_JSON OUT_JSON [--extra CASES_JSON]... [--meta K=V]...');
    process.exit(2);
  }
  const [tokPath, outPath] = args;
  const texts = JSON.parse(fs.readFileSync(path.join(__dirname, 'cases.json'), 'utf8'));
  const meta = {};
  for (let i = 2; i < args.length; i += 2) {
    if (args[i] === '--extra') texts.push(...JSON.parse(fs.readFileSync(args[i + 1], 'utf8')));
    else if (args[i] === '--meta') {
      const [k, v] = args[i + 1].split('=');
      meta[k] = v;
    } else throw new Error('unknown argument ' + args[i]);
  }
  const tok = Tokenizer.fromFile(tokPath);
  const cases = [];
  for (const text of texts) {
    for (const addSpecial of [false, true]) {
      const enc = await tok.encode(text, null, { addSpecialTokens: addSpecial });
      const ids = Array.from(enc.getIds());
      cases.push({
        text,
        add_special: addSpecial,
        ids,
        decoded: await tok.decode(ids, true),
        decoded_with_special: await tok.decode(ids, false),
      });
    }
  }
  const version = require('tokenizers/package.json').version;
  const out = {
    reference: `Hugging Face tokenizers ${version} (npm package "tokenizers")`,
    ...meta,
    cases,
  };
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + '\n');
  console.log(`wrote ${cases.length} cases to ${outPath}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
