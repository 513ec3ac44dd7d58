'use strict';
//  Alerts that need no broker failure: desktop notifications and silence.
//  - The browser's Notification API is recorded (an init script stands in
//    for it, permission "default" until the user clicks #notify): nothing
//    is shown before the user allows it; after the click asks and the
//    browser grants, a failed task and an error event each raise a desktop
//    notification (their text only as text), a successful task none, and
//    one within 10 s of the last is held back and counted in the next.
//  - The silence setting (#silence-s, kept in localStorage) at 3 s: a miner
//    and a validator active while the page watches, then silent, show in
//    #banner by name; Dismiss keeps it away while they stay silent, a new
//    silence brings it back; both publishing again take them out; the settings
//    control shows the stored value.
const { Harness, check, sleep, log, waitFor } = require('./lib/harness');

const HOTKEY = '5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw';

//  Runs in the page before its scripts: a Notification that records.
function fakeNotification () {
  const shown = [];
  let permission = 'default';
  function Notification (title, options) {
    shown.push({ title: String(title), body: String((options && options.body) || '') });
  }
  Object.defineProperty(Notification, 'permission', { get: () => permission });
  Notification.requestPermission = (cb) => {
    permission = 'granted';
    if (cb) cb(permission);
    return Promise.resolve(permission);
  };
  window.Notification = Notification;
  window.__notifications = shown;
}

