'use strict';
//  A gateway started with --auth-token: the dashboard opened as
//  /api/dashboard?token=T passes the token on to /api/dashboard/live and
//  /api/dashboard/live/status (an EventSource cannot send a header), so it
//  goes live over SSE and shows a published task; with SSE blocked it polls
//  with the token too. Without the token the gateway lets nothing through.
const crypto = require('node:crypto');
const { Harness, check, log, httpGet } = require('./lib/harness');

new Harness('auth').run(async (h) => {
  const token = crypto.randomBytes(16).toString('hex');
  const up = await h.up({ extra: ['--auth-token', token, '--open-metrics'] });
  const pub = await h.publisher(up);
  check((await httpGet(`${up.base}/api/dashboard/live/status`)).status === 401,
    'the status JSON answered without the token');

  const page = await h.page();
  await h.open(page, { url: `${up.url}?token=${token}` });
  await page.evaluate(() => window.__mw.watch('in', '#active [data-task-id="auth-1"]'));
  const sent = await pub.pub('miner-auth', 'task_start', { task_id: 'auth-1', prompt: 'Behind a token', timeout_ms: 120000 });
  const seen = await h.hit(page, 'in', 5000, 'a task in #active on a gateway with --auth-token');
  log(`task appeared ${(seen - sent.sent_ms).toFixed(0)} ms after publishing`);
  const live = page.rec.requests.filter((u) => new URL(u).pathname.startsWith('/api/dashboard/live'));
  log(`requests to the live endpoints: ${live.map((u) => new URL(u).pathname + new URL(u).search.replace(token, 'T')).join(' ')}`);
  check(live.length >= 1 && live.every((u) => new URL(u).searchParams.get('token') === token),
    'a request to /api/dashboard/live* did not carry ?token=');
  await h.shot(page, '1-sse');

  //  Polling with the token.
  const page2 = await h.page();
  await page2.route((url) => url.pathname === '/api/dashboard/live', (route) => route.abort('connectionrefused'));
  await h.open(page2, { url: `${up.url}?token=${token}` }, { state: 'polling', timeoutMs: 20000 });
  await page2.waitForSelector('#active [data-task-id="auth-1"]', { timeout: 10000 })
    .catch(() => { throw new Error('the polling page with ?token= does not show the task'); });
  const polls = page2.rec.requests.filter((u) => new URL(u).pathname === '/api/dashboard/live/status');
  check(polls.length >= 1 && polls.every((u) => new URL(u).searchParams.get('token') === token),
    'a poll of /api/dashboard/live/status did not carry ?token=');
  await h.shot(page2, '2-polling');
});
