#!/usr/bin/env node
// Generates policy/tokenizer/unicode_tables.inc: the per-code-point facts rlft's tokenizer needs
// (policy/tokenizer/unicode_data.cpp holds the lookups over them),
// taken from the reference itself so that rlft classifies and normalises every code point the
// way Hugging Face `tokenizers` (the @anush008/tokenizers binding) does.
//
//   node tests/js/gen_unicode_tables.js > policy/tokenizer/unicode_tables.inc
//
// Why probe the reference instead of reading one Unicode version's data files:
//  * its Split regexes run on Oniguruma, whose \p{L} … tables are of one Unicode version
//    (16.0 in tokenizers 0.22.2), PCRE2 10.42 knows 14.0, Node's ICU 17.0;
//  * its NFC/NFKC come from unicode-normalization-alignments 0.1.12, whose data is Unicode 9.0.
// So: regex classes are measured by splitting a string of every code point with
// Split(Regex "\p{X}", Removed); full decompositions are the reference's NFD/NFKD of each code
// point; canonical combining classes and one-level canonical mappings (stable properties once a
// character is assigned) come from Python's unicodedata, kept only where the reference's
// normaliser shows that it knows the character. Rust's char::is_numeric (the Digits
// pre-tokenizer) and Rust-regex \w (added tokens' single_word) are measured too, as their
// Unicode version differs from Oniguruma's; White_Space (\s of Rust regexes, lstrip / rstrip,
// Strip), stable for decades, comes from Node's own tables.
'use strict';
const { execFileSync } = require('child_process');
const tk = require('@anush008/tokenizers');

const kMaxCp = 0x110000;
const isSurrogate = (cp) => cp >= 0xd800 && cp < 0xe000;
const allCps = [];
for (let cp = 0; cp < kMaxCp; ++cp) if (!isSurrogate(cp)) allCps.push(cp);

function splitPreTokenizer(regex, behavior) {
  return tk.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: regex }, behavior, invert: false },
    post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  })).getPreTokenizer();
}

// The set of code points that the reference's regex `\p{X}` (one char) matches.
function probeClass(regex) {
  const pt = splitPreTokenizer(regex, 'Removed');
  const member = new Uint8Array(kMaxCp);
  const chunk = 0x8000;
  for (let i = 0; i < allCps.length; i += chunk) {
    const cps = allCps.slice(i, i + chunk);
    const text = String.fromCodePoint(...cps);
    const kept = new Set();
    for (const [piece] of pt.preTokenizeString(text)) for (const ch of piece) kept.add(ch.codePointAt(0));
    for (const cp of cps) if (!kept.has(cp)) member[cp] = 1;
  }
  return member;
}

// The reference normaliser applied to each code point alone ("\n" separates them: a starter
// that neither decomposes nor composes).
function probeNormalizer(normalizer, cps) {
  const out = new Map();
  const chunk = 0x4000;
  for (let i = 0; i < cps.length; i += chunk) {
    const part = cps.slice(i, i + chunk).filter((cp) => cp !== 0x0a);
    const text = part.map((cp) => String.fromCodePoint(cp)).join('\n');
    const pieces = normalizer.normalizeString(text).split('\n');
    if (pieces.length !== part.length) throw new Error('normaliser probe lost its separators');
    part.forEach((cp, k) => out.set(cp, [...pieces[k]].map((c) => c.codePointAt(0))));
  }
  return out;
}

function normalizeEach(normalizer, strings) {
  const text = strings.join('\n');
  const pieces = normalizer.normalizeString(text).split('\n');
  if (pieces.length !== strings.length) throw new Error('normaliser probe lost its separators');
  return pieces;
}

// Python's Unicode 14.0 data: canonical combining classes and one-level decompositions.
// Rust's char::is_numeric, through Digits(individual_digits): "x" + cp + "x" … isolates cp
// exactly when it is numeric.
function probeNumeric() {
  const pt = tk.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Digits', individual_digits: true }, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  })).getPreTokenizer();
  const member = new Uint8Array(kMaxCp);
  const chunk = 0x8000;
  for (let i = 0; i < allCps.length; i += chunk) {
    const cps = allCps.slice(i, i + chunk).filter((cp) => cp !== 0x78);
    const text = 'x' + cps.map((cp) => String.fromCodePoint(cp)).join('x') + 'x';
    for (const [piece] of pt.preTokenizeString(text)) {
      const chars = [...piece];
      if (chars.length === 1 && piece !== 'x') member[chars[0].codePointAt(0)] = 1;
    }
  }
  return member;
}

