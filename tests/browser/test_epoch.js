'use strict';
//  A broker history replaced under a page that resumes by id. `minerwatch
//  up` without a state file stops; the page, kept from reconnecting, holds
//  its last id L. A new `up` on the same ports (a new epoch, ids from 1
//  again) takes a task and then enough events that its ids pass L, so the
//  gateway would accept `last_event_id=L` as a resume. Let through, the page
//  must notice the other epoch and load a snapshot: the old tasks gone, the
//  new task (whose id is below L) shown.
const { Harness, check, log, waitFor } = require('./lib/harness');

new Harness('epoch').run(async (h) => {
  const up = await h.up();
  const pub = await h.publisher(up);
  const page = await h.page();
  await h.open(page, up);

  for (let i = 0; i < 20; i++) {
    await pub.pub('miner-old', 'task_start', { task_id: `old-${i}`, prompt: 'First history', timeout_ms: 300000 });
  }
  await page.waitForSelector('#active [data-task-id="old-19"]', { timeout: 10000 });
  const last = await page.evaluate(() => window.mwDashboard.lastId);
  log(`first history: the page applied up to id ${last}`);

  //  The page may not reconnect until the new history has passed its id.
  const block = (route) => route.abort();
  await page.route('**/api/dashboard/live?**', block);
  await page.route('**/api/dashboard/live', block);
  await page.route('**/api/dashboard/live/status**', block);
  await page.route('**/healthz', block);
  const subs = await pub.ready();
  const st = await up.stop('SIGTERM');
  check(st.code === 0, `minerwatch up exited with ${st.code} on SIGTERM`);
  await h.connState(page, 'down', 20000);

  await up.start();
  await pub.ready(15000, subs);
  await pub.pub('miner-new', 'task_start', { task_id: 'new-1', prompt: 'Second history', timeout_ms: 300000 });
  for (let i = 0; i < last + 20; i++) {
    await pub.pub('miner-new', 'cache_hit', { task_id: 'new-1', cache_type: 'page' });
  }
  let status = null;
  await waitFor(async () => {
    status = JSON.parse((await (await fetch(`${up.base}/api/dashboard/live/status?limit=1`)).text()));
    return status.recent_events.length > 0 && status.recent_events[0].id > last;
  }, 15000, `the new history's ids passing ${last}`);
  log(`second history: newest event id ${status.recent_events[0].id}, epoch ${status.epoch}`);

  await page.unrouteAll({ behavior: 'ignoreErrors' });
  await h.connState(page, 'sse', 30000);
  await waitFor(() => page.locator('#active [data-task-id="new-1"]').count().then((n) => n === 1), 10000,
    'the new history\'s task in #active');
  await waitFor(() => page.locator('#active [data-miner="miner-old"]').count().then((n) => n === 0), 10000,
    'the old history\'s tasks gone from #active');
  const dash = await page.evaluate(() => ({ ...window.mwDashboard }));
  log(`page after the switch: ${JSON.stringify(dash)}`);
  await h.shot(page, '1-new-history');
});