new Harness('alerts').run(async (h) => {
  const up = await h.up();
  const pub = await h.publisher(up);
  const page = await h.page();
  await page.addInitScript(fakeNotification);
  await page.addInitScript(() => window.localStorage.setItem('minerwatch.silenceSeconds', '3'));
  await h.open(page, up);

  //  1. Before the user allows it: a toast, no desktop notification.
  await pub.pub('miner-al', 'task_start', { task_id: 'al-1', prompt: 'Before allowing', timeout_ms: 300000 });
  await pub.pub('miner-al', 'task_complete', { task_id: 'al-1', success: false, error: 'first failure' });
  await page.waitForSelector('#toasts .toast[data-kind="failed"]', { timeout: 5000 });
  check(await page.evaluate(() => window.__notifications.length) === 0,
    'a desktop notification was shown before the user allowed them');

  //  2. The user clicks the alerts button: the page asks, the browser grants.
  const btn = page.locator('#notify');
  check(await btn.isVisible(), '#notify is not shown although the browser has notifications');
  await btn.click();
  await waitFor(() => btn.textContent().then((t) => /on/i.test(t)), 5000, '#notify saying alerts are on');
  log(`#notify after the click: ${(await btn.textContent()).trim()}`);

  //  3. A failed task and an error event each notify; a success does not.
  //  (The page spaces notifications out; a burst is summed into the next.)
  await pub.pub('miner-al', 'task_start', { task_id: 'al-2', prompt: 'Succeeds', timeout_ms: 300000 });
  await pub.pub('miner-al', 'task_complete', { task_id: 'al-2', success: true, response_time: 1.5 });
  await sleep(1000);
  check(await page.evaluate(() => window.__notifications.length) === 0, 'a successful task raised a desktop notification');
  await pub.pub('miner-al', 'task_start', { task_id: 'al-3', prompt: 'Fails', timeout_ms: 300000 });
  await pub.pub('miner-al', 'task_complete', { task_id: 'al-3', success: false, error: '<b>selector</b> not found' });
  await waitFor(() => page.evaluate(() => window.__notifications.length >= 1), 5000, 'a desktop notification for the failed task');
  let shown = await page.evaluate(() => window.__notifications.slice());
  log(`notifications: ${JSON.stringify(shown)}`);
  check(shown[0].title.startsWith('minerwatch: ') && /al-3|miner-al|fail/i.test(shown[0].title + shown[0].body),
    `the notification names neither the task, the miner nor the failure: ${JSON.stringify(shown[0])}`);
  check(shown[0].body.includes('<b>selector</b> not found') || shown[0].title.includes('al-3'),
    `the failure's text is not in the notification as text: ${JSON.stringify(shown[0])}`);
  //  At most one desktop notification per 10 s: an error right now is a
  //  toast only, and the next notification says how many were held back.
  const firstAt = Date.now();
  await pub.pub('miner-al', 'error', { error_message: 'held back', error_type: 'infrastructure' });
  await page.waitForSelector('#toasts .toast[data-kind="error"]', { timeout: 5000 });
  await sleep(500);
  check(await page.evaluate(() => window.__notifications.length) === 1,
    'a second desktop notification came within the 10 s gap');
  await sleep(Math.max(0, 10500 - (Date.now() - firstAt)));
  await pub.pub('miner-al', 'error', { error_message: 'browser pool exhausted', error_type: 'infrastructure' });
  await waitFor(() => page.evaluate(() => window.__notifications.length >= 2), 5000,
    'a desktop notification for the error event after the gap');
  shown = await page.evaluate(() => window.__notifications.slice());
  log(`notifications: ${JSON.stringify(shown)}`);
  check((shown[1].title + shown[1].body).includes('browser pool exhausted'),
    `the notification does not carry the error message: ${JSON.stringify(shown[1])}`);
  check(/\+1 more/.test(shown[1].title), `the notification does not count the one held back: ${JSON.stringify(shown[1])}`);
  await h.shot(page, '1-notified');

  //  4. Silence: a miner and a validator seen while the page watches, then
  //  quiet for more than 3 s, show in the banner.
  const banner = page.locator('#banner');
  await pub.pub('miner-quiet', 'task_start', {
    task_id: 'al-q', prompt: 'Then nothing', validator_hotkey: HOTKEY, validator_ip: '45.22.240.81', timeout_ms: 300000
  });
  await page.waitForSelector('#active [data-task-id="al-q"]', { timeout: 5000 });
  const t0 = Date.now();
  await waitFor(() => banner.evaluate((b) => !b.hidden && /miner-quiet/.test(b.textContent)), 15000,
    '#banner naming miner-quiet after 3 s of silence');
  const text = (await banner.textContent()).replace(/\s+/g, ' ').trim();
  log(`banner after ${Date.now() - t0} ms: ${text}`);
  check(Date.now() - t0 >= 2000, `the banner named miner-quiet ${Date.now() - t0} ms after its event, before 3 s of silence`);
  check(/validator/i.test(text) && text.includes(HOTKEY.slice(0, 6)), `the banner does not name the silent validator: '${text}'`);
  await h.shot(page, '2-silent');

  //  Dismissed, it stays away while the same ones stay silent (their
  //  silence grows every second; the banner must not come back for that).
  await page.locator('#banner-dismiss').click();
  await waitFor(() => banner.evaluate((b) => b.hidden), 3000, '#banner hidden after Dismiss');
  await sleep(2500);
  check(await banner.evaluate((b) => b.hidden), `#banner came back after Dismiss: '${(await banner.textContent()).trim()}'`);

  //  5. miner-quiet speaks, then is silent again: a new silence, shown again.
  await pub.pub('miner-quiet', 'task_step', { task_id: 'al-q', step: 'back' });
  await waitFor(() => banner.evaluate((b) => !b.hidden && /miner-quiet/.test(b.textContent)), 15000,
    '#banner naming miner-quiet again after a new silence');
  //  Every silent one speaks: the banner goes away.
  await pub.pub('miner-quiet', 'task_step', { task_id: 'al-q', step: 'again' });
  await pub.pub('miner-al', 'validator_connection', { validator_hotkey: HOTKEY, validator_ip: '45.22.240.81' });
  await waitFor(() => banner.evaluate((b) => b.hidden || !/miner-quiet/.test(b.textContent)), 5000,
    '#banner no longer naming miner-quiet once it published again');

  //  6. The settings control shows the stored value.
  const input = page.locator('#silence-s');
  check(await input.inputValue() === '3', `#silence-s shows '${await input.inputValue()}', the stored 3`);
});