// Rust regex \w, through an added token with single_word: in cp + "@" + "\n" the "@" is a
// token exactly when cp is not a word character. The model knows no other token, so the ids
// are the "@" matches alone, and their offsets say which code points let them through.
async function probeRustWord() {
  const tok = tk.Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 0, content: '@', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false }],
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  }));
  const notWord = new Uint8Array(kMaxCp);
  const chunk = 0x8000;
  for (let i = 0; i < allCps.length; i += chunk) {
    const cps = allCps.slice(i, i + chunk).filter((cp) => cp !== 0x40);
    const text = cps.map((cp) => String.fromCodePoint(cp) + '@\n').join('');
    // Offsets count UTF-16 units? Map them back through a table of each segment's start.
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const starts = new Map();
    let pos = 0;
    for (const cp of cps) {
      const len = [...String.fromCodePoint(cp)].length;
      starts.set(pos + len, cp);
      pos += len + 2;
    }
    let pos16 = 0;
    const starts16 = new Map();
    for (const cp of cps) {
      const len = String.fromCodePoint(cp).length;
      starts16.set(pos16 + len, cp);
      pos16 += len + 2;
    }
    const offsets = enc.getOffsets();
    const byChars = offsets.every(([b]) => starts.has(b));
    for (const [b] of offsets) {
      const cp = (byChars ? starts : starts16).get(b);
      if (cp === undefined) throw new Error('single_word probe: an offset that starts no "@"');
      notWord[cp] = 1;
    }
  }
  return notWord;
}

function pythonData() {
  const script = `
import json, unicodedata as u
ccc, dec = {}, {}
for cp in range(0x110000):
    if 0xD800 <= cp < 0xE000: continue
    c = chr(cp)
    if u.combining(c): ccc[cp] = u.combining(c)
    d = u.decomposition(c)
    if d and not d.startswith('<'): dec[cp] = [int(x, 16) for x in d.split()]
print(json.dumps({"version": u.unidata_version, "ccc": ccc, "dec": dec}))
`;
  const j = JSON.parse(execFileSync('python3', ['-c', script], { maxBuffer: 1 << 28 }).toString());
  const ccc = new Map(Object.entries(j.ccc).map(([k, v]) => [Number(k), v]));
  const dec = new Map(Object.entries(j.dec).map(([k, v]) => [Number(k), v]));
  return { version: j.version, ccc, dec };
}

