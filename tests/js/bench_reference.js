#!/usr/bin/env node
// Encode throughput of the reference (Hugging Face `tokenizers`, Rust, one thread) on the chunks
// that `rlft bench tokenizer` measures itself on.
//
//   node tests/js/bench_reference.js --tokenizer qwen3|deepseek_v3|PATH --chunks CHUNKS.json [--repeats 3]
//
// CHUNKS.json: a JSON list of strings. Each repeat loads the tokenizer afresh (a cold word
// cache, as rlft's side clears its own) and encodes every chunk once, without special tokens;
// the best repeat counts. Prints {"bytes", "seconds", "mb_per_s", "tokens", "repeats"}.
'use strict';
const fs = require('fs');
const { loadReference, parseArgs } = require('./reference');

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.tokenizer || !args.chunks) throw new Error('usage: bench_reference.js --tokenizer NAME|PATH --chunks FILE');
  const chunks = JSON.parse(fs.readFileSync(args.chunks, 'utf8'));
  const repeats = Number(args.repeats || 3);
  const bytes = chunks.reduce((n, c) => n + Buffer.byteLength(c, 'utf8'), 0);
  let best = Infinity, tokens = 0;
  for (let r = 0; r < repeats; ++r) {
    const tok = loadReference(args.tokenizer);
    await tok.encode('warm up', null, { addSpecialTokens: false });
    let n = 0;
    const t0 = process.hrtime.bigint();
    for (const c of chunks) n += (await tok.encode(c, null, { addSpecialTokens: false })).getLength();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, seconds);
    tokens = n;
  }
  process.stdout.write(JSON.stringify({ bytes, seconds: best, mb_per_s: bytes / best / 1e6, tokens, repeats }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench_reference.js: ${e.stack || e}\n`);
  process.exit(1);
});
