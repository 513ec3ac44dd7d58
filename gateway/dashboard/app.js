// minerwatch dashboard: the live page of a gateway.
//
// Data: the SSE stream /api/dashboard/live (a snapshot, then every event,
// `reset` to start over, `broker` for the gateway's link to its broker) and
// the JSON document /api/dashboard/live/status (polled when SSE does not
// work, and fetched every few seconds beside SSE for the numbers only the
// broker computes: rates, percentiles, validators). State is the snapshot
// plus every event with a broker id above the last one applied.
//
// Rendering: events only change the model and mark what is dirty; one
// requestAnimationFrame callback updates the DOM, reusing rows by key.
// Everything kept is bounded (events, finished tasks, timelines, validators,
// miners, sparkline buckets, toasts), so memory stays flat however long the
// page runs. Text from miners and validators goes into the page only as
// textContent or a title attribute, never as HTML.
'use strict';

(function () {
  // ------------------------------------------------------------------------
  // Bounds and timings

  const EVENTS_SHOWN = 50; // rows in Recent Events
  const EVENT_RING = 500; // events kept (for the filter and the timelines)
  const FINISHED_MAX = 300; // finished tasks kept (their timelines open)
  const TIMELINE_MAX = 100; // events kept per task
  const TIMELINE_TOTAL = 10000; // events kept in all timelines
  const MAP_MAX = 1000; // miners, validators (the broker's own bounds)
  const TOASTS_MAX = 3;
  const TOAST_MS = 6000;
  const NOTIFY_GAP_MS = 10000; // at most one desktop notification per gap
  const POLL_MS = 1500; // polling interval when SSE is unavailable
  const POLL_LIMIT_MIN = 1000; // events asked for per poll: the broker's ring,
  const POLL_LIMIT_MAX = 20000; // within these
  const REFRESH_MS = 5000; // numbers refresh beside SSE
  const SSE_RETRY_MIN_MS = 1000;
  const SSE_RETRY_MAX_MS = 15000;
  const SSE_IDLE_MS = 50000; // no byte (not even a keepalive) this long: reconnect
  const SPARK_BUCKET_MS = 10000;
  const SPARK_BUCKETS = 60; // 10 minutes
  const SILENCE_DEFAULT_S = 60;
  const SILENCE_KEY = 'minerwatch.silenceSeconds';
  const NOTIFY_KEY = 'minerwatch.notify';

  const EMOJI = {
    task_start: '📥',
    task_step: '📊',
    actions_generated: '⚡',
    task_complete: '✅',
    task_feedback: '⭐',
    validator_connection: '🔗',
    cache_hit: '💾',
    error: '❌',
  };

  // ------------------------------------------------------------------------
  // URLs: the page's ?token= goes to every request (EventSource and links
  // cannot send an Authorization header).

  const pageParams = new URLSearchParams(window.location.search);
  const token = pageParams.get('token');

  function api(path, params) {
    const url = new URL(path, window.location.origin);
    if (params)
      for (const k of Object.keys(params)) url.searchParams.set(k, String(params[k]));
    if (token !== null) url.searchParams.set('token', token);
    return url.pathname + url.search;
  }

  // ------------------------------------------------------------------------
  // The model

  const S = {
    epoch: null,
    haveState: false,
    awaitSnapshot: false, // after `reset`: events wait for the snapshot
    lastId: 0, // broker id of the newest event applied
    floor: 0, // the state reflects every broker id up to here (a document's id)
    alertedUpTo: 0, // events up to this id raised their alerts already
    applied: 0,
    renders: 0,
    bounds: { task_timeout_ms: 300000, timeout_grace_ms: 30000 },
    tasks: new Map(), // key -> active task
    finished: new Map(), // key -> finished task, oldest first (LRU)
    timelines: new Map(), // key -> events of the task, by id
    timelineTotal: 0,
    ring: [], // events, oldest first, at most EVENT_RING
    base: null, // stats of the last document
    baseId: 0, // its id: events above it count in delta
    delta: { errors: 0, started: 0, succeeded: 0, failed: 0, cache: 0, lost: 0 },
    validators: new Map(), // hotkey or IP -> validator
    miners: new Map(), // name -> miner
    link: true, // the gateway's broker link
    spark: { head: -1, start: Infinity, count: new Array(SPARK_BUCKETS).fill(0), rtSum: new Array(SPARK_BUCKETS).fill(0), rtN: new Array(SPARK_BUCKETS).fill(0) },
  };

  // Clock: broker time = Date.now() - skew. Each event's broker_ts is a
  // sample (plus transit); the smallest of the last minute wins.
  const clock = { skew: 0, known: false, winMin: Infinity, prevMin: Infinity, winStart: 0 };

  function sampleSkew(brokerMs) {
    if (typeof brokerMs !== 'number' || !isFinite(brokerMs) || brokerMs <= 0) return;
    const now = Date.now();
    const s = now - brokerMs;
    if (now - clock.winStart > 30000) {
      clock.prevMin = clock.winMin;
      clock.winMin = Infinity;
      clock.winStart = now;
    }
    if (s < clock.winMin) clock.winMin = s;
    clock.skew = Math.min(clock.winMin, clock.prevMin);
    clock.known = true;
  }

  function brokerNow() {
    return Date.now() - (clock.known ? clock.skew : 0);
  }

  function taskKey(miner, taskId) {
    return (miner || '') + '\u0000' + (taskId || '');
  }

  function validatorKey(hotkey, ip) {
    return hotkey || ip || '';
  }

  // What changed since the last frame.
  const dirty = {
    tasksAll: true, // rebuild the task rows
    tasks: new Set(), // keys of tasks whose row changes (or appears, or leaves)
    eventsAll: true,
    eventsNew: [], // events to put on top of the list, oldest first
    stats: true,
    validators: true,
    miners: true,
    timeline: false,
    tick: true,
    toasts: [],
    spark: true,
    conn: true,
    banner: true,
  };

  // At most one frame per RENDER_GAP_MS: at 100 events/s a frame shows a
  // few at once instead of repainting the lists 60 times a second.
  const RENDER_GAP_MS = 100;
  let frameAsked = false;
  let lastRender = 0;
  let lastValidators = -1e9;
  function schedule() {
    if (frameAsked) return;
    frameAsked = true;
    const wait = lastRender + RENDER_GAP_MS - performance.now();
    if (wait > 0) window.setTimeout(() => window.requestAnimationFrame(render), wait);
    else window.requestAnimationFrame(render);
  }

  // ------------------------------------------------------------------------
  // Loading a document (the snapshot, a poll, a refresh)

  function taskFromDoc(t) {
    const task = {
      key: taskKey(t.miner, t.task_id),
      task_id: String(t.task_id || ''),
      miner: String(t.miner || ''),
      prompt: String(t.prompt || ''),
      url: String(t.url || ''),
      validator_ip: String(t.validator_ip || ''),
      validator_hotkey: String(t.validator_hotkey || ''),
      start_time: num(t.start_time),
      status: String(t.status || 'active'),
      current_step: String(t.current_step || ''),
      actions_generated: num(t.actions_generated),
      steps: num(t.steps),
      events: num(t.events),
      cache_hit: !!t.cache_hit,
      started_late: !!t.started_late,
      timeout_ms: num(t.timeout_ms),
      last_seen: num(t.last_seen),
      first_id: num(t.first_id),
      last_id: num(t.last_id),
      end_time: num(t.end_time),
      response_time: typeof t.response_time === 'number' ? t.response_time : null,
      error: String(t.error || ''),
    };
    return task;
  }

  function num(v) {
    return typeof v === 'number' && isFinite(v) ? v : 0;
  }

  function validatorFromDoc(v) {
    return {
      key: validatorKey(v.hotkey, v.ip),
      hotkey: String(v.hotkey || ''),
      ip: String(v.ip || ''),
      tasks: num(v.tasks),
      successes: num(v.successes),
      failures: num(v.failures),
      connections: num(v.connections),
      feedback_count: num(v.feedback_count),
      feedback_sum: typeof v.mean_score === 'number' ? v.mean_score * num(v.feedback_count) : 0,
      response_p95: num(v.response_p95),
      response_count: num(v.response_count),
      last_seen: num(v.last_seen),
      watched: false,
      acked: false,
    };
  }

  function minerFromDoc(m) {
    return {
      name: String(m.miner || ''),
      events: num(m.events),
      active: num(m.active),
      lost: num(m.lost),
      sid: String(m.sid || ''),
      last_seq: num(m.last_seq),
      last_seen: num(m.last_seen),
      watched: false,
      acked: false,
    };
  }

  // Replace the whole state with a document (a snapshot, or the first poll).
  function fullLoad(doc) {
    const sameEpoch = S.haveState && doc.epoch === S.epoch;
    S.epoch = doc.epoch;
    if (doc.bounds) S.bounds = doc.bounds;
    sampleSkew(doc.timestamp_ms);

    // Events: keep what the page has of this history up to the snapshot.
    let events = sameEpoch ? S.ring.filter((e) => e.id <= doc.id) : [];
    const known = new Set(events.map((e) => e.id));
    const incoming = Array.isArray(doc.recent_events) ? doc.recent_events : [];
    for (let i = incoming.length - 1; i >= 0; i--) {
      const e = incoming[i];
      if (e && typeof e.id === 'number' && !known.has(e.id)) events.push(e);
    }
    events.sort((a, b) => a.id - b.id);
    if (events.length > EVENT_RING) events = events.slice(events.length - EVENT_RING);
    S.ring = events;

    // Tasks.
    const tasks = new Map();
    for (const t of doc.active_tasks || []) {
      const task = taskFromDoc(t);
      tasks.set(task.key, task);
    }
    S.tasks = tasks;
    if (!sameEpoch) S.finished = new Map();
    const history = (doc.task_history || []).slice(0, FINISHED_MAX);
    for (let i = history.length - 1; i >= 0; i--) finishedPut(taskFromDoc(history[i]));

    // Timelines: rebuilt for this history from the kept events.
    if (!sameEpoch) {
      S.timelines = new Map();
      S.timelineTotal = 0;
    }
    else
      for (const [key, list] of S.timelines) {
        const kept = list.filter((e) => e.id <= doc.id);
        S.timelineTotal -= list.length - kept.length;
        S.timelines.set(key, kept);
      }
    for (const e of events) timelineAdd(e, true);
    timelinesPrune();

    // Validators, miners.
    const watchV = S.validators;
    S.validators = new Map();
    for (const v of doc.validators || []) {
      const val = validatorFromDoc(v);
      const old = watchV.get(val.key);
      if (old && sameEpoch) {
        val.watched = old.watched;
        val.acked = old.acked;
      }
      S.validators.set(val.key, val);
    }
    const watchM = S.miners;
    S.miners = new Map();
    for (const m of doc.miners || []) {
      const miner = minerFromDoc(m);
      const old = watchM.get(miner.name);
      if (old) {
        miner.watched = old.watched;
        miner.acked = old.acked;
      }
      S.miners.set(miner.name, miner);
    }

    // Numbers.
    S.base = doc.stats || null;
    S.baseId = doc.id;
    resetDelta();

    // Sparklines: from the finished tasks the document has.
    if (!sameEpoch) {
      sparkClear();
      for (const t of doc.task_history || [])
        sparkAdd(num(t.end_time), typeof t.response_time === 'number' ? t.response_time : null);
      const nowBucket = Math.floor(brokerNow() / SPARK_BUCKET_MS);
      if (S.spark.start > nowBucket) S.spark.start = nowBucket;
    }

    // Ids count the broker's ticks too: the document's id is where the
    // state stands, its newest event is the last one applied.
    S.floor = doc.id;
    S.lastId = events.length ? events[events.length - 1].id : 0;
    // Events of the document are history: no alerts for them.
    S.alertedUpTo = sameEpoch ? Math.max(S.alertedUpTo, doc.id) : doc.id;
    S.haveState = true;
    S.awaitSnapshot = false;
    markAll();
  }

  // Merge a newer (or slightly older) document into the live state: what
  // only the broker knows (tasks gone stale or evicted, rates, percentiles,
  // validators' numbers) comes from it; events applied after its id stay.
  function mergeDoc(doc) {
    if (doc.epoch !== S.epoch) return;
    const D = doc.id;
    if (doc.bounds) S.bounds = doc.bounds;
    sampleSkew(doc.timestamp_ms);
    // Has the page applied every event the document reflects? (Its newest
    // event says; its id alone counts the broker's ticks too.) If not, the
    // stream is behind the document: a task missing from it may have
    // finished by an event still on its way.
    const recent = Array.isArray(doc.recent_events) ? doc.recent_events : [];
    const newest = recent.length && typeof recent[0].id === 'number' ? recent[0].id : 0;
    const caughtUp = newest <= Math.max(S.lastId, S.floor);
    const inDoc = new Set();
    for (const t of doc.active_tasks || []) {
      const task = taskFromDoc(t);
      inDoc.add(task.key);
      const mine = S.tasks.get(task.key);
      if (mine) {
        if (mine.last_id <= task.last_id) {
          Object.assign(mine, task);
          markTask(task.key);
        }
      }
      else {
        const fin = S.finished.get(task.key);
        if (fin && fin.last_id > D) continue; // finished after this document
        S.tasks.set(task.key, task);
        markTask(task.key);
      }
    }
    for (const [key, mine] of S.tasks) {
      if (!caughtUp) break;
      if (inDoc.has(key) || mine.last_id > D) continue;
      // The broker no longer has it active: stale or evicted.
      S.tasks.delete(key);
      mine.status = 'stale';
      finishedPut(mine);
      markTask(key);
    }
    for (const t of (doc.task_history || []).slice(0, FINISHED_MAX)) {
      const key = taskKey(t.miner, t.task_id);
      if (!S.finished.has(key) && !S.tasks.has(key)) finishedPut(taskFromDoc(t));
    }
    for (const v of doc.validators || []) {
      const val = validatorFromDoc(v);
      const old = S.validators.get(val.key);
      if (old) {
        const last = Math.max(old.last_seen, val.last_seen);
        const watched = old.watched;
        const acked = old.acked;
        Object.assign(old, val);
        old.last_seen = last;
        old.watched = watched;
        old.acked = acked;
      }
      else if (S.validators.size < MAP_MAX) S.validators.set(val.key, val);
    }
    for (const m of doc.miners || []) {
      const miner = minerFromDoc(m);
      const old = S.miners.get(miner.name);
      if (old) {
        old.events = Math.max(old.events, miner.events);
        old.active = miner.active;
        old.lost = miner.lost;
        if (miner.last_seen > old.last_seen) {
          old.last_seen = miner.last_seen;
          old.sid = miner.sid;
          old.last_seq = miner.last_seq;
        }
      }
      else if (S.miners.size < MAP_MAX) {
        S.miners.set(miner.name, miner);
        dirty.miners = true;
      }
    }
    S.base = doc.stats || S.base;
    S.baseId = D;
    resetDelta();
    dirty.stats = true;
    dirty.validators = true;
    dirty.banner = true;
    schedule();
  }

  function resetDelta() {
    const d = S.delta;
    d.errors = d.started = d.succeeded = d.failed = d.cache = d.lost = 0;
    for (const e of S.ring) if (e.id > S.baseId) countDelta(e);
  }

  // What an event adds to the document's counts (the broker's rules,
  // simplified: exact again at the next refresh).
  function countDelta(ev) {
    const d = S.delta;
    switch (ev.type) {
      case 'error': d.errors++; break;
      case 'task_start': d.started++; break;
      case 'cache_hit': d.cache++; break;
      case 'task_complete':
        // A failed task is also an error, as the broker counts it.
        if (ev.success) d.succeeded++;
        else {
          d.failed++;
          d.errors++;
        }
        break;
      default: break;
    }
  }

  function markAll() {
    dirty.tasksAll = true;
    dirty.eventsAll = true;
    dirty.eventsNew.length = 0;
    dirty.stats = dirty.validators = dirty.miners = dirty.spark = true;
    dirty.timeline = dirty.tick = dirty.banner = true;
    schedule();
  }

  // ------------------------------------------------------------------------
  // Applying one event (the broker's fold, for what the page shows)

  function applyEvent(ev) {
    if (!ev || typeof ev.id !== 'number' || ev.id <= S.lastId || ev.id <= S.floor) return;
    S.lastId = ev.id;
    S.applied++;
    sampleSkew(ev.broker_ts);
    const seen = num(ev.broker_ts) || brokerNow();

    S.ring.push(ev);
    if (S.ring.length > EVENT_RING) S.ring.splice(0, S.ring.length - EVENT_RING);
    dirty.eventsNew.push(ev);
    if (dirty.eventsNew.length > EVENTS_SHOWN * 2) dirty.eventsNew.splice(0, dirty.eventsNew.length - EVENTS_SHOWN);

    minerTouch(ev, seen);
    const key = ev.task_id !== undefined ? taskKey(ev.miner, ev.task_id) : null;
    let task = key ? S.tasks.get(key) : null;

    switch (ev.type) {
      case 'task_start': {
        if (!task) {
          task = newTask(ev, key, false);
          S.tasks.set(key, task);
          // A task id used again: its old timeline is another task's.
          const old = S.timelines.get(key);
          if (old && S.finished.has(key)) {
            S.timelineTotal -= old.length;
            S.timelines.delete(key);
          }
          S.finished.delete(key);
        }
        else if (task.started_late) {
          task.start_time = num(ev.ts) || task.start_time;
          task.started_late = false;
        }
        touchTask(task, ev, seen);
        if (ev.prompt !== undefined) task.prompt = String(ev.prompt);
        if (ev.url !== undefined) task.url = String(ev.url);
        if (ev.validator_ip !== undefined) task.validator_ip = String(ev.validator_ip);
        if (ev.validator_hotkey !== undefined) task.validator_hotkey = String(ev.validator_hotkey);
        if (typeof ev.timeout_ms === 'number') task.timeout_ms = ev.timeout_ms;
        const v = validatorTouch(ev.validator_hotkey, ev.validator_ip, seen);
        if (v) v.tasks++;
        break;
      }
      case 'task_step':
      case 'actions_generated':
      case 'cache_hit':
      case 'task_complete': {
        if (!task) {
          if (S.finished.has(key) && S.finished.get(key).status !== 'active') break; // after its end
          task = newTask(ev, key, true);
          if (ev.type !== 'task_complete') S.tasks.set(key, task);
        }
        touchTask(task, ev, seen);
        if (ev.type === 'task_step') {
          task.current_step = String(ev.step === undefined ? '' : ev.step);
          task.steps++;
        }
        else if (ev.type === 'actions_generated') task.actions_generated = num(ev.action_count);
        else if (ev.type === 'cache_hit') task.cache_hit = true;
        else {
          if (typeof ev.action_count === 'number') task.actions_generated = ev.action_count;
          task.error = ev.error !== undefined ? String(ev.error) : '';
          task.status = ev.success ? 'succeeded' : 'failed';
          task.end_time = num(ev.ts);
          if (typeof ev.response_time === 'number') task.response_time = ev.response_time;
          else if (!task.started_late && task.start_time) task.response_time = Math.max(0, (task.end_time - task.start_time) / 1000);
          S.tasks.delete(key);
          finishedPut(task);
          sparkAdd(seen, task.response_time);
          dirty.spark = true;
          const v = S.validators.get(validatorKey(task.validator_hotkey, task.validator_ip));
          if (v) {
            if (ev.success) v.successes++;
            else v.failures++;
            dirty.validators = true;
          }
        }
        break;
      }
      case 'task_feedback': {
        if (task) touchTask(task, ev, seen);
        const ref = task || S.finished.get(key);
        let hk = ev.validator_hotkey;
        let ip;
        if (!hk && ref) {
          hk = ref.validator_hotkey;
          ip = ref.validator_ip;
        }
        const v = validatorTouch(hk, ip, seen);
        if (v && typeof ev.score === 'number' && isFinite(ev.score)) {
          v.feedback_count++;
          v.feedback_sum += ev.score;
        }
        break;
      }
      case 'validator_connection': {
        const v = validatorTouch(ev.validator_hotkey, ev.validator_ip, seen);
        if (v) v.connections++;
        break;
      }
      case 'error':
        if (task) {
          touchTask(task, ev, seen);
          task.error = String(ev.error_message || '');
        }
        break;
      default:
        break;
    }
    timelineAdd(ev, false);
    if (ev.id > S.baseId) countDelta(ev);
    dirty.stats = true;
    if (ev.id > S.alertedUpTo) {
      S.alertedUpTo = ev.id;
      alertFor(ev, task);
    }
    if (dirty.timeline === false && timelineOpen && timelineOpen === key) dirty.timeline = true;
    schedule();
  }

  function newTask(ev, key, late) {
    return {
      key: key,
      task_id: String(ev.task_id),
      miner: String(ev.miner || ''),
      prompt: '',
      url: '',
      validator_ip: '',
      validator_hotkey: '',
      start_time: num(ev.ts),
      status: 'active',
      current_step: '',
      actions_generated: 0,
      steps: 0,
      events: 0,
      cache_hit: false,
      started_late: late,
      timeout_ms: 0,
      last_seen: 0,
      first_id: ev.id,
      last_id: ev.id,
      end_time: 0,
      response_time: null,
      error: '',
    };
  }

  function touchTask(task, ev, seen) {
    task.events++;
    task.last_seen = seen;
    task.last_id = ev.id;
    markTask(task.key);
  }

  // A row to update. Many (a hidden tab draws nothing): redraw them all.
  function markTask(key) {
    if (dirty.tasksAll) return;
    dirty.tasks.add(key);
    if (dirty.tasks.size > 2000) {
      dirty.tasks.clear();
      dirty.tasksAll = true;
    }
  }

  function finishedPut(task) {
    S.finished.delete(task.key);
    S.finished.set(task.key, task);
    while (S.finished.size > FINISHED_MAX) {
      const oldest = S.finished.keys().next().value;
      S.finished.delete(oldest);
      if (!S.tasks.has(oldest)) dropTimeline(oldest);
    }
  }

  function dropTimeline(key) {
    const list = S.timelines.get(key);
    if (list) {
      S.timelineTotal -= list.length;
      S.timelines.delete(key);
    }
  }

  // Keep an event in its task's timeline (tasks the page knows only).
  function timelineAdd(ev, quiet) {
    if (ev.task_id === undefined) return;
    const key = taskKey(ev.miner, ev.task_id);
    if (!S.tasks.has(key) && !S.finished.has(key)) return;
    let list = S.timelines.get(key);
    if (!list) {
      list = [];
      S.timelines.set(key, list);
    }
    if (list.length && list[list.length - 1].id >= ev.id) {
      if (list.some((e) => e.id === ev.id)) return;
      list.push(ev);
      list.sort((a, b) => a.id - b.id);
    }
    else list.push(ev);
    S.timelineTotal++;
    if (list.length > TIMELINE_MAX) {
      list.splice(0, list.length - TIMELINE_MAX);
      S.timelineTotal -= 1;
    }
    if (!quiet && S.timelineTotal > TIMELINE_TOTAL) timelinesPrune();
  }

  // Past the total bound, drop the timelines of the oldest finished tasks.
  function timelinesPrune() {
    for (const key of S.timelines.keys()) {
      if (S.timelineTotal <= TIMELINE_TOTAL * 0.9) break;
      if (!S.tasks.has(key) && key !== timelineOpen) dropTimeline(key);
    }
    for (const key of Array.from(S.timelines.keys()))
      if (!S.tasks.has(key) && !S.finished.has(key) && key !== timelineOpen) dropTimeline(key);
    if (S.timelineTotal <= TIMELINE_TOTAL) return;
    // Active tasks alone hold too many: keep the newest of each.
    const keep = Math.max(10, Math.floor((TIMELINE_TOTAL * 0.8) / Math.max(1, S.timelines.size)));
    for (const list of S.timelines.values())
      if (list.length > keep) {
        S.timelineTotal -= list.length - keep;
        list.splice(0, list.length - keep);
      }
  }

  function minerTouch(ev, seen) {
    const name = String(ev.miner || '');
    let m = S.miners.get(name);
    if (!m) {
      if (S.miners.size >= MAP_MAX) {
        const oldest = S.miners.keys().next().value;
        S.miners.delete(oldest);
      }
      m = minerFromDoc({ miner: name });
      m.sid = String(ev.sid || '');
      S.miners.set(name, m);
      dirty.miners = true;
    }
    else if (ev.sid !== undefined && String(ev.sid) !== m.sid) {
      m.sid = String(ev.sid);
      m.last_seq = 0;
    }
    if (typeof ev.seq === 'number' && ev.seq > m.last_seq) {
      if (m.last_seq > 0 && ev.seq > m.last_seq + 1 && ev.id > S.baseId) {
        const lost = ev.seq - m.last_seq - 1;
        m.lost += lost;
        S.delta.lost += lost;
      }
      m.last_seq = ev.seq;
    }
    m.events++;
    if (seen > m.last_seen) m.last_seen = seen;
    if (m.acked) m.acked = false;
  }

  function validatorTouch(hotkey, ip, seen) {
    hotkey = hotkey ? String(hotkey) : '';
    ip = ip ? String(ip) : '';
    if (!hotkey && !ip) return null;
    let v = hotkey ? S.validators.get(hotkey) : null;
    if (!v && ip) {
      v = S.validators.get(ip) || null;
      if (!v)
        for (const x of S.validators.values())
          if (x.ip === ip && (!hotkey || !x.hotkey)) {
            v = x;
            break;
          }
    }
    if (!v) {
      if (S.validators.size >= MAP_MAX) {
        const oldest = S.validators.keys().next().value;
        S.validators.delete(oldest);
      }
      v = validatorFromDoc({ hotkey: hotkey, ip: ip });
      S.validators.set(v.key, v);
    }
    if (ip && !v.ip) v.ip = ip;
    if (seen > v.last_seen) v.last_seen = seen;
    if (v.acked) v.acked = false;
    dirty.validators = true;
    return v;
  }

  // ------------------------------------------------------------------------
  // Sparklines: finished tasks and their mean response time per 10 s bucket

  function sparkClear() {
    const sp = S.spark;
    sp.head = -1;
    sp.start = Infinity; // the first bucket with data: nothing is drawn before it
    sp.count.fill(0);
    sp.rtSum.fill(0);
    sp.rtN.fill(0);
  }

  function sparkRoll(bucket) {
    const sp = S.spark;
    if (sp.head < 0) {
      sp.head = bucket;
      return;
    }
    if (bucket <= sp.head) return;
    const skip = Math.min(bucket - sp.head, SPARK_BUCKETS);
    for (let i = 1; i <= skip; i++) {
      const slot = (sp.head + i) % SPARK_BUCKETS;
      sp.count[slot] = 0;
      sp.rtSum[slot] = 0;
      sp.rtN[slot] = 0;
    }
    sp.head = bucket;
  }

  function sparkAdd(timeMs, rt) {
    if (!timeMs) return;
    const bucket = Math.floor(timeMs / SPARK_BUCKET_MS);
    const sp = S.spark;
    sparkRoll(Math.max(bucket, Math.floor(brokerNow() / SPARK_BUCKET_MS)));
    if (bucket > sp.head || bucket <= sp.head - SPARK_BUCKETS) return;
    if (bucket < sp.start) sp.start = bucket;
    const slot = bucket % SPARK_BUCKETS;
    sp.count[slot]++;
    if (typeof rt === 'number' && isFinite(rt)) {
      sp.rtSum[slot] += rt;
      sp.rtN[slot]++;
    }
  }

  // ------------------------------------------------------------------------
  // Alerts: toasts, desktop notifications, the banner

  const notifyState = { last: 0, suppressed: 0 };

  function alertFor(ev, task) {
    if (ev.type === 'error') {
      const what = [ev.error_type, ev.error_message].filter((x) => x !== undefined && x !== '').map(String).join(': ');
      raise('error', 'Error on ' + String(ev.miner || '?'), what || 'an error event', ev);
    }
    else if (ev.type === 'task_complete' && !ev.success) {
      const id = shortId(String(ev.task_id));
      const why = ev.error ? ': ' + String(ev.error) : '';
      raise('failed', 'Task failed on ' + String(ev.miner || '?'), 'Task ' + id + why, ev);
    }
  }

  function raise(kind, title, body, ev) {
    dirty.toasts.push({ kind: kind, title: title, body: body, key: ev && ev.task_id !== undefined ? taskKey(ev.miner, ev.task_id) : null });
    if (dirty.toasts.length > TOASTS_MAX) dirty.toasts.splice(0, dirty.toasts.length - TOASTS_MAX);
    if (kind !== 'info') notifyDesktop(title, body);
    schedule();
  }

  // Notification.permission is a round trip to the browser in some
  // engines: read it when it may change, not for every alert.
  let notifyPermission = 'Notification' in window ? Notification.permission : 'denied';

  function notifyDesktop(title, body) {
    if (notifyPermission !== 'granted' || !notifyOn()) return;
    const now = Date.now();
    if (now - notifyState.last < NOTIFY_GAP_MS) {
      notifyState.suppressed++;
      return;
    }
    const more = notifyState.suppressed ? ' (+' + notifyState.suppressed + ' more)' : '';
    notifyState.last = now;
    notifyState.suppressed = 0;
    try {
      new Notification('minerwatch: ' + title + more, { body: clip(body, 200), tag: 'minerwatch-alert' });
    }
    catch (e) {
      // Some browsers allow notifications only from a service worker.
    }
  }

  let notifyPref = null;

  function notifyOn() {
    if (notifyPref === null) {
      try {
        notifyPref = window.localStorage.getItem(NOTIFY_KEY) !== 'off';
      }
      catch (e) {
        notifyPref = true;
      }
    }
    return notifyPref;
  }

  let silenceCache = -1;

  function silenceMs() {
    if (silenceCache >= 0) return silenceCache;
    let v = SILENCE_DEFAULT_S;
    try {
      const s = window.localStorage.getItem(SILENCE_KEY);
      if (s !== null && s !== '' && isFinite(Number(s))) v = Number(s);
    }
    catch (e) {
      // localStorage may be off: the default holds.
    }
    silenceCache = Math.max(0, v) * 1000;
    return silenceCache;
  }

  let bannerDismissed = '';
  const LINK_DOWN_TEXT = 'The gateway has lost its broker: the numbers below are the last state it received.';

  // The problems now, as text (empty: none).
  function bannerText() {
    const parts = [];
    if (!S.link) parts.push(LINK_DOWN_TEXT);
    const limit = silenceMs();
    if (limit > 0 && S.haveState) {
      const now = brokerNow();
      const silent = [];
      const check = (label, name, x) => {
        const age = now - x.last_seen;
        if (age < limit) {
          x.watched = true; // active while the page watches
          return;
        }
        if (x.watched && !x.acked && x.last_seen > 0) silent.push(label + ' ' + name + ' (' + fmtDuration(age) + ')');
      };
      for (const m of S.miners.values()) check('miner', m.name || '(unnamed)', m);
      for (const v of S.validators.values()) check('validator', shortKey(v.hotkey) || v.ip, v);
      if (silent.length) {
        const shown = silent.slice(0, 4).join(', ');
        const more = silent.length > 4 ? ' and ' + (silent.length - 4) + ' more' : '';
        parts.push('Silent for over ' + fmtDuration(limit) + ': ' + shown + more + '.');
      }
    }
    return parts.join(' ');
  }

  // ------------------------------------------------------------------------
  // Formatting

  function pad2(n) {
    return n < 10 ? '0' + n : String(n);
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + pad2(s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + pad2(m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function fmtSeconds(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    if (s < 10) return s.toFixed(2) + ' s';
    if (s < 100) return s.toFixed(1) + ' s';
    return fmtDuration(s * 1000);
  }

  function fmtPct(x) {
    if (typeof x !== 'number' || !isFinite(x)) return '–';
    return (x * 100).toFixed(1) + '%';
  }

  const countFmt = new Intl.NumberFormat('en-US');

  function fmtCount(n) {
    return typeof n === 'number' && isFinite(n) ? countFmt.format(n) : '–';
  }

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

  function fmtLocal(ms) {
    return ms > 0 ? timeFmt.format(new Date(ms)) : '–';
  }

  function fmtUtc(ms) {
    return ms > 0 ? new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC') : '';
  }

  function shortId(id) {
    return id.length > 12 ? id.slice(0, 8) + '…' : id;
  }

  function shortKey(k) {
    return k && k.length > 14 ? k.slice(0, 6) + '…' + k.slice(-5) : k || '';
  }

  function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function validatorLabel(hotkey, ip) {
    if (hotkey && ip) return shortKey(hotkey) + ' · ' + ip;
    return shortKey(hotkey) || ip || '–';
  }

  // Safe class name for any event type.
  function typeClass(type) {
    return 'ev-' + String(type).replace(/[^A-Za-z0-9_-]/g, '_');
  }

  function emojiOf(ev) {
    if (ev.type === 'task_complete') return ev.success ? '✅' : '❌';
    return EMOJI[ev.type] || '🔹';
  }

  const SKIP_KEYS = new Set(['v', 'type', 'ts', 'time', 'miner', 'sid', 'seq', 'id', 'broker_ts', 'task_id']);

  // One line saying what an event means.
  function eventDetails(ev) {
    const tid = ev.task_id !== undefined ? 'Task ' + shortId(String(ev.task_id)) : '';
    const parts = [];
    switch (ev.type) {
      case 'task_start':
        if (tid) parts.push(tid);
        if (ev.validator_hotkey || ev.validator_ip) parts.push('Validator ' + validatorLabel(ev.validator_hotkey, ev.validator_ip));
        if (ev.prompt) parts.push(String(ev.prompt));
        break;
      case 'task_step':
        parts.push(String(ev.step === undefined ? '' : ev.step));
        if (tid) parts.push(tid);
        break;
      case 'actions_generated':
        parts.push(num(ev.action_count) + ' actions' + (ev.action_type ? ' (' + String(ev.action_type) + ')' : ''));
        if (tid) parts.push(tid);
        break;
      case 'task_complete': {
        let s = (ev.success ? 'succeeded' : 'failed');
        if (typeof ev.action_count === 'number') s += ': ' + ev.action_count + ' actions';
        if (typeof ev.response_time === 'number') s += ' in ' + fmtSeconds(ev.response_time);
        parts.push(s);
        if (ev.error) parts.push(String(ev.error));
        if (tid) parts.push(tid);
        break;
      }
      case 'task_feedback':
        if (typeof ev.score === 'number') parts.push('score ' + ev.score.toFixed(3));
        if (typeof ev.execution_time === 'number') parts.push('execution ' + fmtSeconds(ev.execution_time));
        if (tid) parts.push(tid);
        break;
      case 'validator_connection':
        parts.push('Validator ' + validatorLabel(ev.validator_hotkey, ev.validator_ip));
        if (ev.endpoint) parts.push(String(ev.endpoint));
        break;
      case 'cache_hit':
        parts.push('cache' + (ev.cache_type ? ': ' + String(ev.cache_type) : ''));
        if (tid) parts.push(tid);
        break;
      case 'error':
        parts.push([ev.error_type, ev.error_message].filter((x) => x !== undefined && x !== '').map(String).join(': '));
        if (tid) parts.push(tid);
        break;
      default: {
        if (tid) parts.push(tid);
        const rest = [];
        for (const k of Object.keys(ev)) {
          if (SKIP_KEYS.has(k)) continue;
          const v = ev[k];
          rest.push(k + '=' + (typeof v === 'object' ? JSON.stringify(v) : String(v)));
          if (rest.length >= 6) break;
        }
        parts.push(rest.join(' '));
      }
    }
    return clip(parts.filter((p) => p !== '').join(' · '), 300);
  }

  // ------------------------------------------------------------------------
  // DOM helpers (text only; never HTML)

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  function setAttr(e, name, value) {
    if (value === null) {
      if (e.hasAttribute(name)) e.removeAttribute(name);
    }
    else if (e.getAttribute(name) !== value) e.setAttribute(name, value);
  }

  const D = {};

  // ------------------------------------------------------------------------
  // Rendering (one frame)

  let filter = '';
  const taskRows = new Map(); // key -> row element (tasks shown)
  let eventRows = 0;
  const rowPool = []; // event rows to reuse

  function render() {
    frameAsked = false;
    lastRender = performance.now();
    S.renders++;
    if (dirty.tasksAll) renderTasksAll();
    else if (dirty.tasks.size) renderTasksChanged();
    dirty.tasks.clear();
    if (dirty.tick) renderTick();
    if (dirty.eventsAll) renderEventsAll();
    else if (dirty.eventsNew.length) renderEventsNew();
    if (dirty.stats) renderStats();
    // The validator table changes with most events; once a second is enough.
    if (dirty.validators && lastRender - lastValidators >= 1000) {
      lastValidators = lastRender;
      renderValidators();
    }
    if (dirty.miners) renderMiners();
    if (dirty.spark) renderSparks();
    if (dirty.toasts.length) renderToasts();
    if (dirty.timeline) renderTimeline();
    if (dirty.conn) renderConn();
    if (dirty.banner) renderBanner();
  }

  function shows(task) {
    return !filter || task.miner === filter;
  }

  function makeTaskRow(task) {
    const row = el('div', 'task');
    row.setAttribute('role', 'listitem');
    row.tabIndex = 0;
    const top = el('div', 'task-top');
    row._id = el('span', 'task-id');
    row._miner = el('span', 'task-miner');
    row._stale = el('span', 'badge badge-stale', 'stale');
    row._stale.hidden = true;
    row._deadline = null;
    row._elapsed = el('span', 'elapsed');
    top.append(row._id, row._miner, row._stale, el('span', 'spacer'), row._elapsed);
    row._top = top;
    row._prompt = el('div', 'prompt');
    const bottom = el('div', 'task-bottom');
    row._step = el('span', 'step');
    row._actions = el('span', 'actions');
    row._validator = el('span', 'validator');
    bottom.append(row._step, row._actions, row._validator);
    row.append(top, row._prompt, bottom);
    updateTaskRow(row, task);
    return row;
  }

  function updateTaskRow(row, task) {
    setAttr(row, 'data-miner', task.miner);
    setAttr(row, 'data-task-id', task.task_id);
    setText(row._id, shortId(task.task_id));
    setAttr(row._id, 'title', task.task_id);
    setText(row._miner, task.miner);
    setText(row._prompt, task.prompt || (task.started_late ? '(started before the page saw it)' : '(no prompt)'));
    setAttr(row._prompt, 'title', task.url ? task.prompt + '\n' + task.url : task.prompt);
    setText(row._step, task.current_step ? task.current_step : 'waiting');
    setText(row._actions, task.actions_generated + (task.actions_generated === 1 ? ' action' : ' actions'));
    const vl = validatorLabel(task.validator_hotkey, task.validator_ip);
    setText(row._validator, 'Validator: ' + vl);
    setAttr(row._validator, 'title', [task.validator_hotkey, task.validator_ip].filter(Boolean).join('\n'));
    if (task.timeout_ms > 0 && !row._deadline) {
      row._deadline = el('span', 'deadline');
      row._top.insertBefore(row._deadline, row._elapsed);
    }
    else if (!(task.timeout_ms > 0) && row._deadline) {
      row._deadline.remove();
      row._deadline = null;
    }
    setAttr(row._elapsed, 'title', 'started ' + fmtLocal(task.start_time) + ' (' + fmtUtc(task.start_time) + ')');
    if (row._deadline) {
      const due = task.start_time + task.timeout_ms;
      setAttr(row._deadline, 'title', 'timeout ' + fmtDuration(task.timeout_ms) + ', due ' + fmtLocal(due) + ' (' + fmtUtc(due) + ')');
    }
    row._task = task;
    tickTaskRow(row, brokerNow());
  }

  // The parts of a row that move with time.
  function tickTaskRow(row, now) {
    const task = row._task;
    const elapsed = Math.max(0, now - task.start_time);
    setText(row._elapsed, fmtDuration(elapsed));
    if (row._deadline) {
      const left = task.start_time + task.timeout_ms - now;
      setText(row._deadline, left >= 0 ? '⏱ ' + fmtDuration(left) + ' left' : '⏱ over by ' + fmtDuration(-left));
      setAttr(row._deadline, 'data-over', left < 0 ? '1' : null);
    }
    // Stale: silent past its own timeout (or, without one, past the
    // silence setting). The broker drops it as stale after its grace.
    const silent = now - task.last_seen;
    const taskTimeout = num(S.bounds.task_timeout_ms) || 300000;
    const limit = task.timeout_ms > 0 ? task.timeout_ms : Math.min(taskTimeout, silenceMs() || taskTimeout);
    const stale = task.last_seen > 0 && silent > limit;
    setAttr(row, 'data-stale', stale ? '1' : null);
    if (row._stale.hidden === stale) row._stale.hidden = !stale;
    if (stale) setText(row._stale, 'stale · silent ' + fmtDuration(silent));
  }

  function renderTasksAll() {
    dirty.tasksAll = false;
    const list = D.active;
    taskRows.clear();
    const frag = document.createDocumentFragment();
    for (const task of S.tasks.values()) {
      if (!shows(task)) continue;
      const row = makeTaskRow(task);
      row._key = task.key;
      taskRows.set(task.key, row);
      frag.append(row);
    }
    list.replaceChildren(frag);
    renderTaskCount();
  }

  function renderTasksChanged() {
    for (const key of dirty.tasks) {
      const task = S.tasks.get(key);
      const row = taskRows.get(key);
      if (task && shows(task)) {
        if (row) updateTaskRow(row, task);
        else {
          const fresh = makeTaskRow(task);
          fresh._key = key;
          taskRows.set(key, fresh);
          D.active.append(fresh);
        }
      }
      else if (row) {
        row.remove();
        taskRows.delete(key);
      }
    }
    renderTaskCount();
  }

  function renderTaskCount() {
    setText(D.activeCount, String(taskRows.size));
    D.activeEmpty.hidden = taskRows.size > 0;
  }

  function renderTick() {
    dirty.tick = false;
    const now = brokerNow();
    for (const row of taskRows.values()) tickTaskRow(row, now);
    setText(D.clock, fmtLocal(Date.now()));
    setAttr(D.clock, 'title', fmtUtc(Date.now()));
    setAttr(D.clock, 'datetime', new Date().toISOString());
    if (timelineOpen) renderTimelineMeta();
  }

  function fillEventRow(row, ev) {
    row.className = 'event ' + typeClass(ev.type) + (ev.type === 'task_complete' && !ev.success ? ' ev-failed' : '');
    setAttr(row, 'data-id', String(ev.id));
    setAttr(row, 'data-type', String(ev.type));
    setAttr(row, 'data-ts', String(num(ev.ts)));
    setAttr(row, 'data-miner', String(ev.miner || ''));
    row._ev = ev;
    setText(row._emoji, emojiOf(ev));
    setText(row._type, String(ev.type));
    setText(row._time, fmtLocal(num(ev.ts)));
    setAttr(row._time, 'title', typeof ev.time === 'string' ? ev.time : fmtUtc(num(ev.ts)));
    setAttr(row._time, 'datetime', typeof ev.time === 'string' ? ev.time : '');
    setText(row._miner, String(ev.miner || ''));
    const details = eventDetails(ev);
    setText(row._details, details);
    setAttr(row._details, 'title', details);
    row.tabIndex = ev.task_id !== undefined ? 0 : -1;
  }

  function makeEventRow() {
    const row = rowPool.pop();
    if (row) return row;
    const li = el('li', 'event');
    const head = el('div', 'event-head');
    li._emoji = el('span', 'emoji');
    li._type = el('span', 'type');
    li._miner = el('span', 'event-miner');
    li._time = el('time', 'time');
    head.append(li._emoji, li._type, li._miner, el('span', 'spacer'), li._time);
    li._details = el('div', 'details');
    li.append(head, li._details);
    return li;
  }

  function renderEventsAll() {
    dirty.eventsAll = false;
    dirty.eventsNew.length = 0;
    const list = D.events;
    while (list.firstChild) {
      rowPool.push(list.firstChild);
      list.firstChild.remove();
    }
    const frag = document.createDocumentFragment();
    let n = 0;
    for (let i = S.ring.length - 1; i >= 0 && n < EVENTS_SHOWN; i--) {
      const ev = S.ring[i];
      if (filter && ev.miner !== filter) continue;
      const row = makeEventRow();
      fillEventRow(row, ev);
      frag.append(row);
      n++;
    }
    list.append(frag);
    eventRows = n;
    if (rowPool.length > EVENTS_SHOWN) rowPool.length = EVENTS_SHOWN;
    D.eventsEmpty.hidden = n > 0;
  }

  function renderEventsNew() {
    const fresh = dirty.eventsNew.filter((ev) => !filter || ev.miner === filter);
    dirty.eventsNew.length = 0;
    if (!fresh.length) return;
    const take = fresh.slice(-EVENTS_SHOWN);
    const list = D.events;
    const frag = document.createDocumentFragment();
    for (let i = take.length - 1; i >= 0; i--) {
      // Reuse the oldest row when the list is full.
      let row;
      if (eventRows >= EVENTS_SHOWN && list.lastChild) {
        row = list.lastChild;
        row.remove();
        eventRows--;
      }
      else row = makeEventRow();
      fillEventRow(row, take[i]);
      frag.append(row);
    }
    list.prepend(frag);
    eventRows += take.length;
    while (eventRows > EVENTS_SHOWN && list.lastChild) {
      rowPool.push(list.lastChild);
      list.lastChild.remove();
      eventRows--;
    }
    if (rowPool.length > EVENTS_SHOWN) rowPool.length = EVENTS_SHOWN;
    D.eventsEmpty.hidden = eventRows > 0;
  }

  function setStat(name, text, value) {
    const e = D.stats[name];
    if (!e) return;
    setText(e, text);
    setAttr(e, 'data-value', value === null || value === undefined || !isFinite(value) ? '' : String(value));
  }

  function renderStats() {
    dirty.stats = false;
    const b = S.base;
    if (!b) return;
    const d = S.delta;
    const succ = num(b.tasks_succeeded) + d.succeeded;
    const failed = num(b.tasks_failed) + d.failed;
    const ended = succ + failed + num(b.tasks_stale);
    const started = num(b.tasks_started) + d.started;
    const hits = num(b.cache_hits) + d.cache;
    const errors = num(b.errors) + d.errors;
    const lost = num(b.lost_events) + d.lost;
    const rate = ended ? succ / ended : null;
    const cache = started ? Math.min(1, hits / started) : null;
    const tpm = num(b.tasks_per_min_1);
    setStat('tasks-per-min', tpm.toFixed(1), tpm);
    setStat('success-rate', rate === null ? '–' : fmtPct(rate), rate);
    setStat('p50', num(b.response_count) ? fmtSeconds(num(b.response_p50)) : '–', num(b.response_p50));
    setStat('p95', num(b.response_count) ? fmtSeconds(num(b.response_p95)) : '–', num(b.response_p95));
    setStat('cache-hit-rate', cache === null ? '–' : fmtPct(cache), cache);
    setStat('errors', fmtCount(errors), errors);
    setStat('lost', fmtCount(lost), lost);
    D.stats.errors.parentElement.classList.toggle('stat-bad', errors > 0);
    D.stats.lost.parentElement.classList.toggle('stat-bad', lost > 0);
  }

  const validatorRows = new Map();

  function renderValidators() {
    dirty.validators = false;
    const body = D.validatorsBody;
    const now = brokerNow();
    const keep = new Set();
    let prev = null;
    for (const v of S.validators.values()) {
      keep.add(v.key);
      let row = validatorRows.get(v.key);
      if (!row) {
        row = el('tr');
        row._name = el('td', 'vname');
        row._tasks = el('td', 'num');
        row._rate = el('td', 'num');
        row._p95 = el('td', 'num');
        row._score = el('td', 'num');
        row._seen = el('td', 'num');
        row.append(row._name, row._tasks, row._rate, row._p95, row._score, row._seen);
        validatorRows.set(v.key, row);
      }
      // Keep the order of first appearance (the broker's).
      const want = prev ? prev.nextSibling : body.firstChild;
      if (want !== row) body.insertBefore(row, want);
      prev = row;
      setAttr(row, 'data-validator', v.key);
      setText(row._name, validatorLabel(v.hotkey, v.ip));
      setAttr(row._name, 'title', [v.hotkey, v.ip].filter(Boolean).join('\n'));
      setText(row._tasks, fmtCount(v.tasks));
      const ended = v.successes + v.failures;
      setText(row._rate, ended ? fmtPct(v.successes / ended) : '–');
      setText(row._p95, v.response_count ? fmtSeconds(v.response_p95) : '–');
      setText(row._score, v.feedback_count ? (v.feedback_sum / v.feedback_count).toFixed(3) : '–');
      setText(row._seen, v.last_seen ? fmtDuration(now - v.last_seen) + ' ago' : '–');
      setAttr(row._seen, 'title', v.last_seen ? fmtLocal(v.last_seen) + ' (' + fmtUtc(v.last_seen) + ')' : '');
    }
    for (const [key, row] of validatorRows)
      if (!keep.has(key)) {
        row.remove();
        validatorRows.delete(key);
      }
    setText(D.validatorsCount, String(S.validators.size));
  }

  function renderMiners() {
    dirty.miners = false;
    const sel = D.minerFilter;
    const names = Array.from(S.miners.keys()).sort();
    if (filter && !S.miners.has(filter)) names.push(filter);
    const have = [];
    for (let i = 1; i < sel.options.length; i++) have.push(sel.options[i].value);
    if (have.join('\u0000') === names.join('\u0000')) return;
    while (sel.options.length > 1) sel.remove(1);
    for (const name of names) {
      const o = el('option', '', name || '(unnamed)');
      o.value = name;
      sel.append(o);
    }
    sel.value = filter;
  }

  const SVG = 'http://www.w3.org/2000/svg';

  function sparkSeries(kind) {
    const sp = S.spark;
    const out = [];
    sparkRoll(Math.floor(brokerNow() / SPARK_BUCKET_MS));
    for (let i = SPARK_BUCKETS - 1; i >= 0; i--) {
      const b = sp.head - i;
      if (sp.head < 0 || b < 0 || b < sp.start) {
        out.push(null);
        continue;
      }
      const slot = b % SPARK_BUCKETS;
      if (kind === 'count') out.push(sp.count[slot] * (60000 / SPARK_BUCKET_MS));
      else out.push(sp.rtN[slot] ? sp.rtSum[slot] / sp.rtN[slot] : null);
    }
    return out;
  }

  function drawSpark(svg, values) {
    const W = 240;
    const H = 40;
    let max = 0;
    for (const v of values) if (v !== null && v > max) max = v;
    const step = W / (values.length - 1);
    let line = '';
    let area = '';
    let pen = false;
    let segStart = 0;
    let lastX = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null) {
        if (pen) area += 'L' + lastX.toFixed(1) + ' ' + H + 'L' + segStart.toFixed(1) + ' ' + H + 'Z';
        pen = false;
        continue;
      }
      const x = i * step;
      const y = max > 0 ? H - 2 - (v / max) * (H - 6) : H - 2;
      const p = x.toFixed(1) + ' ' + y.toFixed(1);
      if (!pen) {
        line += 'M' + p;
        area += 'M' + p;
        segStart = x;
        pen = true;
      }
      else {
        line += 'L' + p;
        area += 'L' + p;
      }
      lastX = x;
    }
    if (pen) area += 'L' + lastX.toFixed(1) + ' ' + H + 'L' + segStart.toFixed(1) + ' ' + H + 'Z';
    if (!svg._line) {
      svg._area = document.createElementNS(SVG, 'path');
      svg._area.setAttribute('class', 'spark-area');
      svg._line = document.createElementNS(SVG, 'path');
      svg._line.setAttribute('class', 'spark-line');
      svg._line.setAttribute('vector-effect', 'non-scaling-stroke');
      svg.append(svg._area, svg._line);
    }
    svg._area.setAttribute('d', area || 'M0 0');
    svg._line.setAttribute('d', line || 'M0 0');
  }

  function renderSparks() {
    dirty.spark = false;
    const tp = sparkSeries('count');
    const rt = sparkSeries('rt');
    drawSpark(D.sparkThroughput, tp);
    drawSpark(D.sparkLatency, rt);
    // The newest full bucket (the current one is still filling).
    const lastTp = tp[tp.length - 2];
    let lastRt = null;
    for (let i = rt.length - 1; i >= 0 && lastRt === null; i--) lastRt = rt[i];
    setText(D.sparkThroughputValue, lastTp === null || lastTp === undefined ? '–' : lastTp.toFixed(0) + ' /min');
    setText(D.sparkLatencyValue, lastRt === null ? '–' : fmtSeconds(lastRt));
  }

  function renderToasts() {
    const box = D.toasts;
    for (const t of dirty.toasts) {
      const toast = el('div', 'toast');
      toast.setAttribute('data-kind', t.kind);
      toast.setAttribute('role', t.kind === 'info' ? 'status' : 'alert');
      const icon = el('span', 'toast-icon', t.kind === 'info' ? 'ℹ️' : '❌');
      const text = el('div', 'toast-text');
      text.append(el('strong', 'toast-title', t.title), el('span', 'toast-body', t.body));
      const close = el('button', 'toast-close', '✕');
      close.type = 'button';
      close.setAttribute('aria-label', 'Dismiss');
      toast.append(icon, text, close);
      if (t.key) toast._key = t.key;
      toast._timer = window.setTimeout(() => toast.remove(), TOAST_MS);
      box.append(toast);
    }
    dirty.toasts.length = 0;
    while (box.children.length > TOASTS_MAX) {
      const first = box.firstElementChild;
      window.clearTimeout(first._timer);
      first.remove();
    }
  }

  function renderConn() {
    dirty.conn = false;
    const state = net.state;
    setAttr(D.conn, 'data-state', state);
    let text;
    if (state === 'sse') text = 'Live';
    else if (state === 'polling') text = 'Polling';
    else if (!S.link && (net.sse === 'open' || net.pollOk)) text = 'Broker down';
    else text = S.haveState ? 'Disconnected' : 'Connecting…';
    setText(D.connText, text);
    const title = {
      sse: 'Live stream open (Server-Sent Events)',
      polling: 'The live stream is unavailable: polling ' + '/api/dashboard/live/status every ' + (POLL_MS / 1000) + ' s; retrying the stream',
      down: S.link ? 'Cannot reach the gateway; retrying' : 'The gateway has lost its broker; retrying',
    }[state];
    setAttr(D.conn, 'title', title);
  }

  function renderBanner() {
    dirty.banner = false;
    const text = bannerText();
    const show = text !== '' && text !== bannerDismissed;
    if (!show && text === '') bannerDismissed = '';
    setText(D.bannerText, show ? text : '');
    if (D.banner.hidden === show) D.banner.hidden = !show;
  }

  // ------------------------------------------------------------------------
  // The task timeline

  let timelineOpen = null; // key of the task shown
  let timelineFetched = null;
  let timelineRows = 0;

  function findTask(key) {
    return S.tasks.get(key) || S.finished.get(key) || null;
  }

  function openTimeline(key) {
    if (!findTask(key)) return;
    timelineOpen = key;
    timelineRows = 0;
    D.timelineEvents.replaceChildren();
    dirty.timeline = true;
    render();
    const dlg = D.timeline;
    if (!dlg.open) {
      if (typeof dlg.showModal === 'function') dlg.showModal();
      else dlg.setAttribute('open', '');
    }
    maybeFetchTimeline(key);
  }

  function closeTimeline() {
    timelineOpen = null;
    const dlg = D.timeline;
    if (dlg.open) {
      if (typeof dlg.close === 'function') dlg.close();
      else dlg.removeAttribute('open');
    }
    D.timelineEvents.replaceChildren();
    timelineRows = 0;
  }

  // The page may have joined after the task began: ask the gateway for the
  // events it still holds (once per opening).
  function maybeFetchTimeline(key) {
    const task = findTask(key);
    const list = S.timelines.get(key) || [];
    if (!task || timelineFetched === key) return;
    if (list.length && list[0].id <= task.first_id) return;
    timelineFetched = key;
    const epoch = S.epoch;
    fetch(api('/api/dashboard/live/status', { limit: pollLimit() }), { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((doc) => {
        if (!doc || doc.epoch !== epoch || !findTask(key)) return;
        for (const ev of doc.recent_events || [])
          if (ev && ev.task_id !== undefined && taskKey(ev.miner, ev.task_id) === key && ev.id <= Math.max(S.lastId, S.floor))
            timelineAdd(ev, false);
        if (timelineOpen === key) {
          timelineRows = 0;
          D.timelineEvents.replaceChildren();
          dirty.timeline = true;
          schedule();
        }
      })
      .catch(() => {});
  }

  function renderTimelineMeta() {
    const task = findTask(timelineOpen);
    if (!task) return;
    const now = brokerNow();
    const parts = [task.miner, task.status];
    if (task.status === 'active') parts.push('running ' + fmtDuration(now - task.start_time));
    else if (task.response_time !== null) parts.push('took ' + fmtSeconds(task.response_time));
    parts.push('started ' + fmtLocal(task.start_time));
    parts.push(task.actions_generated + ' actions');
    if (task.validator_hotkey || task.validator_ip) parts.push('validator ' + validatorLabel(task.validator_hotkey, task.validator_ip));
    if (task.timeout_ms > 0) parts.push('timeout ' + fmtDuration(task.timeout_ms));
    if (task.error) parts.push('error: ' + task.error);
    setText(D.timelineMeta, parts.join(' · '));
    setAttr(D.timelineMeta, 'title', 'started ' + fmtUtc(task.start_time));
  }

  function renderTimeline() {
    dirty.timeline = false;
    if (!timelineOpen) return;
    const task = findTask(timelineOpen);
    if (!task) return;
    setText(D.timelineTitle, 'Task ' + task.task_id);
    setAttr(D.timeline, 'data-task-id', task.task_id);
    setAttr(D.timeline, 'data-miner', task.miner);
    setText(D.timelinePrompt, task.prompt + (task.url ? '  —  ' + task.url : ''));
    renderTimelineMeta();
    const list = S.timelines.get(timelineOpen) || [];
    if (timelineRows > list.length) {
      D.timelineEvents.replaceChildren();
      timelineRows = 0;
    }
    const frag = document.createDocumentFragment();
    for (let i = timelineRows; i < list.length; i++) {
      const ev = list[i];
      const li = el('li', 'tl-row ' + typeClass(ev.type) + (ev.type === 'task_complete' && !ev.success ? ' ev-failed' : ''));
      li.setAttribute('data-type', String(ev.type));
      li.setAttribute('data-id', String(ev.id));
      const t = el('time', 'time', fmtLocal(num(ev.ts)));
      t.setAttribute('title', typeof ev.time === 'string' ? ev.time : fmtUtc(num(ev.ts)));
      const off = num(ev.ts) - task.start_time;
      li.append(t, el('span', 'tl-offset', (off >= 0 ? '+' : '−') + fmtSeconds(Math.abs(off) / 1000)),
        el('span', 'emoji', emojiOf(ev)), el('span', 'type', String(ev.type)), el('span', 'details', eventDetails(ev)));
      frag.append(li);
    }
    D.timelineEvents.append(frag);
    timelineRows = list.length;
    const note = list.length && list[0].id > task.first_id
      ? 'Earlier events of this task are no longer held (the page keeps the last ' + TIMELINE_MAX + ').'
      : '';
    setText(D.timelineNote, note);
    D.timelineNote.hidden = note === '';
  }

  // ------------------------------------------------------------------------
  // Network: SSE first; polling while SSE is unavailable

  const net = {
    state: 'down',
    sse: 'idle', // idle | connecting | open
    ctrl: null,
    failures: 0,
    retryTimer: 0,
    lastByte: 0,
    polling: false,
    pollTimer: 0,
    pollOk: false,
    pollBusy: false,
    etag: null,
    refreshTimer: 0,
    refreshBusy: false,
    refreshCost: 0, // ms the last refresh took on the main thread
  };

  function setState() {
    let state;
    if (net.sse === 'open') state = S.link ? 'sse' : 'down';
    else if (net.polling && net.pollOk) state = S.link ? 'polling' : 'down';
    else state = 'down';
    const was = net.state;
    if (state !== was) {
      net.state = state;
      dirty.conn = true;
      dirty.banner = true;
      if (was !== 'down' && state === 'down' && S.haveState) raise('info', 'Connection lost', S.link ? 'Reconnecting to the gateway…' : 'The gateway has lost its broker.', null);
      else if (was === 'down' && state !== 'down' && S.haveState) raise('info', 'Connected', state === 'sse' ? 'Live stream back.' : 'Polling the gateway.', null);
      schedule();
    }
  }

  function sseConnect() {
    window.clearTimeout(net.retryTimer);
    net.retryTimer = 0;
    if (net.sse !== 'idle') return;
    net.sse = 'connecting';
    const ctrl = new AbortController();
    net.ctrl = ctrl;
    const params = S.haveState && !S.awaitSnapshot ? { last_event_id: Math.max(S.lastId, S.floor) } : null;
    const wasOpen = { v: false };
    fetch(api('/api/dashboard/live', params), { signal: ctrl.signal, cache: 'no-store', headers: { Accept: 'text/event-stream' } })
      .then((resp) => {
        if (!resp.ok || !resp.body) throw new Error('HTTP ' + resp.status);
        if (net.ctrl !== ctrl) return undefined;
        wasOpen.v = true;
        net.sse = 'open';
        net.failures = 0;
        net.lastByte = Date.now();
        stopPolling();
        setState();
        scheduleRefresh();
        return sseRead(resp.body.getReader(), ctrl);
      })
      .then(() => sseEnded(ctrl, wasOpen.v), () => sseEnded(ctrl, wasOpen.v));
  }

  function sseEnded(ctrl, wasOpen) {
    if (net.ctrl !== ctrl) return; // superseded
    net.ctrl = null;
    net.sse = 'idle';
    try {
      ctrl.abort();
    }
    catch (e) {
      // already over
    }
    if (wasOpen && net.failures === 0) {
      // An open stream ended: try again at once, once.
      net.failures = 1;
      net.retryTimer = window.setTimeout(sseConnect, 250);
      setState();
      return;
    }
    net.failures++;
    const delay = Math.min(SSE_RETRY_MAX_MS, SSE_RETRY_MIN_MS * Math.pow(2, Math.max(0, net.failures - 2)));
    net.retryTimer = window.setTimeout(sseConnect, delay * (0.8 + Math.random() * 0.4));
    startPolling();
    setState();
  }

  // Read the stream in a loop, one await per chunk: a promise chain built
  // from inside each read's callback would keep every link alive until the
  // stream ends (hours, on a dashboard left open).
  async function sseRead(reader, ctrl) {
    const decoder = new TextDecoder('utf-8');
    let buf = '';
    let scan = 0;
    let data = [];
    let type = '';
    for (;;) {
      const res = await reader.read();
      if (res.done || net.ctrl !== ctrl) return;
      net.lastByte = Date.now();
      buf += decoder.decode(res.value, { stream: true });
      let start = 0;
      for (;;) {
        const nl = buf.indexOf('\n', scan);
        if (nl < 0) break;
        let line = buf.slice(start, nl);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        start = nl + 1;
        scan = start;
        if (line === '') {
          if (data.length) dispatch(type || 'message', data.join('\n'));
          data = [];
          type = '';
          if (net.ctrl !== ctrl) return;
          continue;
        }
        if (line.charCodeAt(0) === 58) continue; // ':' comment (keepalive)
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.charCodeAt(0) === 32) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') type = value;
      }
      buf = buf.slice(start);
      scan = buf.length;
    }
  }

  function dispatch(type, data) {
    let obj;
    try {
      obj = JSON.parse(data);
    }
    catch (e) {
      return;
    }
    if (type === 'snapshot') {
      fullLoad(obj);
      if (net.sse === 'open') scheduleRefresh();
    }
    else if (type === 'reset') S.awaitSnapshot = true;
    else if (type === 'broker') {
      setLink(!!obj.up);
      // A stream resumed by id alone could continue another broker history
      // (a broker restarted without its state file counts ids again): when
      // the gateway's epoch is not the page's, start over from a snapshot.
      const epoch = typeof obj.epoch === 'string' ? obj.epoch : '';
      if (obj.up && S.haveState && !S.awaitSnapshot && S.epoch && epoch && !/^0+$/.test(epoch) && epoch !== S.epoch) {
        S.awaitSnapshot = true;
        if (net.ctrl) net.ctrl.abort();
      }
    }
    else if (!S.awaitSnapshot && S.haveState && obj && typeof obj === 'object') applyEvent(obj);
  }

  function setLink(up) {
    if (S.link === up) return;
    S.link = up;
    dirty.banner = true;
    dirty.conn = true;
    setState();
    schedule();
  }

  // Beside SSE: the numbers only the broker computes, every few seconds.
  // A large state costs the page more to read: never spend more than
  // about 2% of the time on it.
  function scheduleRefresh() {
    if (net.refreshTimer) return;
    net.refreshTimer = window.setTimeout(refresh, Math.max(REFRESH_MS, net.refreshCost * 50));
  }

  function refresh() {
    net.refreshTimer = 0;
    if (net.sse !== 'open') return;
    if (net.refreshBusy || !S.haveState || S.awaitSnapshot || document.hidden) {
      scheduleRefresh();
      return;
    }
    net.refreshBusy = true;
    fetch(api('/api/dashboard/live/status', { limit: 1 }), { cache: 'no-store' })
      .then((r) => (r.ok ? r.text() : null))
      .then((text) => {
        if (text === null) return;
        const t0 = performance.now();
        const doc = JSON.parse(text);
        if (S.haveState && !S.awaitSnapshot) mergeDoc(doc);
        net.refreshCost = performance.now() - t0;
      })
      .catch(() => {})
      .then(() => {
        net.refreshBusy = false;
        scheduleRefresh();
      });
  }

  function startPolling() {
    if (net.polling) return;
    net.polling = true;
    net.etag = null;
    poll();
  }

  function stopPolling() {
    net.polling = false;
    net.pollOk = false;
    window.clearTimeout(net.pollTimer);
    net.pollTimer = 0;
  }

  // How many events a poll asks for: all the broker's ring may hold after
  // `since`. Asking for fewer would cut the oldest of a long burst (the
  // answer is the newest N), and the page could not tell: ids count the
  // broker's ticks too, so they have holes anyway.
  function pollLimit() {
    const ring = S.bounds && typeof S.bounds.recent_events === 'number' ? S.bounds.recent_events : 0;
    return Math.min(Math.max(POLL_LIMIT_MIN, ring), POLL_LIMIT_MAX);
  }

  function poll() {
    net.pollTimer = 0;
    if (!net.polling || net.pollBusy) return;
    net.pollBusy = true;
    const full = !S.haveState;
    const params = full ? null : { since: Math.max(S.lastId, S.floor), limit: pollLimit() };
    const headers = {};
    if (net.etag && !full) headers['If-None-Match'] = net.etag;
    const status = fetch(api('/api/dashboard/live/status', params), { cache: 'no-store', headers: headers });
    const health = fetch(api('/healthz'), { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
    Promise.all([status, health])
      .then(([resp, h]) => {
        // Polling stopped meanwhile (the stream is back): not busy any more,
        // or the next fallback would find the poller stuck.
        if (!net.polling) {
          net.pollBusy = false;
          return;
        }
        if (h && typeof h.broker_up === 'boolean') setLink(h.broker_up);
        if (resp.status === 304) return pollDone(true);
        if (resp.status === 503) return pollDone(true); // gateway starting
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        const etag = resp.headers.get('ETag');
        return resp.json().then((doc) => {
          if (!net.polling) {
            net.pollBusy = false;
            return;
          }
          if (!S.haveState || doc.epoch !== S.epoch) {
            if (full) fullLoad(doc);
            else {
              // Another history: load it whole on the next poll.
              S.haveState = false;
              S.epoch = null;
              net.etag = null;
              pollDone(true, true);
              return;
            }
          }
          else {
            const events = Array.isArray(doc.recent_events) ? doc.recent_events : [];
            for (let i = events.length - 1; i >= 0; i--) applyEvent(events[i]);
            mergeDoc(doc);
            // Every event up to the document's id has been applied.
            if (doc.id > S.floor) S.floor = doc.id;
          }
          net.etag = etag;
          pollDone(true);
        });
      })
      .catch(() => pollDone(false));
  }

  function pollDone(ok, soon) {
    net.pollBusy = false;
    const wasOk = net.pollOk;
    net.pollOk = ok;
    if (!net.polling) return;
    if (ok && !wasOk && net.sse === 'idle') {
      // The gateway answers again: try the stream now, not after the backoff.
      net.failures = Math.min(net.failures, 1);
      sseConnect();
    }
    setState();
    if (!ok) dirty.conn = true;
    net.pollTimer = window.setTimeout(poll, soon ? 50 : POLL_MS);
  }

  // ------------------------------------------------------------------------
  // The once-a-second tick: elapsed times, silence, the stream watchdog

  function tick() {
    dirty.tick = true;
    dirty.banner = true;
    dirty.spark = true;
    if (dirty.validators === false && S.validators.size) dirty.validators = true;
    if (net.sse === 'open' && Date.now() - net.lastByte > SSE_IDLE_MS && net.ctrl) {
      // Not even a keepalive: the connection is gone without a word.
      net.ctrl.abort();
    }
    schedule();
  }

  // ------------------------------------------------------------------------
  // Controls

  function onTaskClick(e) {
    const row = e.target.closest('.task');
    if (row && row._key) openTimeline(row._key);
  }

  function onEventClick(e) {
    const row = e.target.closest('.event');
    if (!row || !row._ev || row._ev.task_id === undefined) return;
    openTimeline(taskKey(row._ev.miner, row._ev.task_id));
  }

  function onKey(handler) {
    return (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        handler(e);
      }
    };
  }

  function setupNotify() {
    const btn = D.notify;
    if (!('Notification' in window)) return;
    btn.hidden = false;
    const label = () => {
      const p = Notification.permission;
      notifyPermission = p;
      if (p === 'granted') setText(btn, notifyOn() ? '🔔 Alerts on' : '🔕 Alerts off');
      else if (p === 'denied') setText(btn, '🔕 Alerts blocked');
      else setText(btn, '🔔 Alerts');
      setAttr(btn, 'title', p === 'granted' ? 'Desktop notifications for errors and failed tasks: click to turn ' + (notifyOn() ? 'off' : 'on')
        : p === 'denied' ? 'The browser blocks notifications for this page' : 'Ask the browser to show desktop notifications for errors and failed tasks');
      btn.disabled = p === 'denied';
      setAttr(btn, 'aria-pressed', p === 'granted' && notifyOn() ? 'true' : 'false');
    };
    label();
    btn.addEventListener('click', () => {
      if (Notification.permission === 'granted') {
        const on = !notifyOn();
        notifyPref = on;
        try {
          window.localStorage.setItem(NOTIFY_KEY, on ? 'on' : 'off');
        }
        catch (e) {
          // not kept: fine
        }
        label();
        return;
      }
      const p = Notification.requestPermission(() => label());
      if (p && typeof p.then === 'function') p.then(label, label);
    });
  }

  function setupSettings() {
    const input = D.silence;
    input.value = String(silenceMs() / 1000);
    input.addEventListener('change', () => {
      const v = Number(input.value);
      if (!isFinite(v) || v < 0) {
        input.value = String(silenceMs() / 1000);
        return;
      }
      try {
        window.localStorage.setItem(SILENCE_KEY, String(Math.round(v)));
      }
      catch (e) {
        // not kept: fine
      }
      silenceCache = Math.round(v) * 1000;
      bannerDismissed = '';
      dirty.banner = true;
      dirty.tick = true;
      schedule();
    });
  }

  function setupLinks() {
    // The footer's links carry the page's token too.
    if (token === null) return;
    for (const a of document.querySelectorAll('.foot a[href^="/"]')) {
      const href = a.getAttribute('href');
      a.setAttribute('href', api(href));
    }
  }

  function start() {
    for (const [k, id] of Object.entries({
      conn: 'conn', active: 'active', activeCount: 'active-count', activeEmpty: 'active-empty',
      events: 'events', eventsEmpty: 'events-empty', minerFilter: 'miner-filter',
      validatorsCount: 'validators-count', banner: 'banner', bannerText: 'banner-text',
      bannerDismiss: 'banner-dismiss', sparkThroughput: 'spark-throughput', sparkLatency: 'spark-latency',
      sparkThroughputValue: 'spark-throughput-value', sparkLatencyValue: 'spark-latency-value',
      toasts: 'toasts', timeline: 'timeline', timelineTitle: 'timeline-title', timelineMeta: 'timeline-meta',
      timelinePrompt: 'timeline-prompt', timelineEvents: 'timeline-events', timelineNote: 'timeline-note',
      timelineClose: 'timeline-close', notify: 'notify', silence: 'silence-s', clock: 'clock',
    }))
      D[k] = $(id);
    D.connText = D.conn.querySelector('.conn-text');
    D.validatorsBody = $('validators').tBodies[0];
    D.stats = {};
    for (const e of $('stats').querySelectorAll('[data-stat]')) D.stats[e.getAttribute('data-stat')] = e;

    D.active.addEventListener('click', onTaskClick);
    D.active.addEventListener('keydown', onKey(onTaskClick));
    D.events.addEventListener('click', onEventClick);
    D.events.addEventListener('keydown', onKey(onEventClick));
    D.timelineClose.addEventListener('click', closeTimeline);
    D.timeline.addEventListener('close', () => {
      if (timelineOpen) closeTimeline();
    });
    D.timeline.addEventListener('click', (e) => {
      if (e.target === D.timeline) closeTimeline(); // the backdrop
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && timelineOpen) closeTimeline();
    });
    D.toasts.addEventListener('click', (e) => {
      const toast = e.target.closest('.toast');
      if (!toast) return;
      window.clearTimeout(toast._timer);
      toast.remove();
      if (!e.target.closest('.toast-close') && toast._key && findTask(toast._key)) openTimeline(toast._key);
    });
    D.minerFilter.addEventListener('change', () => {
      filter = D.minerFilter.value;
      dirty.tasksAll = true;
      dirty.eventsAll = true;
      schedule();
    });
    D.bannerDismiss.addEventListener('click', () => {
      // Silent miners and validators are acknowledged one by one (their
      // silence grows every second, so the text alone would come back); an
      // acknowledged one shows again only after it spoke and went quiet again.
      const limit = silenceMs();
      if (limit > 0) {
        const now = brokerNow();
        const ack = (x) => {
          if (x.watched && x.last_seen > 0 && now - x.last_seen >= limit) x.acked = true;
        };
        for (const m of S.miners.values()) ack(m);
        for (const v of S.validators.values()) ack(v);
      }
      bannerDismissed = S.link ? '' : LINK_DOWN_TEXT;
      dirty.banner = true;
      schedule();
    });
    setupNotify();
    setupSettings();
    setupLinks();

    const debug = {};
    Object.defineProperties(debug, {
      transport: { get: () => net.state, enumerable: true },
      lastId: { get: () => S.lastId, enumerable: true },
      applied: { get: () => S.applied, enumerable: true },
      renders: { get: () => S.renders, enumerable: true },
    });
    Object.freeze(debug);
    Object.defineProperty(window, 'mwDashboard', { value: debug, writable: false, enumerable: true });

    window.setInterval(tick, 1000);
    sseConnect();
    markAll();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
