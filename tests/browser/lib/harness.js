'use strict';
//  The browser tests' harness: `minerwatch up` on free loopback ports, a
//  publisher (lib/pub.py, Debian's python3-zmq and python3-msgpack), and
//  Debian's chromium driven by playwright-core. Every wait is bounded; every
//  child process is stopped when a test ends, passes or fails.
//
//  A test script is run as
//    node test_X.js --minerwatch PATH --python PATH --chromium PATH
//                   --artifacts DIR [--broker PATH --gateway PATH] [--deadline S]
//  (--broker and --gateway: minerwatch-broker and minerwatch-gateway, for the
//  tests that run them as separate daemons)
//  and exits 0 when it passed, 1 when it failed (with a message saying what),
//  2 for a bad command line.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const BROWSER_DIR = path.resolve(__dirname, '..');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-extensions', '--disable-component-update',
  '--no-first-run'];

class Fail extends Error {}

function check (cond, what) {
  if (!cond) throw new Fail(what);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function log (...args) {
  const t = new Date().toISOString().slice(11, 23);
  console.log(`[${t}]`, ...args);
}

function usage (msg) {
  process.stderr.write(`error: ${msg}\nusage: node ${path.basename(process.argv[1])} ` +
    '--minerwatch PATH --python PATH --chromium PATH --artifacts DIR\n' +
    '       [--broker PATH --gateway PATH] [--deadline S]\n');
  process.exit(2);
}

function parseArgs () {
  const opts = { deadline: 170 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!['minerwatch', 'broker', 'gateway', 'python', 'chromium', 'artifacts', 'deadline'].includes(key)) {
      usage(`unknown argument '${argv[i]}'`);
    }
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    opts[key] = argv[++i];
  }
  for (const key of ['minerwatch', 'python', 'chromium', 'artifacts']) {
    if (!opts[key]) usage(`--${key} is required`);
  }
  opts.deadline = Number(opts.deadline);
  if (!(opts.deadline > 0)) usage('--deadline takes a number of seconds');
  return opts;
}

//  n distinct free TCP ports on 127.0.0.1 (all held until all are chosen).
async function freePorts (n) {
  const servers = [];
  const ports = [];
  for (let i = 0; i < n; i++) {
    const srv = net.createServer();
    await new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', resolve);
    });
    servers.push(srv);
    ports.push(srv.address().port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

//  GET a URL on loopback; resolves { status, body } or rejects (bounded).
function httpGet (url, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

//  Poll fn() until it returns a truthy value; throw Fail(what) after timeoutMs.
async function waitFor (fn, timeoutMs, what, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      if (err instanceof Fail) throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Fail(`${what}: not within ${timeoutMs} ms` +
        (last instanceof Error ? ` (last error: ${last.message})` : ''));
    }
    await sleep(intervalMs);
  }
}

