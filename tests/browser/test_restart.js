'use strict';
//  The gateway restarts under an open page, twice.
//  1. `minerwatch up` gets SIGTERM: #conn goes `down` (red); it starts again
//     on the same ports with its --state-file: #conn goes back to `sse`
//     (green) by itself; the task from before is still shown (restored),
//     tasks published after the restart show.
//  2. The same, but the page is kept from reconnecting (its requests to
//     /api/dashboard/live* aborted) until the restarted gateway has moved on:
//     a task started and one completed meanwhile. Once let through, the page
//     goes back to `sse` and catches up: the new task shown, the completed
//     one gone, the counts right.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Harness, check, sleep, log, waitFor, httpGet } = require('./lib/harness');

new Harness('restart').run(async (h) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mw-browser-restart-'));
  let up = null;
  try {
    up = await h.up({ stateFile: path.join(dir, 'state'), extra: ['--save-interval', '1'] });
    const pub = await h.publisher(up);
    const page = await h.page();
    await h.open(page, up);

    await page.evaluate(() => window.__mw.watch('a', '#active [data-task-id="restart-a"]'));
    const a = await pub.pub('miner-restart', 'task_start', { task_id: 'restart-a', prompt: 'Before the restart', timeout_ms: 300000 });
    const aSeen = await h.hit(page, 'a', 10000, 'the first task in #active');
    log(`task before the restart appeared after ${(aSeen - a.sent_ms).toFixed(0)} ms`);
    await h.shot(page, '1-before');

    //  Stop the gateway: the page must say so.
    const subs = await pub.ready();
    const t0 = Date.now();
    const st = await up.stop('SIGTERM');
    check(st.code === 0, `minerwatch up exited with ${st.code} (signal ${st.signal}) on SIGTERM`);
    log(`minerwatch up stopped in ${Date.now() - t0} ms`);
    const downMs = await h.connState(page, 'down', 20000);
    log(`#conn went down ${downMs} ms after the gateway had exited`);
    const dash = await page.evaluate(() => window.mwDashboard && ({ ...window.mwDashboard }));
    check(dash && dash.transport === 'down', `window.mwDashboard.transport is ${dash && dash.transport} while the gateway is down`);
    check(await page.locator('#active [data-task-id="restart-a"]').count() === 1,
      'the page dropped its last known state while the gateway is down');
    log(`#conn text while down: "${(await page.locator('#conn').textContent()).trim()}"`);
    await h.shot(page, '2-down');
    await sleep(2000); // down for a while: the page keeps retrying

    //  Start it again on the same ports; publish while the page reconnects.
    const t1 = Date.now();
    await up.start();
    await pub.ready(15000, subs);
    const c = await pub.pub('miner-restart', 'task_start', { task_id: 'restart-c', prompt: 'While the page reconnects', timeout_ms: 300000 });
    const stateNow = await page.getAttribute('#conn', 'data-state');
    log(`gateway back after ${Date.now() - t1} ms; a task published then (the page was ${stateNow})`);
    const backMs = await h.connState(page, 'sse', 30000);
    log(`#conn back to sse ${Date.now() - t1} ms after the restart began (${backMs} ms after the publish)`);
    const transitions = await page.evaluate(() => window.__mw.conn.map((x) => x.state));
    log(`#conn states: ${transitions.join(' -> ')}`);

    //  Caught up: the restored task and the one published meanwhile.
    await page.waitForSelector('#active [data-task-id="restart-c"]', { timeout: 5000 })
      .catch(() => { throw new Error('the task published while the page reconnected is not in #active 5 s after it went back to sse'); });
    await page.locator(`#events [data-type="task_start"][data-ts="${c.ts}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Error('the task_start published while the page reconnected is not in #events'); });
    check(await page.locator('#active [data-task-id="restart-a"]').count() === 1,
      'the task from before the restart (restored from --state-file) is not in #active');

    //  And live again.
    await page.evaluate(() => window.__mw.watch('b', '#active [data-task-id="restart-b"]'));
    const b = await pub.pub('miner-restart', 'task_start', { task_id: 'restart-b', prompt: 'After the restart', timeout_ms: 300000 });
    const bSeen = await h.hit(page, 'b', 5000, 'a task published after the restart, in #active');
    log(`task after the restart appeared after ${(bSeen - b.sent_ms).toFixed(0)} ms`);
    await page.locator(`#events [data-type="task_start"][data-ts="${b.ts}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Error('the task_start published after the restart is not in #events'); });
    await page.waitForFunction(() => document.getElementById('active-count').textContent.trim() === '3',
      null, { timeout: 5000 }).catch(() => { throw new Error('#active-count is not 3 after the restart'); });
    const after = await page.evaluate(() => ({ ...window.mwDashboard }));
    check(after.transport === 'sse', `window.mwDashboard.transport is ${after.transport} after the restart`);
    await h.shot(page, '3-after');

    //  2. A restart the page misses part of.
    const subs2 = await pub.ready();
    check((await up.stop('SIGTERM')).code === 0, 'minerwatch up did not exit 0 on the second SIGTERM');
    await h.connState(page, 'down', 20000);
    const live = (url) => url.pathname.startsWith('/api/dashboard/live');
    let blocked = 0;
    await page.route(live, (route) => { blocked++; return route.abort('connectionrefused'); });
    await up.start();
    await pub.ready(15000, subs2);
    const d = await pub.pub('miner-restart', 'task_start', { task_id: 'restart-d', prompt: 'Missed by the page', timeout_ms: 300000 });
    await pub.pub('miner-restart', 'task_complete', { task_id: 'restart-a', success: true, response_time: 12.5 });
    const status = await waitFor(async () => {
      const st = JSON.parse((await httpGet(`${up.base}/api/dashboard/live/status`)).body);
      const ids = st.active_tasks.map((t) => t.task_id).sort().join(',');
      return ids === 'restart-b,restart-c,restart-d' && st;
    }, 10000, 'the restarted gateway showing restart-b, -c and -d active (restored, then updated)');
    await sleep(1000);
    check(await page.getAttribute('#conn', 'data-state') === 'down', 'the page left down while its requests were aborted');
    check(await page.locator('#active [data-task-id="restart-a"]').count() === 1, 'the page changed while it could not reach the gateway');
    const t2 = Date.now();
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    log(`second restart: ${blocked} requests aborted; let through`);
    const back2 = await h.connState(page, 'sse', 30000);
    log(`#conn back to sse ${back2} ms after the page was let through`);
    await page.waitForFunction(() => {
      const ids = [...document.querySelectorAll('#active [data-task-id]')].map((r) => r.getAttribute('data-task-id')).sort().join(',');
      return ids === 'restart-b,restart-c,restart-d' &&
        document.getElementById('active-count').textContent.trim() === '3';
    }, null, { timeout: 5000 }).catch(async () => {
      const ids = await page.locator('#active [data-task-id]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-task-id')));
      throw new Error(`after reconnecting the page shows [${ids}] in #active, the gateway [restart-b, restart-c, restart-d]`);
    });
    log(`caught up ${Date.now() - t2} ms after the page was let through (gateway at id ${status.id})`);
    await page.locator(`#events [data-type="task_start"][data-ts="${d.ts}"]`).waitFor({ timeout: 5000 })
      .catch(() => { throw new Error('the task_start the page missed is not in #events after it caught up'); });
    await h.shot(page, '4-caught-up');
    //  minerwatch up writes its state file every second and on SIGTERM:
    //  stop it before its directory goes (else a save can land in the
    //  middle of the removal).
    check((await up.stop('SIGTERM')).code === 0, 'minerwatch up did not exit 0 on the last SIGTERM');
  } finally {
    if (up && up.child && up.child.running()) await up.stop('SIGKILL').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
