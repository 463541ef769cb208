// The browser test of `rlft serve` (run by tests/browser/serve_browser.sh, ctest serve_browser):
// a real headless Chromium, driven by playwright-core, against a live `rlft serve` on
// loopback. Signs in with a token, labels five comparisons (by keyboard and by click),
// checks the labels in the store, opens a run's chart page and checks the chart's points,
// and that the page refreshes while the run writes. Screenshots go to OUT_DIR.
//
//   node tests/js/serve_browser.js RLFT_BINARY OUT_DIR
'use strict';
const {spawn, execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const {chromium} = require('playwright-core');

const [rlft, outDir] = process.argv.slice(2);
if (!rlft || !outDir) throw new Error('usage: node serve_browser.js RLFT_BINARY OUT_DIR');
fs.mkdirSync(outDir, {recursive: true});
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rlft-serve-browser-'));
const store = path.join(work, 'rlft.db');
const N_STEPS = 9;

function sql(text) {
  return execFileSync('sqlite3', ['-batch', store], {input: text, encoding: 'utf8'}).trim();
}
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok   ' + what);
}

function seed() {
  const token = execFileSync(rlft, ['serve', 'token', 'add', 'alice', '--store', store], {encoding: 'utf8'}).trim();
  let s = "BEGIN; INSERT INTO runs (name, kind, status, config, config_hash, git_revision, started_at) " +
      "VALUES ('browser-run', 'train', 'running', 'seed: 1', '', '', strftime('%s','now'));\n";
  for (let step = 1; step <= N_STEPS; ++step) {
    s += `INSERT INTO metrics VALUES (1, 'reward/mean', ${step}, ${0.1 * step}, 0);\n`;
    s += `INSERT INTO metrics VALUES (1, 'kl', ${step}, ${0.01 * step}, 0);\n`;
    for (let e = 0; e < 4; ++e) {
      s += `INSERT INTO metrics VALUES (1, 'moe/load/layer0/expert${e}', ${step}, ${e === 0 ? 0.1 : 0.3}, 0);\n`;
    }
  }
  for (let p = 0; p < 3; ++p) {
    for (let i = 0; i < 4; ++i) {
      const completion = p === 0 && i === 0 ? "<script>alert(1)</script><b>bold?</b>" : `answer ${p}-${i}`;
      s += "INSERT INTO rollouts (run_id, step, prompt_index, sample_index, prompt, completion, reward, reward_parts, " +
           `advantage, finish_reason, policy_version) VALUES (1, 5, ${p}, ${i}, 'Prompt ${p}: add 2 and ${p}', ` +
           `'${completion}', ${i}, '{"answer": ${i}}', ${i - 1.5}, 'stop', 5);\n`;
    }
  }
  sql(s + 'COMMIT;');
  return token;
}

function startServe() {
  return new Promise((resolve, reject) => {
    const child = spawn(rlft, ['serve', '--store', store, '--port', '0', '--refresh-s', '1'],
                        {stdio: ['ignore', 'pipe', 'inherit']});
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) resolve({child, url: m[1]});
    });
    child.on('exit', (code) => reject(new Error('rlft serve exited with ' + code + ': ' + out)));
  });
}