//  A child process whose output goes to a log file and a short in-memory tail.
class Child {
  constructor (h, name, cmd, args) {
    this.name = name;
    this.tail = [];
    this.logPath = path.join(h.opts.artifacts, `${h.name}-${name}.log`);
    this.logFile = fs.openSync(this.logPath, 'a');
    fs.writeSync(this.logFile, `\n$ ${cmd} ${args.join(' ')}\n`);
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
      this.proc.on('error', (err) => {
        this.spawnError = err;
        this.exitCode = -1;
        resolve({ code: -1, signal: null, error: err });
      });
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      stream.on('data', (chunk) => this._out(chunk));
    }
    h.children.add(this);
  }

  _out (chunk) {
    try { fs.writeSync(this.logFile, chunk); } catch (_) { /* closed */ }
    const lines = chunk.toString().split('\n').filter((l) => l && !l.startsWith('E '));
    this.tail.push(...lines);
    if (this.tail.length > 40) this.tail.splice(0, this.tail.length - 40);
  }

  running () {
    return this.exitCode === undefined;
  }

  //  Signal, wait up to timeoutMs, then SIGKILL. Resolves the exit status.
  async stop (signal = 'SIGTERM', timeoutMs = 15000) {
    if (this.running()) {
      this.proc.kill(signal);
      const t = setTimeout(() => { if (this.running()) this.proc.kill('SIGKILL'); }, timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    try { fs.closeSync(this.logFile); } catch (_) { /* closed */ }
    return { code: this.exitCode, signal: this.exitSignal };
  }
}

//  `minerwatch up` on loopback ports; ports survive a restart.
class Up {
  constructor (h, { ports, stateFile, extra = [] } = {}) {
    this.h = h;
    [this.http, this.ingest] = ports;
    this.stateFile = stateFile;
    this.extra = extra;
    this.base = `http://127.0.0.1:${this.http}`;
    this.url = `${this.base}/api/dashboard`;
    this.endpoint = `tcp://127.0.0.1:${this.ingest}`;
    this.starts = 0;
  }

  async start (timeoutMs = 30000) {
    const args = ['up', '--http', `127.0.0.1:${this.http}`, '--ingest',
      `@tcp://127.0.0.1:${this.ingest}`, '--publish', 'none', '--snapshot', 'none'];
    if (this.stateFile) args.push('--state-file', this.stateFile);
    args.push(...this.extra);
    const deadline = Date.now() + timeoutMs;
    //  A restart on the same ports: start again while the old sockets let go.
    for (;;) {
      this.child = new Child(this.h, `up${this.starts ? this.starts + 1 : ''}`,
        this.h.opts.minerwatch, args);
      while (this.child.running()) {
        try {
          const r = await httpGet(`${this.base}/healthz`, 1000);
          if (r.status === 200 && JSON.parse(r.body).broker_up === true) break;
        } catch (_) { /* not listening yet */ }
        if (Date.now() >= deadline) {
          await this.child.stop('SIGKILL');
          throw new Fail(`minerwatch up: /healthz did not say the broker is up within ${timeoutMs} ms`);
        }
        await sleep(100);
      }
      if (this.child.running()) break;
      if (Date.now() >= deadline) {
        throw new Fail(`minerwatch up exited (${this.child.exitCode}) at start: ` +
          this.child.tail.slice(-5).join(' | '));
      }
      await sleep(300);
    }
    this.starts++;
    log(`minerwatch up ready: ${this.url} ingest ${this.endpoint}`);
  }

  async stop (signal = 'SIGTERM') {
    return this.child ? this.child.stop(signal) : { code: 0 };
  }
}

//  lib/pub.py: one miner-side publisher, commands as JSON lines.
class Publisher {
  constructor (h, endpoint) {
    this.child = new Child(h, 'pub', h.opts.python, [path.join(__dirname, 'pub.py'), endpoint]);
    this.waiting = [];
    this.onEvent = null;
    this.rl = readline.createInterface({ input: this.child.proc.stdout });
    this.rl.on('line', (line) => {
      if (line.startsWith('E ')) {
        if (this.onEvent) {
          const [ts, type, behind] = line.slice(2).split(' ');
          this.onEvent(Number(ts), type, Number(behind));
        }
        return;
      }
      const w = this.waiting.shift();
      if (w) w.resolve(line);
    });
    this.child.exited.then(() => {
      for (const w of this.waiting.splice(0)) {
        w.reject(new Fail(`the publisher (lib/pub.py) exited: ${this.child.tail.join(' | ')}`));
      }
    });
  }

  async request (cmd, timeoutMs = 15000) {
    check(this.child.running(), 'the publisher (lib/pub.py) is not running: ' +
      this.child.tail.join(' | '));
    const reply = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.child.proc.stdin.write(JSON.stringify(cmd) + '\n');
    let timer;
    const line = await Promise.race([reply, new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Fail(`the publisher did not answer ${cmd.op} ` +
        `within ${timeoutMs} ms`)), timeoutMs);
    })]).finally(() => clearTimeout(timer));
    const obj = JSON.parse(line);
    check(obj.ok, `the publisher's ${cmd.op} failed: ${obj.error}`);
    return obj;
  }

  //  Until the broker is subscribed (at start) or, given the count of an
  //  earlier ready(), subscribed again (after a restart). Resolves the count.
  async ready (timeoutMs = 15000, after = -1) {
    const r = await this.request({ op: 'wait', timeout: timeoutMs / 1000, after }, timeoutMs + 5000);
    this.subs = r.subs;
    return r.subs;
  }

  //  One event; resolves { ts (the event's ts in ms), sent_ms (clock after the send) }.
  async pub (miner, type, fields = {}) {
    return this.request({ op: 'pub', miner, type, fields });
  }
}

//  Installed in the page before its own scripts: records #conn's states, CSP
//  violations, and when watched selectors appear or disappear (a
//  MutationObserver, so the time is the DOM change's, in the page's clock).
function pageInit (opts) {
  const mw = {
    conn: [],
    csp: [],
    watches: {},
    hits: {},
    watch (key, selector, present = true) {
      this.watches[key] = { selector, present };
      this._check();
    },
    _check () {
      const conn = document.getElementById('conn');
      const state = conn ? conn.getAttribute('data-state') : null;
      const last = this.conn.length ? this.conn[this.conn.length - 1].state : undefined;
      if (state !== last) this.conn.push({ state, t: Date.now() });
      for (const key of Object.keys(this.watches)) {
        const w = this.watches[key];
        if ((document.querySelector(w.selector) !== null) === w.present) {
          this.hits[key] = Date.now();
          delete this.watches[key];
        }
      }
    }
  };
  Object.defineProperty(window, '__mw', { value: mw });
  document.addEventListener('securitypolicyviolation', (e) => {
    mw.csp.push({
      directive: e.violatedDirective,
      blocked: e.blockedURI,
      source: e.sourceFile,
      line: e.lineNumber,
      sample: e.sample
    });
  });
  if (opts.observe) {
    new MutationObserver(() => mw._check()).observe(document, {
      subtree: true, childList: true, attributes: true, characterData: true
    });
  }
}