async function main() {
  const log = (...a) => process.stderr.write(a.join(' ') + '\n');
  // --- regex classes (Oniguruma, as the reference runs it) -------------------------------------
  const classes = {};
  for (const [name, re] of [['L', '\\p{L}'], ['N', '\\p{N}'], ['M', '\\p{M}'], ['P', '\\p{P}'],
                            ['S', '\\p{S}'], ['SPACE', '\\s'], ['CN', '\\p{Cn}']]) {
    log('probing', re);
    classes[name] = probeClass(re);
  }
  const assigned = (cp) => !isSurrogate(cp) && !classes.CN[cp];
  const jsHas = (re) => { const r = new RegExp(re, 'u'); return (cp) => r.test(String.fromCodePoint(cp)); };
  const jsWhite = jsHas('^\\p{White_Space}$');
  log('probing char::is_numeric and Rust regex \\w');
  const rustNumeric = probeNumeric();
  const rustNotWord = await probeRustWord();

  // --- normalisation (unicode-normalization-alignments, as the reference runs it) -------------
  log('probing normalisers');
  const nfd = tk.nfdNormalizer(), nfkd = tk.nfkdNormalizer(), nfc = tk.nfcNormalizer(), nfkc = tk.nfkcNormalizer();
  const py = pythonData();
  const refNfd = probeNormalizer(nfd, allCps);
  const refNfkd = probeNormalizer(nfkd, allCps);
  const refNfc = probeNormalizer(nfc, allCps);
  const refNfkc = probeNormalizer(nfkc, allCps);
  const same = (cp, seq) => seq.length === 1 && seq[0] === cp;
  const isHangulSyllable = (cp) => cp >= 0xac00 && cp <= 0xd7a3;

  // Combining classes the reference knows: a mark is known when it reorders.
  const cccCandidates = [...py.ccc.keys()];
  const probes = cccCandidates.map((cp) => {
    const c = py.ccc.get(cp), ch = String.fromCodePoint(cp);
    if (c < 230) return 'a\u0301' + ch;   // known: moves before U+0301 (230)
    if (c === 230) return 'a\u0345' + ch; // known: moves before U+0345 (240)
    return 'a' + ch + '\u0301';           // known: U+0301 moves before it
  });
  const reordered = normalizeEach(nfd, probes);
  const ccc = new Map();
  cccCandidates.forEach((cp, k) => {
    const out = [...reordered[k]].map((c) => c.codePointAt(0));
    const c = py.ccc.get(cp);
    const known = c <= 230 ? out[1] === cp : out[1] === 0x0301;
    if (known) ccc.set(cp, c);
  });

  // Full decompositions (Hangul syllables are algorithmic and stay out of the tables).
  const canon = new Map(), compat = new Map();
  for (const cp of allCps) {
    if (cp === 0x0a || isHangulSyllable(cp)) continue;
    const d = refNfd.get(cp), k = refNfkd.get(cp);
    if (!same(cp, d)) canon.set(cp, d);
    if (!same(cp, k) && (same(cp, d) || k.join() !== d.join())) compat.set(cp, k);
  }
  // Primary composites: a known two-element canonical mapping that NFC recomposes.
  const pairCps = [...py.dec.keys()].filter((cp) => py.dec.get(cp).length === 2 && canon.has(cp) && !isHangulSyllable(cp));
  const recomposed = normalizeEach(nfc, pairCps.map((cp) => String.fromCodePoint(...canon.get(cp))));
  const compositions = [];
  pairCps.forEach((cp, k) => {
    const out = [...recomposed[k]].map((c) => c.codePointAt(0));
    if (same(cp, out)) compositions.push([py.dec.get(cp)[0], py.dec.get(cp)[1], cp]);
  });
  compositions.sort((a, b) => (a[0] - b[0]) || (a[1] - b[1]));
  const secondOfPair = new Set(compositions.map((c) => c[1]));

  // --- flags --------------------------------------------------------------------------------
  const F = { L: 1, N: 2, M: 4, P: 8, S: 16, SPACE: 32, RUST_WORD: 64, RUST_SPACE: 128, RUST_NUMERIC: 256,
              NFC_CHECK: 512, NFKC_CHECK: 1024, CANON: 2048, COMPAT: 4096 };
  const flags = new Uint16Array(kMaxCp);
  for (const cp of allCps) {
    let f = 0;
    for (const n of ['L', 'N', 'M', 'P', 'S', 'SPACE']) if (classes[n][cp]) f |= F[n];
    if (cp !== 0x40 && !rustNotWord[cp]) f |= F.RUST_WORD;
    if (rustNumeric[cp]) f |= F.RUST_NUMERIC;
    if (assigned(cp) && jsWhite(cp)) f |= F.RUST_SPACE;
    const jamoVT = (cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11a8 && cp <= 0x11c2);
    const risky = ccc.has(cp) || secondOfPair.has(cp) || jamoVT;
    if (cp !== 0x0a && (risky || !same(cp, refNfc.get(cp)))) f |= F.NFC_CHECK;
    if (cp !== 0x0a && (risky || !same(cp, refNfkc.get(cp)))) f |= F.NFKC_CHECK;
    if (canon.has(cp)) f |= F.CANON;
    if (compat.has(cp)) f |= F.COMPAT;
    flags[cp] = f;
  }
  const cccArr = new Uint8Array(kMaxCp);
  for (const [cp, c] of ccc) cccArr[cp] = c;

  // --- emit ---------------------------------------------------------------------------------
  const kBlock = 128;
  function twoStage(name, arr, ctype) {
    const blocks = [], index = [], seen = new Map();
    for (let b = 0; b < kMaxCp / kBlock; ++b) {
      const slice = Array.from(arr.subarray(b * kBlock, (b + 1) * kBlock));
      const key = slice.join(',');
      if (!seen.has(key)) { seen.set(key, blocks.length); blocks.push(slice); }
      index.push(seen.get(key));
    }
    let s = `const uint16_t k${name}Index[${index.length}] = {\n${wrap(index)}};\n`;
    s += `const ${ctype} k${name}Blocks[${blocks.length}][${kBlock}] = {\n`;
    for (const b of blocks) s += `  {${b.join(',')}},\n`;
    return s + '};\n';
  }
  function wrap(nums, perLine = 24) {
    let s = '';
    for (let i = 0; i < nums.length; i += perLine) s += '  ' + nums.slice(i, i + perLine).join(',') + ',\n';
    return s;
  }
  function decompTable(name, map) {
    const entries = [...map.entries()].sort((a, b) => a[0] - b[0]);
    const pool = [];
    const rows = entries.map(([cp, seq]) => { const off = pool.length; pool.push(...seq); return [cp, off, seq.length]; });
    let s = `const uint32_t k${name}Pool[${pool.length}] = {\n${wrap(pool, 12)}};\n`;
    s += `const Decomposition k${name}[${rows.length}] = {\n`;
    for (let i = 0; i < rows.length; i += 6) s += '  ' + rows.slice(i, i + 6).map((r) => `{${r.join(',')}}`).join(',') + ',\n';
    return s + '};\n';
  }

  let out = `// GENERATED by tests/js/gen_unicode_tables.js from the Hugging Face tokenizers reference
// (@anush008/tokenizers, tokenizers 0.22.2) and Python unicodedata ${py.version}. Do not edit.
// Regex classes: Oniguruma's as the reference runs them; normalisation data: the reference's
// (Unicode 9.0, unicode-normalization-alignments 0.1.12). Included by unicode_data.cpp, which
// defines Decomposition and Composition and the lookups over these tables.

constexpr int kBlockShift = ${Math.log2(kBlock)};
constexpr uint32_t kBlockMask = ${kBlock - 1};

`;
  out += twoStage('Flags', flags, 'uint16_t') + '\n';
  out += twoStage('Ccc', cccArr, 'uint8_t') + '\n';
  out += decompTable('CanonicalDecomp', canon) + '\n';
  out += decompTable('CompatDecomp', compat) + '\n';
  out += `const Composition kCompositions[${compositions.length}] = {\n`;
  for (let i = 0; i < compositions.length; i += 6) out += '  ' + compositions.slice(i, i + 6).map((c) => `{${c.join(',')}}`).join(',') + ',\n';
  out += '};\n';
  process.stdout.write(out);
  log(`classes done; ccc ${ccc.size}, canonical ${canon.size}, compat ${compat.size}, compositions ${compositions.length}`);
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
