'use strict';
//  100 events/s for 60 s with about 500 active tasks (real lifecycles:
//  start, step, actions, step, complete, often a feedback; long timeouts so
//  none goes stale; now and then a failure or an error event, so toasts
//  come too). Every 5 s:
//  - lag: the ts of the newest event sent by then (publisher's clock) minus
//    the data-ts of the newest #events row (the page's Date.now() decides
//    "by then"; same machine, same clock): at most 1000 ms;
//  - the JS heap after a forced GC (CDP HeapProfiler.collectGarbage, then
//    Runtime.getHeapUsage), live Promise objects (Runtime.queryObjects), the
//    DOM's element count, frames rendered.
//  After 10 s of warm-up, the mean heap of the last third of the samples may
//  be at most 1.5 times that of the first third, and every sample stays
//  under 64 MB; live Promise objects and the DOM do not grow either (same
//  rule; 100 promises of slack); the page renders at most once
//  per animation frame; at the end it has applied every event. Beside each
//  sample: how late the publisher itself was against its schedule in the
//  second before (a machine too busy to publish on time shows there).
const { Harness, check, sleep, log, waitFor, httpGet } = require('./lib/harness');

const RATE = 100;
//  MW_BROWSER_LOAD_S runs it longer by hand (give --deadline to match).
const DURATION_S = Number(process.env.MW_BROWSER_LOAD_S || 60);
const ACTIVE = 500;
const SAMPLE_MS = 5000;
const LAG_MS = 1000;
const WARMUP_SAMPLES = 2;
const HEAP_CAP = 64 * 1024 * 1024;
const GROWTH = 1.5;

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mb = (b) => (b / 1048576).toFixed(1);