class Harness {
  constructor (name) {
    this.name = name;
    this.opts = parseArgs();
    this.children = new Set();
    this.ups = [];
    this.pages = [];
    this.browser = null;
    this.shots = [];
  }

  //  The checks every test needs before it can start, failing (not skipping).
  preflight () {
    const major = Number(process.versions.node.split('.')[0]);
    check(major >= 18, `Node.js ${process.versions.node} is too old: playwright-core 1.61 needs 18 or later`);
    try {
      fs.accessSync(this.opts.chromium, fs.constants.X_OK);
    } catch (_) {
      throw new Fail(`no chromium at ${this.opts.chromium}: install Debian's chromium ` +
        '(apt-get install chromium; deploy/test.sh does). These tests never download a browser.');
    }
    try {
      this.pw = require(require.resolve('playwright-core', { paths: [BROWSER_DIR] }));
    } catch (_) {
      throw new Fail(`playwright-core is not installed in ${BROWSER_DIR}: run ` +
        `'npm ci' there (deploy/test.sh does)`);
    }
    try {
      fs.accessSync(this.opts.minerwatch, fs.constants.X_OK);
    } catch (_) {
      throw new Fail(`no minerwatch program at ${this.opts.minerwatch}: build it first`);
    }
    fs.mkdirSync(this.opts.artifacts, { recursive: true });
    for (const f of fs.readdirSync(this.opts.artifacts)) {
      if (f.startsWith(`${this.name}-`)) fs.rmSync(path.join(this.opts.artifacts, f));
    }
  }

  async ports (n) {
    return freePorts(n);
  }

  async up (opts = {}) {
    const up = new Up(this, { ports: opts.ports || await freePorts(2), ...opts });
    this.ups.push(up);
    await up.start();
    return up;
  }

  //  At the end of a passing test: every `minerwatch up` still running
  //  exits 0 on SIGTERM (in a sanitizer build: no leak, no error report).
  async stopUps () {
    await Promise.all(this.pages.map((p) => p.close().catch(() => {})));
    for (const up of this.ups) {
      if (up.child && up.child.running()) {
        const st = await up.stop('SIGTERM');
        check(st.code === 0, `minerwatch up exited with ${st.code} (signal ${st.signal}) on SIGTERM; ` +
          `see ${up.child.logPath}`);
      }
    }
  }

  //  Any other child process: spawn('name', [program, ...args]).
  spawn (name, argv) {
    return new Child(this, name, argv[0], argv.slice(1));
  }

  //  A publisher to up.endpoint (`minerwatch up`, or { endpoint } of a broker).
  async publisher (up) {
    const pub = new Publisher(this, up.endpoint);
    await pub.ready();
    return pub;
  }

  async launch () {
    if (!this.browser) {
      this.browser = await this.pw.chromium.launch({
        executablePath: this.opts.chromium, headless: true, args: CHROMIUM_ARGS, timeout: 60000
      });
      log(`chromium ${this.browser.version()}`);
    }
    return this.browser;
  }

