'use strict';
//  The dashboard beyond the live list: the miner filter narrows #active (and
//  new tasks of other miners stay out of it); clicking a task opens #timeline
//  with that task's events, #timeline-close closes it; a failed task_complete
//  and an error event each raise a .toast; the headline numbers, the
//  validator table and the sparklines are there; #banner is hidden while
//  nothing is wrong.
const { Harness, check, sleep, log, httpGet, waitFor } = require('./lib/harness');

const HK1 = '5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX';
const HK2 = '5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw';

async function visibleRows (page) {
  return page.locator('#active [data-task-id]').evaluateAll((rs) => rs
    .filter((r) => r.checkVisibility())
    .map((r) => ({ id: r.getAttribute('data-task-id'), miner: r.getAttribute('data-miner') })));
}

async function waitRows (page, want, what) {
  const deadline = Date.now() + 5000;
  let rows;
  for (;;) {
    rows = await visibleRows(page);
    const ids = rows.map((r) => r.id).sort().join(',');
    if (ids === [...want].sort().join(',')) return rows;
    if (Date.now() > deadline) {
      throw new Error(`${what}: #active shows [${ids}], expected [${[...want].sort().join(',')}]`);
    }
    await sleep(50);
  }
}

new Harness('features').run(async (h) => {
  const up = await h.up();
  const pub = await h.publisher(up);
  const page = await h.page();
  await h.open(page, up);
  check(await page.locator('#banner').evaluate((b) => b.hidden), '#banner is shown while nothing is wrong');

  await pub.pub('miner-alpha', 'validator_connection', { validator_ip: '45.22.240.79', validator_hotkey: HK1 });
  await pub.pub('miner-alpha', 'task_start', { task_id: 'f-a1', prompt: 'Login to example.com', validator_ip: '45.22.240.79', validator_hotkey: HK1, timeout_ms: 120000 });
  await pub.pub('miner-alpha', 'task_step', { task_id: 'f-a1', step: 'processing' });
  await pub.pub('miner-alpha', 'actions_generated', { task_id: 'f-a1', action_count: 9, action_type: 'click' });
  await pub.pub('miner-alpha', 'task_step', { task_id: 'f-a1', step: 'generating' });
  await pub.pub('miner-alpha', 'task_start', { task_id: 'f-a2', prompt: 'Search for shoes', validator_ip: '45.22.240.80', validator_hotkey: HK2, timeout_ms: 90000 });
  await pub.pub('miner-beta', 'task_start', { task_id: 'f-b1', prompt: 'Book a table', validator_ip: '45.22.240.80', validator_hotkey: HK2 });
  await waitRows(page, ['f-a1', 'f-a2', 'f-b1'], 'three tasks of two miners');

  //  .deadline with timeout_ms, not without.
  const dl = await page.locator('#active [data-task-id="f-a1"] .deadline').textContent();
  check(dl.trim().length > 0, '.deadline is empty for a task with timeout_ms');
  const noDl = page.locator('#active [data-task-id="f-b1"] .deadline');
  check(await noDl.count() === 0 || (await noDl.textContent()).trim() === '',
    `.deadline shows '${await noDl.count() && await noDl.textContent()}' for a task without timeout_ms`);

  //  The miner filter.
  const options = await page.locator('#miner-filter option').evaluateAll((os) => os.map((o) => ({ v: o.value, t: o.textContent.trim() })));
  log(`#miner-filter: ${JSON.stringify(options)}`);
  check(options.length >= 3 && options[0].v === '' && /all miners/i.test(options[0].t),
    `the first option of #miner-filter is not "All miners" with value "": ${JSON.stringify(options[0])}`);
  check(options.some((o) => o.v === 'miner-alpha') && options.some((o) => o.v === 'miner-beta'),
    '#miner-filter does not offer both miners');
  await page.selectOption('#miner-filter', 'miner-alpha');
  let rows = await waitRows(page, ['f-a1', 'f-a2'], 'filtered to miner-alpha');
  check(rows.every((r) => r.miner === 'miner-alpha'), 'a row of another miner is shown under the miner-alpha filter');
  await h.shot(page, '1-filter-alpha');
  //  While filtered: a new beta task stays out, a new alpha task comes in.
  await pub.pub('miner-beta', 'task_start', { task_id: 'f-b2', prompt: 'Fill in the form', timeout_ms: 120000 });
  await pub.pub('miner-alpha', 'task_start', { task_id: 'f-a3', prompt: 'Open the invoice', timeout_ms: 120000 });
  rows = await waitRows(page, ['f-a1', 'f-a2', 'f-a3'], 'filtered, after a task of each miner');
  const evMiners = await page.locator('#events [data-id]').evaluateAll((rs) => rs
    .filter((r) => r.checkVisibility()).map((r) => r.textContent));
  check(!evMiners.some((t) => t.includes('f-b2')), 'a miner-beta event is shown in #events under the miner-alpha filter');
  await page.selectOption('#miner-filter', '');
  await waitRows(page, ['f-a1', 'f-a2', 'f-a3', 'f-b1', 'f-b2'], 'back to all miners');

  //  The timeline of one task.
  await page.locator('#active [data-task-id="f-a1"] .task-id').click();
  const timeline = page.locator('#timeline');
  await timeline.waitFor({ state: 'visible', timeout: 5000 })
    .catch(() => { throw new Error('clicking task f-a1 did not show #timeline'); });
  await page.waitForFunction(() => document.querySelectorAll('#timeline [data-type]').length >= 4,
    null, { timeout: 5000 }).catch(() => {});
  const types = await page.locator('#timeline [data-type]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-type')));
  log(`#timeline of f-a1: ${types.join(', ')}`);
  for (const t of ['task_start', 'task_step', 'actions_generated']) {
    check(types.includes(t), `#timeline of f-a1 has no ${t} row: [${types.join(', ')}]`);
  }
  check(types.filter((t) => t === 'task_step').length === 2, `#timeline of f-a1 shows ${types.filter((t) => t === 'task_step').length} task_step rows, it had 2`);
  check(types.length === 4, `#timeline of f-a1 lists ${types.length} events; the task had 4`);
  check((await timeline.textContent()).includes('f-a1'), '#timeline does not name the task');
  await h.shot(page, '2-timeline');
  await page.locator('#timeline-close').click();
  await timeline.waitFor({ state: 'hidden', timeout: 5000 })
    .catch(() => { throw new Error('#timeline-close did not close #timeline'); });

  //  Toasts: a failed task and an error event.
  const before = await page.locator('#toasts .toast').count();
  await pub.pub('miner-alpha', 'task_complete', { task_id: 'f-a2', success: true, response_time: 4.5 });
  await pub.pub('miner-beta', 'task_complete', { task_id: 'f-b1', success: false, error: 'validator timed out', response_time: 30.5 });
  await page.waitForSelector('#toasts .toast[data-kind="failed"]', { timeout: 5000 })
    .catch(() => { throw new Error('a failed task_complete raised no .toast[data-kind="failed"]'); });
  const failed = await page.locator('#toasts .toast[data-kind="failed"]').last().textContent();
  log(`failed toast: ${failed.trim()}`);
  check(failed.includes('f-b1') || failed.includes('validator timed out'), `the failed toast names neither the task nor its error: '${failed.trim()}'`);
  await pub.pub('miner-alpha', 'error', { task_id: 'f-a1', error_message: 'browser crashed', error_type: 'browser' });
  await page.waitForSelector('#toasts .toast[data-kind="error"]', { timeout: 5000 })
    .catch(() => { throw new Error('an error event raised no .toast[data-kind="error"]'); });
  const error = await page.locator('#toasts .toast[data-kind="error"]').last().textContent();
  check(error.includes('browser crashed'), `the error toast does not show the message: '${error.trim()}'`);
  check(await page.locator('#toasts .toast').count() >= before + 2, 'fewer than two new toasts');
  const okToasts = await page.locator('#toasts .toast').evaluateAll((ts) => ts.filter((t) => /f-a2/.test(t.textContent)).length);
  check(okToasts === 0, 'a successful task raised a toast');
  await h.shot(page, '3-toasts');

  //  Headline numbers, validators, sparklines.
  await sleep(1500);
  const stats = {};
  for (const s of ['tasks-per-min', 'success-rate', 'p50', 'p95', 'cache-hit-rate', 'errors', 'lost']) {
    const el = page.locator(`#stats [data-stat="${s}"]`);
    check(await el.count() === 1, `#stats has no single [data-stat="${s}"]`);
    stats[s] = (await el.textContent()).trim();
  }
  log(`#stats: ${JSON.stringify(stats)}`);
  check(/50/.test(stats['success-rate']), `success-rate shows '${stats['success-rate']}' with one success and one failure`);
  //  The page counts what the broker counts (a failed task is an error too),
  //  so its errors agree with the status JSON without waiting for a refresh.
  const st = JSON.parse((await httpGet(`${up.base}/api/dashboard/live/status`)).body).stats;
  check(String(st.errors) === stats.errors,
    `#stats errors shows '${stats.errors}', the status JSON says ${st.errors}`);
  //  The validator table is redrawn at most once a second.
  await waitFor(() => page.locator('#validators tbody [data-validator]').count().then((n) => n === 2), 5000,
    '#validators showing 2 rows');
  const validators = await page.locator('#validators tbody [data-validator]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-validator')));
  log(`#validators: ${validators.join(', ')}`);
  check(validators.length === 2, `#validators has ${validators.length} rows for 2 validators`);
  for (const id of ['#spark-throughput', '#spark-latency']) {
    const tag = await page.locator(id).evaluate((e) => e.tagName.toLowerCase() + (e.querySelector('svg') ? '>svg' : ''));
    check(/svg|canvas/.test(tag), `${id} is a <${tag}>, not an inline SVG`);
  }
  check(await page.locator('#banner').evaluate((b) => b.hidden), '#banner is shown while nothing is wrong');
  await h.shot(page, '4-stats');
});
