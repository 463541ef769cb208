#!/usr/bin/env node
// Golden ids and decodes from the reference, for rlft's tokenizer tests.
//
//   node tests/js/golden.js --tokenizer qwen3|deepseek_v3|PATH --cases CASES.json [--out OUT.json]
//
// CASES.json: {"texts": [string…], "light_texts": [string…], "id_lists": [[id…]…]} (any may be
// absent). Output (stdout or --out): {"ids": [[…] per text], "decoded": [decode(ids) per text],
//   "decoded_skip": [decode(ids, skip_special_tokens) per text], "ids_no_special":
//   [encode(text, add_special_tokens=false)], "light_ids" / "light_decoded": encode and decode
//   only, for the bulky light_texts, "decoded_lists": [decode(list) per id list],
//   "decoded_lists_skip": […]}.
// Component checks (no --tokenizer needed): "normalize": {"forms": ["NFC", …], "texts": […]}
//   gives "normalized": {form: [text…]}; "pretokenize": [{"pre_tokenizer": {…}, "texts": […]}…]
//   gives "pretokenized": [[[piece…] per text] per entry].
'use strict';
const fs = require('fs');
const { loadReference, parseArgs, requireReference } = require('./reference');

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.cases) throw new Error('usage: golden.js [--tokenizer NAME|PATH] --cases FILE [--out FILE]');
  const cases = JSON.parse(fs.readFileSync(args.cases, 'utf8'));
  const ref = requireReference();
  const out = { normalized: {}, pretokenized: [] };
  if (cases.normalize) {
    const make = { NFC: ref.nfcNormalizer, NFD: ref.nfdNormalizer, NFKC: ref.nfkcNormalizer, NFKD: ref.nfkdNormalizer };
    for (const form of cases.normalize.forms) {
      const n = make[form]();
      out.normalized[form] = cases.normalize.texts.map((t) => n.normalizeString(t));
    }
  }
  for (const entry of cases.pretokenize || []) {
    const pt = ref.Tokenizer.fromString(JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
      pre_tokenizer: entry.pre_tokenizer, post_processor: null, decoder: null,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
               fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
    })).getPreTokenizer();
    out.pretokenized.push(entry.texts.map((t) => pt.preTokenizeString(t).map((p) => p[0])));
  }
  if (!args.tokenizer) return finish(args, out);
  const tok = loadReference(args.tokenizer);
  Object.assign(out, { ids: [], ids_no_special: [], decoded: [], decoded_skip: [], light_ids: [], light_decoded: [],
                       decoded_lists: [], decoded_lists_skip: [] });
  const texts = cases.texts || [];
  const lists = cases.id_lists || [];
  // Batches of a few hundred: one call each (TOKENIZERS_PARALLELISM=false keeps them serial).
  for (let i = 0; i < texts.length; i += 256) {
    const part = texts.slice(i, i + 256);
    const ids = (await tok.encodeBatch(part, { addSpecialTokens: true })).map((e) => e.getIds());
    out.ids.push(...ids);
    out.ids_no_special.push(...(await tok.encodeBatch(part, { addSpecialTokens: false })).map((e) => e.getIds()));
    out.decoded.push(...(await tok.decodeBatch(ids, false)));
    out.decoded_skip.push(...(await tok.decodeBatch(ids, true)));
  }
  const light = cases.light_texts || [];
  for (let i = 0; i < light.length; i += 256) {
    const ids = (await tok.encodeBatch(light.slice(i, i + 256), { addSpecialTokens: true })).map((e) => e.getIds());
    out.light_ids.push(...ids);
    out.light_decoded.push(...(await tok.decodeBatch(ids, false)));
  }
  if (lists.length) {
    out.decoded_lists.push(...(await tok.decodeBatch(lists, false)));
    out.decoded_lists_skip.push(...(await tok.decodeBatch(lists, true)));
  }
  finish(args, out);
}

function finish(args, out) {
  const text = JSON.stringify(out);
  if (args.out) fs.writeFileSync(args.out, text);
  else process.stdout.write(text);
}

main().catch((e) => {
  process.stderr.write(`golden.js: ${e.stack || e}\n`);
  process.exit(1);
});