async function main() {
  const token = seed();
  const {child, url} = await startServe();
  const profile = fs.mkdtempSync(path.join(work, 'profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: {width: 1200, height: 900},
  });
  const page = context.pages()[0] || await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const jsErrors = [];
  page.on('pageerror', (e) => jsErrors.push(String(e)));
  const shot = (name) => page.screenshot({path: path.join(outDir, name + '.png'), fullPage: true});
  try {
    // Sign in.
    const first = await page.goto(url);
    check(first.status() === 401, 'the dashboard without a token answers 401 with the sign-in form');
    await shot('01-sign-in');
    await page.fill('input[name="token"]', token);
    await Promise.all([page.waitForNavigation(), page.click('#login-form button[type="submit"]')]);
    check((await page.textContent('#annotator')) === 'alice', 'signed in as alice');
    check(await page.isVisible('text=browser-run'), 'the run is listed');
    await shot('02-runs');

    // Label five comparisons: keyboard 1, keyboard 2, click tie, reason + keyboard x, click A.
    await page.goto(url + 'label?source=run:1');
    check((await page.textContent('#left')).includes('<script>alert(1)</script><b>bold?</b>'),
          'a completion with <script> shows as text');
    check((await page.$$('#left b')).length === 1, 'no markup from the completion became an element');
    await shot('03-label');
    const steps = [
      async () => page.keyboard.press('1'),
      async () => page.keyboard.press('2'),
      async () => page.click('button[value="tie"]'),
      async () => {
        await page.keyboard.press('r');
        await page.keyboard.type('both miss the point');
        await page.keyboard.press('Escape');
        await page.keyboard.press('x');
      },
      async () => page.click('button[value="a"]'),
    ];
    for (let i = 0; i < steps.length; ++i) {
      const before = await page.getAttribute('input[name="rollout_a"]', 'value');
      await Promise.all([page.waitForNavigation(), steps[i]()]);
      check((await page.getAttribute('#progress', 'data-done')) === String(i + 1), `label ${i + 1} saved`);
      const after = await page.getAttribute('input[name="rollout_a"]', 'value');
      check(after !== before, `label ${i + 1}: the next comparison is shown`);
    }
    await shot('04-after-five-labels');
    const rows = sql("SELECT annotator || '|' || choice || '|' || reason FROM feedback_labels ORDER BY id;").split('\n');
    check(JSON.stringify(rows) === JSON.stringify(['alice|chosen|', 'alice|rejected|', 'alice|tie|',
                                                   'alice|both_bad|both miss the point', 'alice|chosen|']),
          'the five labels are in the store: ' + rows.join(', '));
    const linked = sql('SELECT count(*) FROM feedback_labels l JOIN rollouts a ON a.id = l.rollout_a ' +
                       'JOIN rollouts b ON b.id = l.rollout_b WHERE b.sample_index = a.sample_index + 1;');
    check(linked === '5', 'each label names two rollouts of one prompt group');

    // The chart page: one vertex per logged step, and it follows the run as it writes.
    await page.goto(url + 'runs/1');
    const line = 'polyline[data-metric="reward/mean"]';
    check((await page.getAttribute(line, 'data-points')) === String(N_STEPS), `the reward chart has ${N_STEPS} points`);
    const vertices = (await page.getAttribute(line, 'points')).trim().split(/\s+/).length;
    check(vertices === N_STEPS, `its polyline has ${N_STEPS} vertices`);
    check((await page.getAttribute('svg.heatmap[data-layer="0"]', 'data-columns')) === String(N_STEPS),
          `the expert-load heat map of layer 0 has ${N_STEPS} columns`);
    await shot('05-run-charts');
    sql(`INSERT INTO metrics VALUES (1, 'reward/mean', ${N_STEPS + 1}, 2.0, 0);`);
    await page.waitForFunction((sel) => document.querySelector(sel).getAttribute('data-points') === '10', line,
                               {timeout: 10000});
    check(true, 'the chart page picked up a newly logged step without a reload');
    await shot('06-run-charts-refreshed');

    check(dialogs.length === 0, 'no script from rollout text ran (no dialogs)');
    check(jsErrors.length === 0, 'no JavaScript errors: ' + jsErrors.join('; '));
  } catch (e) {
    await shot('failure').catch(() => {});
    throw e;
  } finally {
    await context.close();
    child.kill('SIGTERM');
    fs.rmSync(work, {recursive: true, force: true});
  }
  console.log(`serve browser test passed; screenshots in ${outDir}`);
}

main().catch((e) => {
  console.error('serve browser test FAILED: ' + (e && e.stack || e));
  process.exit(1);
});
