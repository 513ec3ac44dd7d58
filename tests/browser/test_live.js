'use strict';
//  A published task appears in #active within 1 s (publish call's return to
//  the DOM change, both on this machine's clock); its .elapsed ticks; steps
//  and actions update it; a task_complete moves it out of #active within 1 s
//  and into #events as a ✅ (success) or ❌ (failure) row.
const { Harness, check, sleep, log } = require('./lib/harness');

const HOTKEY = '5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX';
const APPEAR_MS = 1000;

//  "12s", "1m 05s", "1h 02m" ... to seconds (null when the format is another).
function seconds (text) {
  const m = /^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$/.exec(text || '');
  if (!m || (!m[1] && !m[2] && !m[3])) return null;
  return (+(m[1] || 0)) * 3600 + (+(m[2] || 0)) * 60 + (+(m[3] || 0));
}

async function publishAndSee (h, page, pub, key, selector, present, event, what) {
  await page.evaluate(([k, s, p]) => window.__mw.watch(k, s, p), [key, selector, present]);
  const sent = await pub.pub(...event);
  const seen = await h.hit(page, key, 10000, what);
  const ms = seen - sent.sent_ms;
  log(`${what}: ${ms.toFixed(1)} ms after the publish returned`);
  return { sent, ms };
}

new Harness('live').run(async (h) => {
  const up = await h.up();
  const pub = await h.publisher(up);
  const page = await h.page();
  await h.open(page, up);
  check(await page.locator('#active [data-task-id]').count() === 0, '#active has rows before any task');
  await h.shot(page, '1-empty');

  //  1. A task_start appears within 1 s, with what it said.
  const task = `live-${process.pid}-a`;
  const sel = `#active [data-task-id="${task}"]`;
  const prompt = 'Login to example.com and open the settings';
  const start = await publishAndSee(h, page, pub, 'a-in', sel, true,
    ['miner-live', 'task_start', {
      task_id: task, prompt, url: 'https://example.com/login', validator_ip: '45.22.240.79',
      validator_hotkey: HOTKEY, timeout_ms: 120000
    }], 'task_start in #active');
  check(start.ms <= APPEAR_MS, `the task appeared ${start.ms.toFixed(0)} ms after publishing (at most ${APPEAR_MS})`);
  const row = page.locator(sel);
  check(await row.count() === 1, `${await row.count()} rows for task ${task} in #active`);
  check(await row.getAttribute('data-miner') === 'miner-live', `the row's data-miner is ${await row.getAttribute('data-miner')}`);
  for (const cls of ['.task-id', '.prompt', '.elapsed', '.step', '.actions', '.validator', '.deadline']) {
    check(await row.locator(cls).count() === 1, `the task row has no single ${cls} element`);
  }
  const shownId = (await row.locator('.task-id').textContent()).trim().replace(/…$/, '');
  check(shownId.length >= Math.min(8, task.length) && task.startsWith(shownId), `.task-id shows '${shownId}', not the task id ${task}`);
  check((await row.locator('.prompt').textContent()).trim() === prompt,
    `.prompt shows '${await row.locator('.prompt').textContent()}', not the prompt`);
  const validator = (await row.locator('.validator').textContent()).trim();
  check(validator.length > 0, '.validator is empty');
  check(await page.locator('#active-count').textContent().then((t) => t.trim()) === '1', '#active-count is not 1');
  const first = page.locator('#events [data-id]').first();
  check(await first.getAttribute('data-type') === 'task_start', `the newest #events row is a ${await first.getAttribute('data-type')}`);
  check(Number(await first.getAttribute('data-ts')) === start.sent.ts,
    `the newest #events row has data-ts ${await first.getAttribute('data-ts')}, the event's ts is ${start.sent.ts}`);
  check(await first.evaluate((e) => e.classList.contains('ev-task_start')), 'the task_start row has no class ev-task_start');
  const dash = await page.evaluate(() => window.mwDashboard && ({ ...window.mwDashboard }));
  check(dash && dash.transport === 'sse', `window.mwDashboard.transport is ${dash && dash.transport}`);
  check(dash.lastId >= Number(await first.getAttribute('data-id')), `mwDashboard.lastId ${dash.lastId} is below the newest row's id`);
  await h.shot(page, '2-task-active');

  //  2. Its elapsed time ticks every second.
  const samples = [];
  for (let i = 0; i < 17; i++) {
    samples.push((await row.locator('.elapsed').textContent()).trim());
    await sleep(200);
  }
  const distinct = samples.filter((s, i) => i === 0 || s !== samples[i - 1]);
  log(`.elapsed over 3.2 s: ${distinct.join(' -> ')}`);
  check(distinct.length >= 3, `.elapsed changed ${distinct.length - 1} times in 3.2 s (it ticks every second): ${samples.join(',')}`);
  const secs = distinct.map(seconds);
  if (secs.every((s) => s !== null)) {
    check(secs.every((s, i) => i === 0 || s > secs[i - 1]), `.elapsed does not count up: ${distinct.join(', ')}`);
  } else {
    log(`note: .elapsed is not in the "12s" / "1m 05s" format: ${distinct.join(', ')}`);
  }

  //  3. Steps and actions update the row.
  await pub.pub('miner-live', 'task_step', { task_id: task, step: 'navigating' });
  await pub.pub('miner-live', 'actions_generated', { task_id: task, action_count: 17, action_type: 'click' });
  await page.waitForFunction((s) => {
    const r = document.querySelector(s);
    return r && /navigating/.test(r.querySelector('.step').textContent) &&
      /17/.test(r.querySelector('.actions').textContent);
  }, sel, { timeout: 5000, polling: 50 }).catch(() => {
    throw new Error('the row did not show step "navigating" and 17 actions within 5 s');
  });

  //  4. task_complete moves it out of #active, into #events as a ✅ row.
  const done = await publishAndSee(h, page, pub, 'a-out', sel, false,
    ['miner-live', 'task_complete', { task_id: task, success: true, action_count: 17, response_time: 3.25 }],
    'successful task_complete out of #active');
  check(done.ms <= APPEAR_MS, `the completed task left #active ${done.ms.toFixed(0)} ms after publishing (at most ${APPEAR_MS})`);
  await page.waitForFunction(() => document.getElementById('active-count').textContent.trim() === '0',
    null, { timeout: 5000 }).catch(() => { throw new Error('#active-count did not go back to 0'); });
  const okRow = page.locator(`#events [data-type="task_complete"][data-ts="${done.sent.ts}"]`);
  check(await okRow.count() === 1, 'no task_complete row with the event\'s data-ts in #events');
  const okText = await okRow.textContent();
  check(okText.includes('✅'), `the successful task_complete row has no ✅: '${okText.trim()}'`);
  check(!okText.includes('❌'), 'the successful task_complete row shows ❌');
  check(await okRow.evaluate((e) => e.classList.contains('ev-task_complete')), 'the row has no class ev-task_complete');
  await h.shot(page, '3-completed');

  //  5. A failed one: out of #active, a ❌ row.
  const task2 = `live-${process.pid}-b`;
  const sel2 = `#active [data-task-id="${task2}"]`;
  const start2 = await publishAndSee(h, page, pub, 'b-in', sel2, true,
    ['miner-live', 'task_start', { task_id: task2, prompt: 'Book a table', validator_ip: '45.22.240.80', timeout_ms: 60000 }],
    'second task_start in #active');
  check(start2.ms <= APPEAR_MS, `the second task appeared ${start2.ms.toFixed(0)} ms after publishing (at most ${APPEAR_MS})`);
  const fail = await publishAndSee(h, page, pub, 'b-out', sel2, false,
    ['miner-live', 'task_complete', { task_id: task2, success: false, error: 'selector not found', response_time: 1.5 }],
    'failed task_complete out of #active');
  check(fail.ms <= APPEAR_MS, `the failed task left #active ${fail.ms.toFixed(0)} ms after publishing (at most ${APPEAR_MS})`);
  const badRow = page.locator(`#events [data-type="task_complete"][data-ts="${fail.sent.ts}"]`);
  check(await badRow.count() === 1, 'no row for the failed task_complete in #events');
  const badText = await badRow.textContent();
  check(badText.includes('❌'), `the failed task_complete row has no ❌: '${badText.trim()}'`);
  check(!badText.includes('✅'), 'the failed task_complete row shows ✅');

  //  Newest first, data-ts in order, at most 50 rows.
  const rows = await page.locator('#events [data-id]').evaluateAll((rs) => rs.map((r) => ({
    id: Number(r.getAttribute('data-id')), type: r.getAttribute('data-type'), ts: Number(r.getAttribute('data-ts'))
  })));
  log(`#events: ${rows.map((r) => `${r.id}:${r.type}`).join(' ')}`);
  check(rows.length >= 6 && rows.length <= 50, `#events has ${rows.length} rows (6 events were published)`);
  check(rows.every((r, i) => i === 0 || r.id < rows[i - 1].id), '#events is not newest first by broker id');
  await h.shot(page, '4-failed');
});