new Harness('load').run(async (h) => {
  const up = await h.up({ extra: ['--quiet'] });
  const pub = await h.publisher(up);
  const page = await h.page({ observe: false, viewport: { width: 1440, height: 900 } });
  await h.open(page, up);
  await page.evaluate(() => {
    window.__long = { count: 0, max: 0, total: 0 };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        window.__long.count++;
        window.__long.total += e.duration;
        window.__long.max = Math.max(window.__long.max, e.duration);
      }
    }).observe({ type: 'longtask' });
  });
  const cdp = await page.context().newCDPSession(page);
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await cdp.send('Runtime.getHeapUsage')).usedSize;
  };
  //  Live Promise objects (CDP Runtime.queryObjects): a stream reader that
  //  chains a promise per read keeps them all pending, a slow leak the heap
  //  total hides for minutes.
  const promises = async () => {
    const proto = await cdp.send('Runtime.evaluate', { expression: 'Promise.prototype', objectGroup: 'mw' });
    const found = await cdp.send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId, objectGroup: 'mw' });
    const n = await cdp.send('Runtime.callFunctionOn', {
      objectId: found.objects.objectId, functionDeclaration: 'function () { return this.length; }', returnByValue: true
    });
    await cdp.send('Runtime.releaseObjectGroup', { objectGroup: 'mw' });
    return n.result.value;
  };
  log(`heap before the load: ${mb(await heap())} MB`);

  const sent = []; // ts (ms) of every event sent, in order
  const behind = []; // how late each went out against the publisher's schedule (ms)
  pub.onEvent = (ts, type, late) => { sent.push(ts); behind.push(late); };
  //  The publisher's worst slip in the second before t: a machine too busy
  //  to publish on time shows here (the page's lag then includes it).
  const slipBefore = (t) => {
    let worst = 0;
    for (let i = sent.length - 1; i >= 0 && sent[i] > t - 1000; i--) {
      if (sent[i] <= t) worst = Math.max(worst, behind[i]);
    }
    return worst;
  };
  const newestSentBy = (t) => {
    let lo = 0;
    let hi = sent.length - 1;
    let best = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sent[mid] <= t) { best = sent[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
  };

  const load = pub.request({ op: 'load', rate: RATE, duration: DURATION_S, active: ACTIVE, miners: 5, seed: 42 },
    (DURATION_S + 60) * 1000);
  const t0 = Date.now();
  const samples = [];
  let lastRenders = null;
  console.log('   t(s)  lag(ms)  heap(MB)  promises    dom  active  rows  events-rows  applied  renders/s  pub-slip(ms)');
  for (let k = 1; k * SAMPLE_MS <= DURATION_S * 1000; k++) {
    const at = t0 + k * SAMPLE_MS - 500;
    await sleep(Math.max(0, at - Date.now()));
    const s = await page.evaluate(() => {
      const r = document.querySelector('#events [data-id]');
      return {
        now: Date.now(),
        ts: r ? Number(r.getAttribute('data-ts')) : null,
        id: r ? Number(r.getAttribute('data-id')) : null,
        active: Number(document.getElementById('active-count').textContent.trim()),
        rows: document.querySelectorAll('#active [data-task-id]').length,
        evRows: document.querySelectorAll('#events [data-id]').length,
        dom: document.getElementsByTagName('*').length,
        dash: { ...window.mwDashboard }
      };
    });
    await sleep(200); // the publisher's lines for events sent before s.now are in
    s.t = (s.now - t0) / 1000;
    s.newest = newestSentBy(s.now);
    s.lag = s.ts === null || s.newest === null ? Infinity : s.newest - s.ts;
    s.slip = slipBefore(s.now);
    s.heap = await heap();
    s.promises = await promises();
    s.rps = lastRenders ? (s.dash.renders - lastRenders.renders) / ((s.now - lastRenders.now) / 1000) : null;
    lastRenders = { renders: s.dash.renders, now: s.now };
    samples.push(s);
    console.log(`  ${s.t.toFixed(1).padStart(5)}  ${String(s.lag).padStart(7)}  ${mb(s.heap).padStart(8)}  ${String(s.promises).padStart(8)}` +
      `  ${String(s.dom).padStart(5)}  ${String(s.active).padStart(6)}  ${String(s.rows).padStart(4)}` +
      `  ${String(s.evRows).padStart(11)}  ${String(s.dash.applied).padStart(7)}` +
      `  ${s.rps === null ? '        -' : s.rps.toFixed(1).padStart(9)}  ${String(s.slip).padStart(12)}`);
    if (k === 6) await h.shot(page, '1-busy-30s');
  }
  const result = await load;
  log(`publisher: ${JSON.stringify(result)}`);
  await h.shot(page, '2-busy-60s');
  const longTasks = await page.evaluate(() => window.__long);
  log(`long tasks (>50 ms) on the page's main thread: ${longTasks.count}, max ${longTasks.max.toFixed(0)} ms, ` +
    `total ${longTasks.total.toFixed(0)} ms in ${DURATION_S} s`);

  //  The load was what it says.
  check(result.dropped === 0, `the publisher dropped ${result.dropped} events`);
  check(result.sent === RATE * DURATION_S, `the publisher sent ${result.sent} events, not ${RATE * DURATION_S}`);
  const rate = result.sent / result.elapsed_s;
  check(rate >= RATE * 0.9, `the publisher managed only ${rate.toFixed(1)} events/s: this run did not test ${RATE}/s`);
  const peak = Math.max(...samples.map((s) => s.active));
  check(peak >= ACTIVE * 0.9, `at most ${peak} active tasks were shown; the load keeps about ${ACTIVE}`);

  //  The page kept up.
  const late = samples.filter((s) => !(s.lag <= LAG_MS));
  check(late.length === 0, `the newest event shown was more than ${LAG_MS} ms behind the newest sent at ` +
    late.map((s) => `${s.t.toFixed(1)} s (${s.lag} ms; the publisher itself was up to ${s.slip} ms late then)`).join(', ') +
    `; the page's longest task took ${longTasks.max.toFixed(0)} ms`);
  check(samples.every((s) => s.evRows <= 50), `#events held more than 50 rows (${Math.max(...samples.map((s) => s.evRows))})`);
  check(samples.every((s) => s.rows === s.active), 'the #active rows and #active-count disagreed: ' +
    samples.filter((s) => s.rows !== s.active).map((s) => `${s.rows} rows, count ${s.active}`).join('; '));
  const rps = samples.filter((s) => s.rps !== null).map((s) => s.rps);
  check(Math.max(...rps) <= 65, `the page rendered up to ${Math.max(...rps).toFixed(1)} frames/s: more than one per animation frame`);

  //  Memory and DOM: flat after warm-up, bounded.
  const warm = samples.slice(WARMUP_SAMPLES);
  const third = Math.max(1, Math.floor(warm.length / 3));
  const firstHeap = mean(warm.slice(0, third).map((s) => s.heap));
  const lastHeap = mean(warm.slice(-third).map((s) => s.heap));
  log(`heap after GC: first third ${mb(firstHeap)} MB, last third ${mb(lastHeap)} MB (ratio ${(lastHeap / firstHeap).toFixed(2)}), max ${mb(Math.max(...samples.map((s) => s.heap)))} MB`);
  check(lastHeap <= GROWTH * firstHeap, `the JS heap grew from ${mb(firstHeap)} MB to ${mb(lastHeap)} MB (more than ${GROWTH}x)`);
  check(samples.every((s) => s.heap < HEAP_CAP), `the JS heap passed ${mb(HEAP_CAP)} MB: ${mb(Math.max(...samples.map((s) => s.heap)))} MB`);
  const firstP = mean(warm.slice(0, third).map((s) => s.promises));
  const lastP = mean(warm.slice(-third).map((s) => s.promises));
  log(`live Promise objects: first third ${firstP.toFixed(0)}, last third ${lastP.toFixed(0)}`);
  check(lastP <= GROWTH * firstP + 100, `live Promise objects grew from ${firstP.toFixed(0)} to ${lastP.toFixed(0)}: ` +
    'promises pile up (about one per stream read?), the heap grows with them');
  const firstDom = mean(warm.slice(0, third).map((s) => s.dom));
  const lastDom = mean(warm.slice(-third).map((s) => s.dom));
  log(`DOM elements: first third ${firstDom.toFixed(0)}, last third ${lastDom.toFixed(0)}`);
  check(lastDom <= GROWTH * firstDom, `the DOM grew from ${firstDom.toFixed(0)} to ${lastDom.toFixed(0)} elements`);

  //  And it has applied everything once the load stops. The page's lastId
  //  is its newest event's id; /healthz's last_id counts the broker's
  //  once-a-second ticks too, so the newest event is read from the status.
  const health = JSON.parse((await httpGet(`${up.base}/healthz`)).body);
  const status = JSON.parse((await httpGet(`${up.base}/api/dashboard/live/status?limit=1`)).body);
  const newest = status.recent_events.length ? status.recent_events[0].id : 0;
  check(newest > 0 && newest <= health.last_id, `newest event id ${newest}, last id ${health.last_id}`);
  await waitFor(() => page.evaluate((id) => window.mwDashboard.lastId >= id, newest), 5000,
    `the page applying every event up to broker id ${newest} (the newest event)`);
  await waitFor(() => page.evaluate((n) => Number(document.getElementById('active-count').textContent.trim()) === n &&
    document.querySelectorAll('#active [data-task-id]').length === n, status.active_task_count), 5000,
  `#active-count and the #active rows matching the ${status.active_task_count} active tasks of the status JSON`);
  const dash = await page.evaluate(() => ({ ...window.mwDashboard }));
  log(`page: ${JSON.stringify(dash)}; broker: newest event ${newest}, last_id ${health.last_id}, ${status.active_task_count} active, ` +
    `${status.stats.lost_events} lost`);
  check(dash.transport === 'sse', `the page ended on ${dash.transport}, not sse`);
});
