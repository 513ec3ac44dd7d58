'use strict';
//  The gateway up, its broker gone: minerwatch-broker and minerwatch-gateway
//  as separate daemons; the broker gets SIGTERM. The gateway says so (its
//  SSE `broker` frame, /healthz degraded) and the page shows it: #conn goes
//  `down` and #banner appears with text, the last state stays on screen.
//  The broker starts again on the same ports: #conn back to `sse`, #banner
//  hidden, and a task published then appears.
const { Harness, check, sleep, log, waitFor, httpGet } = require('./lib/harness');

function brokerArgs (h, ports) {
  return [h.opts.broker, '--ingest', `@tcp://127.0.0.1:${ports[0]}`, '--publish', `@tcp://127.0.0.1:${ports[1]}`,
    '--snapshot', `@tcp://127.0.0.1:${ports[2]}`, '--quiet'];
}

//  Start the broker; a restart on the same ports tries again while the old
//  sockets let go.
async function startBroker (h, ports, name) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const broker = h.spawn(name, brokerArgs(h, ports));
    await sleep(700);
    if (broker.running()) return broker;
    check(Date.now() < deadline, `minerwatch-broker exited at start (${broker.exitCode}): ${broker.tail.slice(-3).join(' | ')}`);
  }
}

async function health (base) {
  try {
    return JSON.parse((await httpGet(`${base}/healthz`, 1000)).body);
  } catch (_) {
    return null;
  }
}

new Harness('broker_down').run(async (h) => {
  const [ingest, updates, snapshot, http] = await h.ports(4);
  check(h.opts.broker && h.opts.gateway, 'this test needs --broker and --gateway');
  const brokerBin = h.opts.broker;
  const gatewayBin = h.opts.gateway;
  let broker = await startBroker(h, [ingest, updates, snapshot], 'broker');
  const gateway = h.spawn('gateway', [gatewayBin, '--updates', `>tcp://127.0.0.1:${updates}`,
    '--snapshot', `>tcp://127.0.0.1:${snapshot}`, '--http', `127.0.0.1:${http}`,
    '--heartbeat-timeout', '1500', '--quiet']);
  const base = `http://127.0.0.1:${http}`;
  await waitFor(async () => {
    check(gateway.running(), `minerwatch-gateway exited (${gateway.exitCode}): ${gateway.tail.slice(-3).join(' | ')}`);
    const hz = await health(base);
    return hz && hz.broker_up;
  }, 30000, `${brokerBin} and ${gatewayBin}: /healthz with the broker up`);

  const up = { url: `${base}/api/dashboard`, base };
  const pub = await h.publisher({ endpoint: `tcp://127.0.0.1:${ingest}` });
  const subs = pub.subs;
  const page = await h.page();
  await h.open(page, up);
  check(await page.locator('#banner').evaluate((b) => b.hidden), '#banner is shown while the broker is up');
  await pub.pub('miner-bd', 'task_start', { task_id: 'bd-1', prompt: 'Before the broker went away', timeout_ms: 300000 });
  await page.waitForSelector('#active [data-task-id="bd-1"]', { timeout: 10000 });

  //  The broker goes away; the gateway stays.
  const t0 = Date.now();
  check((await broker.stop('SIGTERM')).code === 0, 'minerwatch-broker did not exit 0 on SIGTERM');
  await waitFor(async () => { const hz = await health(base); return hz && hz.broker_up === false; }, 15000,
    'the gateway\'s /healthz saying the broker is down');
  const gwMs = Date.now() - t0;
  await h.connState(page, 'down', 10000);
  const downMs = Date.now() - t0;
  await page.locator('#banner').waitFor({ state: 'visible', timeout: 5000 })
    .catch(() => { throw new Error('#banner did not appear while the gateway\'s broker link is down'); });
  const banner = (await page.locator('#banner').textContent()).trim();
  log(`broker stopped: gateway noticed after ${gwMs} ms, #conn down after ${downMs} ms; #banner: "${banner}"`);
  check(banner.length > 0, '#banner is empty while the broker link is down');
  check(await page.locator('#active [data-task-id="bd-1"]').count() === 1, 'the page dropped the last state while the broker is down');
  const dash = await page.evaluate(() => ({ ...window.mwDashboard }));
  check(dash.transport === 'down', `window.mwDashboard.transport is ${dash.transport} while the broker link is down`);
  await h.shot(page, '1-broker-down');

  //  The broker comes back on the same ports.
  const t1 = Date.now();
  broker = await startBroker(h, [ingest, updates, snapshot], 'broker2');
  await waitFor(async () => { const hz = await health(base); return hz && hz.broker_up; }, 20000,
    'the gateway\'s /healthz saying the broker is back');
  await h.connState(page, 'sse', 20000);
  log(`broker restarted: #conn back to sse after ${Date.now() - t1} ms`);
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: 10000 })
    .catch(() => { throw new Error('#banner stayed after the broker link came back'); });
  await pub.ready(15000, subs);
  await page.evaluate(() => window.__mw.watch('bd-2', '#active [data-task-id="bd-2"]'));
  const sent = await pub.pub('miner-bd', 'task_start', { task_id: 'bd-2', prompt: 'After the broker came back', timeout_ms: 300000 });
  const seen = await h.hit(page, 'bd-2', 5000, 'a task published after the broker came back, in #active');
  log(`a task after the broker came back appeared after ${(seen - sent.sent_ms).toFixed(0)} ms`);
  await h.shot(page, '2-broker-back');
  await page.close();
  check((await gateway.stop('SIGTERM')).code === 0, 'minerwatch-gateway did not exit 0 on SIGTERM');
  check((await broker.stop('SIGTERM')).code === 0, 'minerwatch-broker did not exit 0 on SIGTERM');
});
