'use strict';
//  A busy dashboard (`minerwatch simulate`, 40 events/s from 4 miners) on a
//  laptop (1440x900) and a phone (390x844): screenshots of both, every
//  section shown, no horizontal scrolling on the phone, and nothing above
//  the lists (#conn, #stats, the top of #active) moves as events arrive.
const { Harness, check, sleep, log } = require('./lib/harness');

const SECTIONS = ['#conn', '#stats', '#active', '#events', '#validators', '#miner-filter'];

//  Top and left of each watched element, every 100 ms for ms.
async function watchBoxes (page, ms) {
  return page.evaluate(async ([sels, ms]) => {
    const boxes = {};
    for (const s of sels) boxes[s] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (const s of sels) {
        const r = document.querySelector(s).getBoundingClientRect();
        boxes[s].push([Math.round(r.top + window.scrollY), Math.round(r.left)]);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const out = {};
    for (const s of sels) {
      const tops = boxes[s].map((b) => b[0]);
      const lefts = boxes[s].map((b) => b[1]);
      out[s] = { top: [Math.min(...tops), Math.max(...tops)], left: [Math.min(...lefts), Math.max(...lefts)] };
    }
    return out;
  }, [['#conn', '#stats', '#active', '#events'], ms]);
}

async function checkView (h, page, up, name) {
  await h.open(page, up);
  await page.evaluate(() => {
    window.__cls = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
    }).observe({ type: 'layout-shift', buffered: false });
  });
  await page.waitForFunction(() => document.querySelectorAll('#active [data-task-id]').length >= 5 &&
    document.querySelectorAll('#events [data-id]').length >= 20, null, { timeout: 20000 })
    .catch(() => { throw new Error(`${name}: the busy dashboard shows fewer than 5 active tasks or 20 events`); });
  for (const s of SECTIONS) {
    check(await page.locator(s).count() === 1, `${name}: no ${s}`);
  }
  for (const s of ['#conn', '#active', '#events', '#stats']) {
    check(await page.locator(s).isVisible(), `${name}: ${s} is not visible`);
  }
  const moved = await watchBoxes(page, 5000);
  log(`${name}: element top/left ranges over 5 s of events: ${JSON.stringify(moved)}`);
  for (const s of ['#conn', '#stats', '#active']) {
    const m = moved[s];
    check(m.top[1] - m.top[0] <= 2 && m.left[1] - m.left[0] <= 2,
      `${name}: ${s} moved as events arrived (top ${m.top[0]}..${m.top[1]}, left ${m.left[0]}..${m.left[1]})`);
  }
  const info = await page.evaluate(() => ({
    cls: Math.round(window.__cls * 1000) / 1000,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    height: document.documentElement.scrollHeight,
    active: document.querySelectorAll('#active [data-task-id]').length,
    events: document.querySelectorAll('#events [data-id]').length
  }));
  log(`${name}: ${JSON.stringify(info)}`);
  return info;
}

new Harness('layout').run(async (h) => {
  const up = await h.up();
  const sim = h.spawn('simulate', [h.opts.minerwatch, 'simulate', '--endpoint', `>${up.endpoint}`,
    '--rate', '40', '--duration', '120', '--miners', '4', '--validators', '6', '--seed', '7', '--quiet']);
  await sleep(4000);
  check(sim.running(), `minerwatch simulate exited: ${sim.tail.join(' | ')}`);

  const laptop = await h.page({ viewport: { width: 1440, height: 900 } });
  await checkView(h, laptop, up, 'laptop');
  await h.shot(laptop, 'laptop');
  await h.shot(laptop, 'laptop-full', { fullPage: true });

  const phone = await h.page({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const info = await checkView(h, phone, up, 'phone');
  check(info.scrollWidth <= info.innerWidth + 1,
    `phone: the page is ${info.scrollWidth} px wide in a ${info.innerWidth} px viewport (horizontal scrolling)`);
  await h.shot(phone, 'phone');
  await h.shot(phone, 'phone-full', { fullPage: true });
  await sim.stop('SIGINT');
});