  //  A fresh page that records console messages, page errors, requests and
  //  CSP violations. opts: viewport, observe (default true).
  async page (opts = {}) {
    const browser = await this.launch();
    const context = await browser.newContext({
      viewport: opts.viewport || { width: 1440, height: 900 },
      deviceScaleFactor: opts.deviceScaleFactor || 1,
      isMobile: !!opts.isMobile,
      hasTouch: !!opts.hasTouch,
      serviceWorkers: 'block'
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    const rec = { console: [], errors: [], requests: [] };
    page.on('console', (m) => rec.console.push({ type: m.type(), text: m.text(), t: Date.now() }));
    page.on('pageerror', (e) => rec.errors.push(String(e && e.stack ? e.stack : e)));
    page.on('request', (r) => {
      if (rec.requests.length < 5000) rec.requests.push(r.url());
    });
    await page.addInitScript(pageInit, { observe: opts.observe !== false });
    page.rec = rec;
    this.pages.push(page);
    return page;
  }

  //  Open the dashboard and, unless told otherwise, wait for its SSE stream.
  async open (page, up, { state = 'sse', timeoutMs = 15000 } = {}) {
    await page.goto(up.url, { waitUntil: 'domcontentloaded', timeout: 30000 });
    if (state) await this.connState(page, state, timeoutMs);
  }

  //  Wait until #conn has data-state `state`; resolves the time taken (ms).
  async connState (page, state, timeoutMs) {
    const t0 = Date.now();
    try {
      await page.waitForFunction((s) => {
        const c = document.getElementById('conn');
        return c && c.getAttribute('data-state') === s;
      }, state, { timeout: timeoutMs, polling: 50 });
    } catch (err) {
      const now = await page.evaluate(() => {
        const c = document.getElementById('conn');
        return c ? `data-state=${JSON.stringify(c.getAttribute('data-state'))}` : 'no #conn element';
      }).catch(() => 'page unavailable');
      throw new Fail(`#conn did not reach data-state="${state}" within ${timeoutMs} ms (${now})`);
    }
    return Date.now() - t0;
  }

  //  Wait until the watched key (window.__mw.watch) hit; resolves its page time.
  async hit (page, key, timeoutMs, what) {
    try {
      const h = await page.waitForFunction((k) => window.__mw.hits[k], key,
        { timeout: timeoutMs, polling: 25 });
      return h.jsonValue();
    } catch (_) {
      throw new Fail(`${what}: not within ${timeoutMs} ms`);
    }
  }

  async shot (page, step, opts = {}) {
    const file = path.join(this.opts.artifacts, `${this.name}-${step}.png`);
    try {
      await page.screenshot({ path: file, timeout: 20000, ...opts });
      this.shots.push(file);
    } catch (err) {
      log(`screenshot ${step} failed: ${err.message}`);
    }
  }

  //  What every test asserts at its end, for every page: no uncaught script
  //  error and no Content-Security-Policy violation.
  async pageChecks () {
    for (const page of this.pages) {
      const rec = page.rec;
      let csp = [];
      try { csp = await page.evaluate(() => window.__mw.csp); } catch (_) { /* closed */ }
      const cspConsole = rec.console.filter((m) => /Content Security Policy|Refused to (execute|load|apply|connect|evaluate)/i.test(m.text));
      check(rec.errors.length === 0, `uncaught error in the page: ${rec.errors[0]}`);
      check(csp.length === 0, `Content-Security-Policy violation in the page: ${JSON.stringify(csp[0])}`);
      check(cspConsole.length === 0, `Content-Security-Policy message on the console: ${cspConsole.length ? cspConsole[0].text : ''}`);
    }
  }

  _saveConsole () {
    this.pages.forEach((page, i) => {
      const file = path.join(this.opts.artifacts, `${this.name}-console${i ? i + 1 : ''}.txt`);
      const lines = page.rec.console.map((m) => `${new Date(m.t).toISOString()} ${m.type}: ${m.text}`)
        .concat(page.rec.errors.map((e) => `pageerror: ${e}`));
      try { fs.writeFileSync(file, lines.join('\n') + '\n'); } catch (_) { /* best effort */ }
    });
  }

  async cleanup () {
    const t0 = Date.now();
    this._saveConsole();
    if (this.browser) {
      await Promise.race([this.browser.close().catch(() => {}), sleep(10000)]);
    }
    const t1 = Date.now();
    await Promise.all([...this.children].map((c) => c.stop('SIGTERM', 5000)));
    if (Date.now() - t0 > 3000) {
      log(`cleanup took ${Date.now() - t0} ms (closing chromium ${t1 - t0} ms)`);
    }
  }

  //  Run body(h); print PASS/FAIL; exit 0/1. Everything ends by --deadline.
  async run (body) {
    const t0 = Date.now();
    let failure = null;
    const timer = setTimeout(() => {
      //  The last resort: never leave a child behind.
      console.log(`FAIL ${this.name}: the test did not finish within ${this.opts.deadline} s`);
      for (const c of this.children) if (c.running()) c.proc.kill('SIGKILL');
      this._saveConsole();
      process.exit(1);
    }, this.opts.deadline * 1000);
    try {
      this.preflight();
      await body(this);
      await this.pageChecks();
      await this.stopUps();
    } catch (err) {
      failure = err;
      for (const [i, page] of this.pages.entries()) {
        if (!page.isClosed()) await this.shot(page, `failure${i ? i + 1 : ''}`);
      }
    }
    await this.cleanup().catch((err) => log(`cleanup: ${err.message}`));
    clearTimeout(timer);
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (this.shots.length) log(`screenshots: ${this.shots.join(' ')}`);
    if (failure) {
      const msg = failure instanceof Fail ? failure.message : (failure.stack || String(failure));
      console.log(`FAIL ${this.name} (${secs} s): ${msg}`);
      for (const c of this.children) {
        if (c.tail.length) console.log(`  ${c.name} said: ${c.tail.slice(-8).join('\n    ')}`);
      }
      process.exit(1);
    }
    console.log(`PASS ${this.name} (${secs} s)`);
    process.exit(0);
  }
}

module.exports = { Harness, Fail, check, sleep, log, waitFor, httpGet };
