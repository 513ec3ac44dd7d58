'use strict';
//  Validator- and miner-supplied text is shown as text, never run: a prompt
//  holding `<img src=x onerror=...>` and `<script>`, the same in a validator
//  hotkey, a miner name, a step, an error message and a failed task's error.
//  Each shows literally (in .prompt, #events, the toasts, the validator
//  table, the miner filter, the timeline); no element is injected, nothing
//  is requested for the injected <img>, window.__pwned stays undefined, and
//  the page causes no Content-Security-Policy violation (the harness checks
//  that for every test).
const { Harness, check, sleep, log } = require('./lib/harness');

const PROMPT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
const HOTKEY = '<img src=x onerror="window.__pwned=3">';
const ERROR_MSG = '<img src=x onerror="window.__pwned=4"><script>window.__pwned=5</script>';
const FAIL_ERR = '<script>window.__pwned=6</script><img src=x onerror="window.__pwned=7">';
const MINER = '<img src=x onerror=window.__pwned=8>';
const STEP = '<b id=injected>bold</b><svg onload="window.__pwned=9">';
const URL_ = '"><img src=x onerror="window.__pwned=10">';
const TASK = 'xss-"><img src=x onerror=window.__pwned=11>';

new Harness('xss').run(async (h) => {
  const up = await h.up();
  const pub = await h.publisher(up);
  const page = await h.page();
  await h.open(page, up);

  await page.evaluate((t) => window.__mw.watch('in', `#active [data-task-id="${CSS.escape(t)}"]`), TASK);
  await pub.pub(MINER, 'validator_connection', { validator_ip: '45.22.240.79', validator_hotkey: HOTKEY, endpoint: URL_ });
  await pub.pub(MINER, 'task_start', { task_id: TASK, prompt: PROMPT, url: URL_, validator_ip: '45.22.240.79', validator_hotkey: HOTKEY, timeout_ms: 120000 });
  await pub.pub(MINER, 'task_step', { task_id: TASK, step: STEP, details: { note: PROMPT } });
  await h.hit(page, 'in', 10000, 'the task with the hostile prompt in #active');
  await page.waitForFunction((s) => {
    const r = document.querySelector(`#active [data-task-id="${CSS.escape(s)}"] .step`);
    return r && r.textContent.includes('<b id=injected>');
  }, TASK, { timeout: 5000 }).catch(() => { throw new Error('.step does not show the hostile step as text'); });

  const row = page.locator(`#active [data-task-id="${TASK.replace(/"/g, '\\"')}"]`);
  check(await row.count() === 1, 'the hostile task id did not round-trip through data-task-id');
  const prompt = (await row.locator('.prompt').textContent()).trim();
  check(prompt === PROMPT, `.prompt shows '${prompt}', not the literal prompt`);
  check(await row.getAttribute('data-miner') === MINER, `data-miner is '${await row.getAttribute('data-miner')}', not the literal miner name`);
  //  Long ids are shortened ("first 8…"): what shows must be the id's own text.
  const shownId = (await row.locator('.task-id').textContent()).trim().replace(/…$/, '');
  check(shownId.length >= 8 && TASK.startsWith(shownId), `.task-id shows '${shownId}', not the hostile task id as text`);
  const validator = await row.locator('.validator').textContent();
  check(validator.includes('<img') || validator.includes('45.22.240.79'), `.validator shows '${validator}'`);

  //  Its timeline shows the hostile step as text too.
  await row.locator('.task-id').click();
  const timeline = page.locator('#timeline');
  await timeline.waitFor({ state: 'visible', timeout: 5000 })
    .catch(() => { throw new Error('clicking the task did not show #timeline'); });
  await page.waitForFunction(() => document.querySelectorAll('#timeline [data-type]').length >= 2,
    null, { timeout: 5000 }).catch(() => { throw new Error('#timeline lists fewer than 2 events of the task'); });
  const tl = await timeline.textContent();
  check(tl.includes('<b id=injected>') || tl.includes(PROMPT), `#timeline shows neither the step nor the prompt as text: '${tl.trim().slice(0, 300)}'`);
  await h.shot(page, '1-timeline');
  await page.keyboard.press('Escape');
  await timeline.waitFor({ state: 'hidden', timeout: 5000 })
    .catch(() => { throw new Error('Escape did not close #timeline'); });

  //  An error event and a failed task: toasts and #events rows, as text.
  await pub.pub(MINER, 'error', { task_id: TASK, error_message: ERROR_MSG, error_type: '<i>ValueError</i>' });
  await page.waitForSelector('#toasts .toast[data-kind="error"]', { timeout: 5000 })
    .catch(() => { throw new Error('an error event raised no .toast[data-kind="error"]'); });
  const errToast = await page.locator('#toasts .toast[data-kind="error"]').last().textContent();
  check(errToast.includes(ERROR_MSG), `the error toast does not show the message as text: '${errToast.trim()}'`);
  await h.shot(page, '2-error-toast');
  await pub.pub(MINER, 'task_complete', { task_id: TASK, success: false, error: FAIL_ERR, response_time: 1.25 });
  await page.waitForSelector('#toasts .toast[data-kind="failed"]', { timeout: 5000 })
    .catch(() => { throw new Error('a failed task_complete raised no .toast[data-kind="failed"]'); });
  const failToast = await page.locator('#toasts .toast[data-kind="failed"]').last().textContent();
  log(`failed toast: ${failToast.trim()}`);
  check(failToast.includes(FAIL_ERR) || failToast.includes('<img src=x'),
    `the failed-task toast shows neither the error nor the task id as text: '${failToast.trim()}'`);
  await page.waitForSelector('#events [data-type="task_complete"]', { timeout: 5000 });
  const errRow = await page.locator('#events [data-type="error"]').first().textContent();
  check(errRow.includes(ERROR_MSG), `the error row in #events does not show the message as text: '${errRow.trim()}'`);
  const startRow = await page.locator('#events [data-type="task_start"]').first().textContent();
  log(`task_start row: ${startRow.trim()}`);
  const failRow = await page.locator('#events [data-type="task_complete"]').first().textContent();
  log(`task_complete row: ${failRow.trim()}`);

  //  The validator table and the miner filter. The page redraws the table
  //  at most once a second: wait for its rows.
  await page.waitForSelector('#validators tbody [data-validator]', { timeout: 5000 });
  const vtext = await page.locator('#validators').textContent();
  //  Long hotkeys are shortened ("first 6…last 5"): their start shows as text.
  check(vtext.includes(HOTKEY.slice(0, 6)), `the validator table does not show the hostile hotkey as text: '${vtext.trim().slice(0, 200)}'`);
  const vkeys = await page.locator('#validators tbody [data-validator]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-validator')));
  check(vkeys.includes(HOTKEY), `no #validators row has data-validator = the hostile hotkey: ${JSON.stringify(vkeys)}`);
  const options = await page.locator('#miner-filter option').evaluateAll((os) => os.map((o) => o.textContent));
  check(options.some((o) => o.includes(MINER)), `the miner filter does not list the hostile miner name as text: ${JSON.stringify(options)}`);

  await h.shot(page, '3-after-failure');

  //  Nothing ran, nothing was injected, nothing was fetched for it.
  await sleep(1000);
  const dom = await page.evaluate(() => ({
    pwned: window.__pwned,
    imgs: [...document.querySelectorAll('img')].map((i) => i.getAttribute('src')),
    scripts: [...document.scripts].map((s) => s.getAttribute('src') || `inline:${s.textContent.slice(0, 40)}`),
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).map((e) => e.outerHTML.slice(0, 80)),
    injected: document.querySelectorAll('#injected, svg[onload]').length +
      [...document.querySelectorAll('i')].filter((e) => e.textContent === 'ValueError').length
  }));
  log(`scripts in the page: ${dom.scripts.join(' ')}`);
  check(dom.pwned === undefined, `window.__pwned is ${dom.pwned}: injected code ran`);
  check(dom.imgs.every((s) => s !== 'x'), `an injected <img src=x> is in the DOM (${dom.imgs.length} img elements)`);
  check(dom.scripts.every((s) => !s.startsWith('inline:')), `an inline <script> is in the DOM: ${dom.scripts.filter((s) => s.startsWith('inline:'))}`);
  check(dom.handlers.length === 0, `elements with on* attributes: ${dom.handlers.join(' | ')}`);
  check(dom.injected === 0, 'an injected element (b#injected, svg[onload], <i>ValueError</i>) is in the DOM');
  const fetched = page.rec.requests.filter((u) => /\/x$/.test(new URL(u).pathname));
  check(fetched.length === 0, `the page requested ${fetched[0]}: an injected <img> was rendered`);
});
