'use strict';
//  With the SSE endpoint blocked (every request to /api/dashboard/live, with
//  or without a query, aborted by the browser), the page falls back to
//  polling /api/dashboard/live/status: #conn says `polling`, and a task
//  published afterwards still appears, and still leaves when it completes.
//  A burst of more than 1000 events between two polls is applied whole.
const { Harness, check, sleep, log, waitFor } = require('./lib/harness');

const SSE_PATH = '/api/dashboard/live';
const STATUS_PATH = '/api/dashboard/live/status';

new Harness('polling').run(async (h) => {
  const up = await h.up({ extra: ['--recent-events', '5000'] });
  const pub = await h.publisher(up);
  await pub.pub('miner-poll', 'task_start', { task_id: 'poll-before', prompt: 'Before the page opened', timeout_ms: 120000 });

  const page = await h.page();
  let sseBlocked = 0;
  await page.route((url) => url.pathname === SSE_PATH, (route) => {
    sseBlocked++;
    return route.abort('connectionrefused');
  });
  const t0 = Date.now();
  await h.open(page, up, { state: 'polling', timeoutMs: 20000 });
  log(`#conn says polling ${Date.now() - t0} ms after the page was opened; ${sseBlocked} SSE request(s) aborted`);
  check(sseBlocked >= 1, 'the page never asked for the SSE stream');
  const dash = await page.evaluate(() => window.mwDashboard && ({ ...window.mwDashboard }));
  check(dash && dash.transport === 'polling', `window.mwDashboard.transport is ${dash && dash.transport}`);
  const polls = page.rec.requests.filter((u) => new URL(u).pathname === STATUS_PATH);
  check(polls.length >= 1, `the page did not request ${STATUS_PATH}`);
  log(`status requests so far: ${polls.length} (${polls.slice(-2).join(' ')})`);
  const conn = (await page.locator('#conn').textContent()).trim();
  check(conn.length > 0, '#conn has no text');
  log(`#conn says "${conn}"`);

  //  The state from before the page opened, by polling alone.
  await page.waitForSelector('#active [data-task-id="poll-before"]', { timeout: 10000 })
    .catch(() => { throw new Error('the task published before the page opened is not in #active'); });
  await h.shot(page, '1-polling');

  //  A new task appears; polling takes up to its interval, so this is not the 1 s bound.
  await page.evaluate(() => window.__mw.watch('in', '#active [data-task-id="poll-new"]'));
  const sent = await pub.pub('miner-poll', 'task_start', { task_id: 'poll-new', prompt: 'Published while polling', timeout_ms: 120000 });
  const seen = await h.hit(page, 'in', 10000, 'a task published while polling, in #active');
  log(`a task published while polling appeared after ${(seen - sent.sent_ms).toFixed(0)} ms`);
  await page.waitForFunction(() => document.getElementById('active-count').textContent.trim() === '2',
    null, { timeout: 10000 }).catch(() => { throw new Error('#active-count is not 2 with two active tasks'); });
  const ev = page.locator(`#events [data-type="task_start"][data-ts="${sent.ts}"]`);
  await ev.waitFor({ timeout: 10000 }).catch(() => { throw new Error('the new task_start is not in #events'); });

  //  And its completion.
  await page.evaluate(() => window.__mw.watch('out', '#active [data-task-id="poll-new"]', false));
  const done = await pub.pub('miner-poll', 'task_complete', { task_id: 'poll-new', success: true, response_time: 2.5 });
  const gone = await h.hit(page, 'out', 10000, 'the completed task leaving #active while polling');
  log(`a task completed while polling left #active after ${(gone - done.sent_ms).toFixed(0)} ms`);
  check(await page.getAttribute('#conn', 'data-state') === 'polling', 'the page left polling while SSE is blocked');
  await h.shot(page, '2-polling-updated');

  //  A burst of more than 1000 events between two polls, with a broker ring
  //  of 5000 (--recent-events): the page asks for what the ring holds after
  //  its last event, so the oldest events of the burst are applied one by
  //  one too. Here the first one is a failed task, whose toast shows it.
  let held = 0;
  let hold = true;
  await page.route((url) => url.pathname === STATUS_PATH, (route) => {
    if (!hold) return route.fallback();
    held++;
    return route.abort('connectionrefused');
  });
  await waitFor(() => held > 0, 10000, 'a poll held back');
  await pub.pub('miner-poll', 'task_start', { task_id: 'burst-fail', prompt: 'First of the burst', timeout_ms: 120000 });
  await pub.pub('miner-poll', 'task_complete', { task_id: 'burst-fail', success: false, error: 'failed at the start of a burst' });
  const BURST = 700;
  for (let i = 0; i < BURST; i++) {
    await pub.pub('miner-poll', 'task_start', { task_id: `burst-${i}`, prompt: 'Burst', timeout_ms: 120000 });
    await pub.pub('miner-poll', 'task_complete', { task_id: `burst-${i}`, success: true, response_time: 0.5 });
  }
  hold = false;
  log(`published ${2 * BURST + 2} events while ${held} polls were held back`);
  await page.waitForSelector('#toasts .toast[data-kind="failed"]', { timeout: 15000 })
    .catch(() => { throw new Error('no toast for the failed task at the start of a burst of more than 1000 events'); });
  const limits = page.rec.requests.filter((u) => new URL(u).pathname === STATUS_PATH)
    .map((u) => new URL(u).searchParams.get('limit')).filter((l) => l !== null);
  check(limits.length && limits[limits.length - 1] === '5000', `the polls asked for limit=${limits.slice(-1)}, not the ring's 5000`);
  await h.shot(page, '3-burst');

  //  Nothing required here: does it return to SSE once the stream is back?
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  const back = await h.connState(page, 'sse', 15000).then((ms) => `after ${ms} ms`, () => 'not within 15 s');
  log(`info: with SSE unblocked the page went back to sse ${back}`);
  await sleep(100);
});
