/*  mw_state.c - the broker's state: a pure, bounded fold of events.

    mw_state_apply folds one accepted event in; mw_state_tick advances
    time. Neither reads a clock, does I/O or draws a random number, so a
    gateway that loads a snapshot and applies the same updates holds the
    same state, byte for byte. Everything below is bounded by the config.

    Structures (see mw_state_priv.h for the fields):

    - Active tasks: a record per (miner, task_id) in our own hash index
      (open addressing, linear probing, backward-shift deletion) whose
      capacity is fixed at creation to the power of two >= 2 x
      max_active_tasks, so the load factor never exceeds 0.5 and the table
      never grows or rehashes. We do not use czmq's zhashx: 4.2.1 grows its
      table without bound when a chain passes its limit. The records are
      also in a doubly-linked list in start order (deterministic iteration,
      O(1) eviction of the oldest) and in a min-heap of deadlines for
      expiry. A keyed hash would resist crafted collisions better, but the
      state must not draw randomness; the cost of a hostile set of task ids
      is longer probes (bounded by the capacity), never more memory.
    - The heap is lazy: an event that touches a task moves its deadline
      later without touching the heap (O(1)); tick pops an entry whose
      stored deadline passed, and re-files it if the task's real deadline
      has not. Stored deadlines are never later than real ones (a touch that
      makes a deadline earlier, e.g. a broker clock stepping back, sifts it
      up at once), so tick finds every expired task. Which tasks expire at a
      tick therefore depends only on the tasks, and tick moves them to the
      history sorted by (deadline, serial): a loaded snapshot, whose heap is
      built fresh, expires the same tasks in the same order.
    - Finished tasks, recent events and validator interactions: rings of
      pointers, fixed at creation. A second hash index maps (miner, task_id)
      to the newest finished record, so a late event of a finished task is
      recognised (counted as an orphan) instead of resurrecting it.
    - Miners and validators: hash indexes, a list in order of first
      appearance (what readers iterate) and an LRU list (what the cap
      evicts). Validators are keyed by hotkey when known, else by IP; an
      event carrying both links the IP to that hotkey's record.
    - Readers index into lists through a remembered cursor, so walking
      0..count-1 is O(1) a step. That makes even readers writers of the
      cursor: one thread at a time per state, as for apply.

    Memory: every allocation is counted in self->bytes (sizes as requested,
    without malloc's own overhead), which mw_state_memory reports.
*/
#include "mw_state_priv.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double mw_hist_bounds[MW_HIST_BUCKETS - 1] = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500};

const char mw_state_priv_empty[1] = "";

#define S_NOT_IN_HEAP   SIZE_MAX
#define S_ACTIVITY_STRS 4

//  --------------------------------------------------------------------------
//  Configuration

void
mw_state_config_default (mw_state_config_t *cfg)
{
    assert (cfg);
    cfg->recent_events = 1000;
    cfg->task_history = 500;
    cfg->validator_activity = 200;
    cfg->max_active_tasks = 10000;
    cfg->max_validators = 1000;
    cfg->max_miners = 1000;
    cfg->task_timeout_ms = 300000;
    cfg->timeout_grace_ms = 30000;
}

static int s_config_fail (char *errbuf, size_t errbuf_size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_config_fail (char *errbuf, size_t errbuf_size, const char *fmt, ...)
{
    if (errbuf && errbuf_size) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (errbuf, errbuf_size, fmt, ap);
        va_end (ap);
    }
    return -1;
}

int
mw_state_config_check (const mw_state_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    if (!cfg)
        return s_config_fail (errbuf, errbuf_size, "state config: none given");
    const struct {
        const char *name;
        uint32_t value;
    } bounds[] = {
        {"recent_events", cfg->recent_events},
        {"task_history", cfg->task_history},
        {"validator_activity", cfg->validator_activity},
        {"max_active_tasks", cfg->max_active_tasks},
        {"max_validators", cfg->max_validators},
        {"max_miners", cfg->max_miners},
    };
    for (size_t i = 0; i < sizeof (bounds) / sizeof (bounds[0]); i++)
        if (bounds[i].value < 1 || bounds[i].value > MW_STATE_BOUND_MAX)
            return s_config_fail (errbuf, errbuf_size,
                                  "state config: %s is %u, expected 1 to %u; "
                                  "set it within that range",
                                  bounds[i].name, bounds[i].value, MW_STATE_BOUND_MAX);
    if (cfg->task_timeout_ms < 1000)
        return s_config_fail (errbuf, errbuf_size,
                              "state config: task_timeout_ms is %llu, expected at least 1000 "
                              "(1 s); a shorter timeout would expire tasks between two events",
                              (unsigned long long) cfg->task_timeout_ms);
    if (cfg->timeout_grace_ms < 1000)
        return s_config_fail (errbuf, errbuf_size,
                              "state config: timeout_grace_ms is %llu, expected at least 1000 "
                              "(1 s), the broker's tick period",
                              (unsigned long long) cfg->timeout_grace_ms);
    return 0;
}

const char *
mw_task_status_name (mw_task_status_t status)
{
    switch (status) {
        case MW_TASK_ACTIVE:
            return "active";
        case MW_TASK_SUCCEEDED:
            return "succeeded";
        case MW_TASK_FAILED:
            return "failed";
        case MW_TASK_STALE:
            return "stale";
        case MW_TASK_EVICTED:
            return "evicted";
    }
    return "unknown";
}

//  --------------------------------------------------------------------------
//  Histogram

//  Seconds as the aggregates take them: NaN and negatives as 0, infinities
//  and absurd values as 1e9 s, so a hostile response_time cannot turn a
//  sum into Inf or NaN (which would poison every mean after it).
static double
s_seconds (double v)
{
    if (!(v >= 0))
        return 0;
    if (v > 1e9)
        return 1e9;
    return v;
}

static void
s_hist_add (mw_hist_t *hist, double v)
{
    size_t i = 0;
    while (i < MW_HIST_BUCKETS - 1 && v > mw_hist_bounds[i])
        i++;
    hist->counts[i]++;
    hist->count++;
    hist->sum += v;
}

double
mw_hist_quantile (const mw_hist_t *hist, double q)
{
    assert (hist);
    if (hist->count == 0)
        return 0;
    if (!(q >= 0))
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double) hist->count;
    uint64_t below = 0;
    for (size_t i = 0; i < MW_HIST_BUCKETS; i++) {
        if (hist->counts[i] == 0)
            continue;
        uint64_t upto = below + hist->counts[i];
        if ((double) upto >= rank) {
            //  As Prometheus does: the +Inf bucket answers its lower bound.
            if (i == MW_HIST_BUCKETS - 1)
                return mw_hist_bounds[MW_HIST_BUCKETS - 2];
            double lo = i ? mw_hist_bounds[i - 1] : 0;
            double hi = mw_hist_bounds[i];
            return lo + (hi - lo) * (rank - (double) below) / (double) hist->counts[i];
        }
        below = upto;
    }
    //  Only if the buckets disagree with count (they never do here).
    return mw_hist_bounds[MW_HIST_BUCKETS - 2];
}

//  --------------------------------------------------------------------------
//  Memory: every allocation goes through these, so self->bytes is exact.

static void *
s_alloc (mw_state_t *self, size_t size)
{
    void *p = malloc (size);
    if (p)
        self->bytes += size;
    else
        self->alloc_failures++;
    return p;
}

static void *
s_calloc (mw_state_t *self, size_t count, size_t size)
{
    void *p = calloc (count, size);
    if (p)
        self->bytes += count * size;
    else
        self->alloc_failures++;
    return p;
}

static void
s_free (mw_state_t *self, void *p, size_t size)
{
    if (p) {
        free (p);
        self->bytes -= size;
    }
}

//  Cut len bytes at limit on a UTF-8 boundary: if the byte at the cut is a
//  continuation byte, back off to the start of its sequence (at most 3
//  bytes, so invalid UTF-8 cannot make this loop). As the codec does.
static size_t
s_utf8_cut (const char *s, size_t len, size_t limit)
{
    if (len <= limit)
        return len;
    size_t cut = limit;
    for (int i = 0; i < 3 && cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80; i++)
        cut--;
    return cut;
}

size_t
mw_state_priv_str_len (const char *p, size_t len, size_t limit)
{
    if (!p)
        return 0;
    const char *nul = (const char *) memchr (p, 0, len);
    if (nul)
        len = (size_t) (nul - p);
    return s_utf8_cut (p, len, limit);
}

const char *
mw_state_priv_str_dup (mw_state_t *self, const char *p, size_t len)
{
    if (len == 0)
        return mw_state_priv_empty;
    char *s = (char *) s_alloc (self, len + 1);
    if (!s)
        return NULL;
    memcpy (s, p, len);
    s[len] = 0;
    return s;
}

static void
s_str_free (mw_state_t *self, const char *s)
{
    if (s && s != mw_state_priv_empty)
        s_free (self, (void *) s, strlen (s) + 1);
}

//  Replace *dst with (p, len) already cut; keeps *dst if equal (a repeated
//  step name costs no allocation). Out of memory keeps the old value.
static void
s_str_set (mw_state_t *self, const char **dst, const char *p, size_t len)
{
    if (strlen (*dst) == len && memcmp (*dst, p, len) == 0)
        return;
    const char *s = mw_state_priv_str_dup (self, p, len);
    if (!s)
        return;
    s_str_free (self, *dst);
    *dst = s;
}

//  mw_str_key_limit, inlined: apply asks it for every string it reads.
static inline size_t
s_key_limit (mw_str_key_t key)
{
    return key == MW_K_TASK_ID ? MW_MAX_TASK_ID : key == MW_K_MINER ? MW_MAX_MINER : MW_MAX_STR;
}

//  An event string, cut as the state stores it; ptr NULL if absent.
static mw_str_t
s_ev_str (const mw_event_t *ev, mw_str_key_t key)
{
    mw_str_t s = ev->str[key];
    if (s.ptr)
        s.len = (uint32_t) mw_state_priv_str_len (s.ptr, s.len, s_key_limit (key));
    return s;
}

static void
s_ev_str_set (mw_state_t *self, const char **dst, const mw_event_t *ev, mw_str_key_t key)
{
    mw_str_t s = s_ev_str (ev, key);
    if (s.ptr)
        s_str_set (self, dst, s.ptr, s.len);
}

static uint64_t
s_sat_add (uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

//  --------------------------------------------------------------------------
//  Hash index

//  Hash 8 bytes at a time (a byte-at-a-time FNV costs a multiply per byte,
//  which showed at the top of apply's profile), then a 64-bit finaliser so
//  the low bits we mask are well mixed. Not keyed: see the top of the file.
static uint64_t
s_hash_bytes (uint64_t h, const char *p, size_t len)
{
    while (len >= 8) {
        uint64_t w;
        memcpy (&w, p, 8);
        h = (h ^ (w * 0x9e3779b97f4a7c15ULL));
        h = ((h << 31) | (h >> 33)) * 0xbf58476d1ce4e5b9ULL;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy (&w, p, len);
    h = (h ^ (w * 0x9e3779b97f4a7c15ULL) ^ len);
    return ((h << 31) | (h >> 33)) * 0xbf58476d1ce4e5b9ULL;
}

static uint32_t
s_hash (const char *a, size_t alen, const char *b, size_t blen)
{
    //  alen in the seed of the second part keeps ("ab", "c") apart from
    //  ("a", "bc").
    uint64_t h = s_hash_bytes (0x243f6a8885a308d3ULL, a, alen);
    h = s_hash_bytes (h ^ alen, b, blen);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (uint32_t) h;
}

static mw_hkey_t
s_hkey (const char *a, size_t alen, const char *b, size_t blen)
{
    mw_hkey_t key = {a, b ? b : "", (uint32_t) alen, (uint32_t) blen, 0};
    key.hash = s_hash (a, alen, key.b, blen);
    return key;
}

static bool
s_hkey_equal (const mw_hkey_t *x, const mw_hkey_t *y)
{
    return x->hash == y->hash && x->alen == y->alen && x->blen == y->blen &&
           memcmp (x->a, y->a, x->alen) == 0 && memcmp (x->b, y->b, x->blen) == 0;
}

//  Capacity: the power of two >= 2 x bound (load factor <= 0.5), at least 8.
static int
s_index_init (mw_state_t *self, mw_index_t *ix, uint32_t bound)
{
    size_t cap = 8;
    while (cap < 2 * (size_t) bound)
        cap <<= 1;
    ix->slots = (mw_hkey_t **) s_calloc (self, cap, sizeof (mw_hkey_t *));
    ix->mask = cap - 1;
    ix->used = 0;
    return ix->slots ? 0 : -1;
}

//  Slot of a key equal to probe, or of the empty slot that ends its run.
static size_t
s_index_slot (const mw_index_t *ix, const mw_hkey_t *probe)
{
    size_t i = probe->hash & ix->mask;
    while (ix->slots[i] && !s_hkey_equal (ix->slots[i], probe))
        i = (i + 1) & ix->mask;
    return i;
}

static mw_hkey_t *
s_index_find (const mw_index_t *ix, const mw_hkey_t *probe)
{
    return ix->slots[s_index_slot (ix, probe)];
}

//  Insert key, or replace an equal key. The callers keep used <= the bound,
//  half the capacity, so an empty slot always ends the probe.
static void
s_index_put (mw_index_t *ix, mw_hkey_t *key)
{
    size_t i = s_index_slot (ix, key);
    if (!ix->slots[i]) {
        assert (ix->used < ix->mask);
        ix->used++;
    }
    ix->slots[i] = key;
}

//  Remove this very key (by identity) if the index holds it.
static void
s_index_remove (mw_index_t *ix, const mw_hkey_t *key)
{
    size_t i = key->hash & ix->mask;
    while (ix->slots[i] && ix->slots[i] != key)
        i = (i + 1) & ix->mask;
    if (!ix->slots[i])
        return;
    //  Backward shift: pull later entries of the run into the hole when
    //  their home slot is at or before it, so no tombstone is left.
    size_t j = i;
    for (;;) {
        j = (j + 1) & ix->mask;
        if (!ix->slots[j])
            break;
        size_t home = ix->slots[j]->hash & ix->mask;
        if (((j - home) & ix->mask) >= ((j - i) & ix->mask)) {
            ix->slots[i] = ix->slots[j];
            i = j;
        }
    }
    ix->slots[i] = NULL;
    ix->used--;
}

//  --------------------------------------------------------------------------
//  Lists

static void
s_list_append (mw_list_t *list, mw_link_t *node)
{
    node->next = NULL;
    node->prev = list->tail;
    if (list->tail)
        list->tail->next = node;
    else
        list->head = node;
    list->tail = node;
    list->count++;
}

static void
s_list_remove (mw_list_t *list, mw_link_t *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        list->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        list->tail = node->prev;
    node->prev = node->next = NULL;
    list->count--;
}

static void
s_list_to_tail (mw_list_t *list, mw_link_t *node)
{
    if (list->tail != node) {
        s_list_remove (list, node);
        s_list_append (list, node);
    }
}

//  Node at index, walking from the nearest of head, tail and the cursor.
static const mw_link_t *
s_list_at (const mw_list_t *list, mw_cursor_t *cursor, size_t index)
{
    if (index >= list->count)
        return NULL;
    const mw_link_t *node = list->head;
    size_t at = 0;
    size_t best = index;
    if (list->count - 1 - index < best) {
        node = list->tail;
        at = list->count - 1;
        best = list->count - 1 - index;
    }
    if (cursor->node) {
        size_t dist = cursor->index > index ? cursor->index - index : index - cursor->index;
        if (dist < best) {
            node = cursor->node;
            at = cursor->index;
        }
    }
    while (at < index) {
        node = node->next;
        at++;
    }
    while (at > index) {
        node = node->prev;
        at--;
    }
    cursor->node = node;
    cursor->index = index;
    return node;
}

//  --------------------------------------------------------------------------
//  Deadline heap (lazy; see the top of the file)

//  The broker time after which a silent task is stale: its own timeout_ms
//  plus the grace, or task_timeout_ms when it has none (a timeout_ms of 0
//  counts as none). Saturating: a huge timeout_ms means never.
static uint64_t
s_task_deadline (const mw_state_t *self, const mw_task_rec_t *task)
{
    uint64_t silence = task->pub.timeout_ms
                           ? s_sat_add (task->pub.timeout_ms, self->cfg.timeout_grace_ms)
                           : self->cfg.task_timeout_ms;
    return s_sat_add (task->pub.last_seen_ms, silence);
}

static bool
s_heap_before (const mw_heap_entry_t *a, const mw_heap_entry_t *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->serial < b->serial);
}

static void
s_heap_place (mw_state_t *self, size_t pos, mw_heap_entry_t entry)
{
    self->heap[pos] = entry;
    entry.task->heap_pos = pos;
}

static void
s_heap_up (mw_state_t *self, size_t pos)
{
    mw_heap_entry_t entry = self->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!s_heap_before (&entry, &self->heap[parent]))
            break;
        s_heap_place (self, pos, self->heap[parent]);
        pos = parent;
    }
    s_heap_place (self, pos, entry);
}

static void
s_heap_down (mw_state_t *self, size_t pos)
{
    mw_heap_entry_t entry = self->heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= self->heap_count)
            break;
        if (child + 1 < self->heap_count &&
            s_heap_before (&self->heap[child + 1], &self->heap[child]))
            child++;
        if (!s_heap_before (&self->heap[child], &entry))
            break;
        s_heap_place (self, pos, self->heap[child]);
        pos = child;
    }
    s_heap_place (self, pos, entry);
}

//  Make room for one more heap entry (and tick's scratch of the same
//  size). Both grow by doubling up to max_active_tasks. Return 0 or -1.
static int
s_heap_reserve (mw_state_t *self)
{
    if (self->heap_count < self->heap_alloc)
        return 0;
    size_t cap = self->heap_alloc ? self->heap_alloc * 2 : 64;
    if (cap > self->cfg.max_active_tasks)
        cap = self->cfg.max_active_tasks;
    if (cap <= self->heap_count)
        return -1;
    //  The scratch first: expired_alloc >= heap_alloc always holds, so
    //  tick has room for every task the heap can hold.
    if (self->expired_alloc < cap) {
        mw_heap_entry_t *expired =
            (mw_heap_entry_t *) realloc (self->expired, cap * sizeof (*expired));
        if (!expired) {
            self->alloc_failures++;
            return -1;
        }
        self->expired = expired;
        self->bytes += (cap - self->expired_alloc) * sizeof (*expired);
        self->expired_alloc = cap;
    }
    mw_heap_entry_t *heap = (mw_heap_entry_t *) realloc (self->heap, cap * sizeof (*heap));
    if (!heap) {
        self->alloc_failures++;
        return -1;
    }
    self->heap = heap;
    self->bytes += (cap - self->heap_alloc) * sizeof (*heap);
    self->heap_alloc = cap;
    return 0;
}

static void
s_heap_push (mw_state_t *self, mw_task_rec_t *task)
{
    assert (self->heap_count < self->heap_alloc);
    mw_heap_entry_t entry = {task, s_task_deadline (self, task), task->serial};
    self->heap[self->heap_count] = entry;
    task->heap_pos = self->heap_count++;
    s_heap_up (self, task->heap_pos);
}

static void
s_heap_remove (mw_state_t *self, mw_task_rec_t *task)
{
    size_t pos = task->heap_pos;
    if (pos == S_NOT_IN_HEAP)
        return;
    task->heap_pos = S_NOT_IN_HEAP;
    self->heap_count--;
    if (pos == self->heap_count)
        return;
    s_heap_place (self, pos, self->heap[self->heap_count]);
    if (pos > 0 && s_heap_before (&self->heap[pos], &self->heap[(pos - 1) / 2]))
        s_heap_up (self, pos);
    else
        s_heap_down (self, pos);
}

//  Keep the heap's promise (stored deadline <= real deadline) after a
//  change that may have made the deadline earlier.
static void
s_heap_fix (mw_state_t *self, mw_task_rec_t *task)
{
    if (task->heap_pos == S_NOT_IN_HEAP)
        return;
    uint64_t deadline = s_task_deadline (self, task);
    if (deadline < self->heap[task->heap_pos].deadline) {
        self->heap[task->heap_pos].deadline = deadline;
        s_heap_up (self, task->heap_pos);
    }
}

//  --------------------------------------------------------------------------
//  Rates: finished tasks per 10-second bucket of broker time

//  Advance the newest bucket to now's, clearing the buckets skipped. A
//  broker clock that steps back keeps counting into the newest bucket.
static void
s_rate_roll (mw_state_t *self, uint64_t now)
{
    uint64_t bucket = now / MW_RATE_BUCKET_MS;
    if (bucket <= self->rate_head)
        return;
    uint64_t skip = bucket - self->rate_head;
    if (skip > MW_RATE_BUCKETS)
        skip = MW_RATE_BUCKETS;
    for (uint64_t i = 1; i <= skip; i++)
        self->rate[(self->rate_head + i) % MW_RATE_BUCKETS] = 0;
    self->rate_head = bucket;
}

//  Tasks per minute over the last `minutes`: the newest (partial) bucket,
//  the full ones before it, and the share of the oldest bucket the window
//  still covers, assuming its finishes were spread evenly. Before the
//  state is `minutes` old this still divides by `minutes`, like a load
//  average warming up.
static double
s_rate_per_min (const mw_state_t *self, unsigned minutes)
{
    size_t n = (size_t) minutes * 60000 / MW_RATE_BUCKET_MS;
    assert (n < MW_RATE_BUCKETS);
    uint64_t head_start = self->rate_head * MW_RATE_BUCKET_MS;
    uint64_t into = self->now > head_start ? self->now - head_start : 0;
    if (into > MW_RATE_BUCKET_MS)
        into = MW_RATE_BUCKET_MS;
    size_t head = (size_t) (self->rate_head % MW_RATE_BUCKETS);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double) self->rate[(head + MW_RATE_BUCKETS - i) % MW_RATE_BUCKETS];
    double share = 1.0 - (double) into / MW_RATE_BUCKET_MS;
    sum += share * (double) self->rate[(head + MW_RATE_BUCKETS - n) % MW_RATE_BUCKETS];
    return sum / minutes;
}

//  --------------------------------------------------------------------------
//  Miners

static mw_miner_rec_t *
s_miner_find (const mw_state_t *self, const char *name, size_t len)
{
    mw_hkey_t probe = s_hkey (name, len, NULL, 0);
    mw_hkey_t *key = s_index_find (&self->miners_index, &probe);
    return key ? MW_CONTAINER (key, mw_miner_rec_t, key) : NULL;
}

static void
s_miner_destroy (mw_state_t *self, mw_miner_rec_t *miner)
{
    s_index_remove (&self->miners_index, &miner->key);
    s_list_remove (&self->miners, &miner->order);
    s_list_remove (&self->miners_lru, &miner->lru);
    s_free (self, miner, sizeof (*miner) + miner->key.alen + 1);
}

static mw_miner_rec_t *
s_miner_new (mw_state_t *self, const char *name, size_t len)
{
    if (self->miners.count >= self->cfg.max_miners) {
        mw_miner_rec_t *oldest = MW_CONTAINER (self->miners_lru.head, mw_miner_rec_t, lru);
        s_miner_destroy (self, oldest);
        self->st.miners_evicted++;
    }
    mw_miner_rec_t *miner = (mw_miner_rec_t *) s_alloc (self, sizeof (*miner) + len + 1);
    if (!miner)
        return NULL;
    memset (miner, 0, sizeof (*miner));
    memcpy (miner->name, name, len);
    miner->name[len] = 0;
    miner->pub.miner = miner->name;
    miner->key = s_hkey (miner->name, len, NULL, 0);
    s_index_put (&self->miners_index, &miner->key);
    s_list_append (&self->miners, &miner->order);
    s_list_append (&self->miners_lru, &miner->lru);
    return miner;
}

//  The miner of an event: found or created, touched, its publisher
//  session accounted. Loss accounting per (miner, sid): seq last+1 is the
//  normal case; a jump adds the events skipped to lost; seq <= last is a
//  duplicate (counted; the event is still folded: the broker decides what
//  to accept, the state counts what it saw). A sid the miner record has
//  not seen starts from last_seq 0, so seq - 1 events of it count as lost:
//  that is the slow-joiner loss at a publisher's start, which must not go
//  unseen. The cost: a broker that starts without its state file counts
//  the earlier events of running sessions as lost, as does a miner evicted
//  and seen again; both are events this state never saw. Every new sid
//  after a record's first is a restart.
static mw_miner_rec_t *
s_miner_touch (mw_state_t *self, const mw_event_t *ev)
{
    mw_str_t name = s_ev_str (ev, MW_K_MINER);
    const char *ptr = name.ptr ? name.ptr : "";
    mw_miner_rec_t *miner = s_miner_find (self, ptr, name.len);
    bool fresh = false;
    if (miner)
        s_list_to_tail (&self->miners_lru, &miner->lru);
    else {
        miner = s_miner_new (self, ptr, name.len);
        if (!miner)
            return NULL;
        miner->created_id = ev->id;
        fresh = true;
    }
    miner->touch_id = ev->id;
    miner->pub.last_seen_ms = self->now;
    miner->pub.events++;
    if (fresh || ev->sid != miner->pub.sid) {
        if (!fresh) {
            miner->pub.restarts++;
            self->st.publisher_restarts++;
        }
        miner->pub.sid = ev->sid;
        miner->pub.last_seq = 0;
    }
    uint64_t last = miner->pub.last_seq;
    if (ev->seq > last) {
        uint64_t lost = ev->seq - last - 1;
        miner->pub.lost += lost;
        self->st.lost_events += lost;
        miner->pub.last_seq = ev->seq;
    }
    else {
        miner->pub.duplicates++;
        self->st.duplicate_events++;
    }
    return miner;
}

//  --------------------------------------------------------------------------
//  Validators

static mw_validator_rec_t *
s_validator_by_hotkey (const mw_state_t *self, const char *hotkey, size_t len)
{
    mw_hkey_t probe = s_hkey (hotkey, len, NULL, 0);
    mw_hkey_t *key = s_index_find (&self->validators_hk, &probe);
    return key ? MW_CONTAINER (key, mw_validator_rec_t, hk_key) : NULL;
}

static mw_validator_rec_t *
s_validator_by_ip (const mw_state_t *self, const char *ip, size_t len)
{
    mw_hkey_t probe = s_hkey (ip, len, NULL, 0);
    mw_hkey_t *key = s_index_find (&self->validators_ip, &probe);
    return key ? MW_CONTAINER (key, mw_validator_rec_t, ip_key) : NULL;
}

static void
s_validator_unlink_ip (mw_state_t *self, mw_validator_rec_t *v)
{
    if (v->ip_linked) {
        s_index_remove (&self->validators_ip, &v->ip_key);
        v->ip_linked = false;
    }
}

//  Make ip resolve to v (and to no other record). Return 0 or -1.
static int
s_validator_link_ip (mw_state_t *self, mw_validator_rec_t *v, const char *ip, size_t len)
{
    if (v->ip_linked && v->ip_key.alen == len && memcmp (v->pub.ip, ip, len) == 0)
        return 0;
    mw_validator_rec_t *other = s_validator_by_ip (self, ip, len);
    const char *copy = mw_state_priv_str_dup (self, ip, len);
    if (!copy)
        return -1;
    if (other && other != v)
        s_validator_unlink_ip (self, other);
    s_validator_unlink_ip (self, v);
    s_str_free (self, v->pub.ip);
    v->pub.ip = copy;
    v->ip_key = s_hkey (copy, len, NULL, 0);
    s_index_put (&self->validators_ip, &v->ip_key);
    v->ip_linked = true;
    return 0;
}

static int
s_validator_set_hotkey (mw_state_t *self, mw_validator_rec_t *v, const char *hotkey, size_t len)
{
    const char *copy = mw_state_priv_str_dup (self, hotkey, len);
    if (!copy)
        return -1;
    assert (v->pub.hotkey == mw_state_priv_empty);
    v->pub.hotkey = copy;
    v->hk_key = s_hkey (copy, len, NULL, 0);
    s_index_put (&self->validators_hk, &v->hk_key);
    return 0;
}

static void
s_validator_destroy (mw_state_t *self, mw_validator_rec_t *v)
{
    if (v->pub.hotkey[0])
        s_index_remove (&self->validators_hk, &v->hk_key);
    s_validator_unlink_ip (self, v);
    s_list_remove (&self->validators, &v->order);
    s_list_remove (&self->validators_lru, &v->lru);
    s_str_free (self, v->pub.hotkey);
    s_str_free (self, v->pub.ip);
    s_free (self, v, sizeof (*v));
}

static mw_validator_rec_t *
s_validator_new (mw_state_t *self)
{
    if (self->validators.count >= self->cfg.max_validators) {
        mw_validator_rec_t *oldest =
            MW_CONTAINER (self->validators_lru.head, mw_validator_rec_t, lru);
        s_validator_destroy (self, oldest);
        self->st.validators_evicted++;
    }
    mw_validator_rec_t *v = (mw_validator_rec_t *) s_alloc (self, sizeof (*v));
    if (!v)
        return NULL;
    memset (v, 0, sizeof (*v));
    v->pub.hotkey = mw_state_priv_empty;
    v->pub.ip = mw_state_priv_empty;
    s_list_append (&self->validators, &v->order);
    s_list_append (&self->validators_lru, &v->lru);
    return v;
}

//  The validator record of (hotkey, ip) without changing anything: by
//  hotkey when there is one, else the record the IP resolves to.
static mw_validator_rec_t *
s_validator_find (const mw_state_t *self, const char *hotkey, const char *ip)
{
    if (hotkey[0])
        return s_validator_by_hotkey (self, hotkey, strlen (hotkey));
    if (ip[0])
        return s_validator_by_ip (self, ip, strlen (ip));
    return NULL;
}

//  A validator interaction: find the record, or adopt the IP-only record
//  of this IP when a hotkey shows up for it, or create one; link the IP;
//  touch it. Return NULL if neither is given (or memory runs out).
static mw_validator_rec_t *
s_validator_seen (mw_state_t *self, mw_str_t hotkey, mw_str_t ip, uint64_t id)
{
    size_t hklen = hotkey.ptr ? hotkey.len : 0;
    size_t iplen = ip.ptr ? ip.len : 0;
    mw_validator_rec_t *v = NULL;
    if (hklen) {
        v = s_validator_by_hotkey (self, hotkey.ptr, hklen);
        if (!v && iplen) {
            mw_validator_rec_t *by_ip = s_validator_by_ip (self, ip.ptr, iplen);
            if (by_ip && !by_ip->pub.hotkey[0] &&
                s_validator_set_hotkey (self, by_ip, hotkey.ptr, hklen) == 0)
                v = by_ip;
        }
        if (!v) {
            v = s_validator_new (self);
            if (!v)
                return NULL;
            if (s_validator_set_hotkey (self, v, hotkey.ptr, hklen) != 0) {
                s_validator_destroy (self, v);
                return NULL;
            }
        }
        if (iplen)
            s_validator_link_ip (self, v, ip.ptr, iplen);
    }
    else if (iplen) {
        v = s_validator_by_ip (self, ip.ptr, iplen);
        if (!v) {
            v = s_validator_new (self);
            if (!v)
                return NULL;
            if (s_validator_link_ip (self, v, ip.ptr, iplen) != 0) {
                s_validator_destroy (self, v);
                return NULL;
            }
        }
    }
    else
        return NULL;
    v->pub.last_seen_ms = self->now;
    v->touch_id = id;
    s_list_to_tail (&self->validators_lru, &v->lru);
    return v;
}

//  --------------------------------------------------------------------------
//  Validator activity ring

static void
s_activity_free (mw_state_t *self, mw_activity_rec_t *rec)
{
    if (rec)
        s_free (self, rec, rec->size);
}

static int
s_activity_push (mw_state_t *self, uint64_t id, uint64_t time_ms, mw_type_t kind,
                 const mw_str_t strs[S_ACTIVITY_STRS])
{
    static const mw_str_key_t keys[S_ACTIVITY_STRS] = {MW_K_MINER, MW_K_TASK_ID, MW_K_VALIDATOR_IP,
                                                       MW_K_VALIDATOR_HOTKEY};
    size_t lens[S_ACTIVITY_STRS];
    size_t size = sizeof (mw_activity_rec_t);
    for (int i = 0; i < S_ACTIVITY_STRS; i++) {
        lens[i] = mw_state_priv_str_len (strs[i].ptr, strs[i].ptr ? strs[i].len : 0,
                                         mw_str_key_limit (keys[i]));
        size += lens[i] + 1;
    }
    mw_activity_rec_t *rec = (mw_activity_rec_t *) s_alloc (self, size);
    if (!rec)
        return -1;
    rec->size = size;
    rec->pub.id = id;
    rec->pub.time_ms = time_ms;
    rec->pub.kind = kind;
    const char **dst[S_ACTIVITY_STRS] = {&rec->pub.miner, &rec->pub.task_id, &rec->pub.validator_ip,
                                         &rec->pub.validator_hotkey};
    char *p = rec->buf;
    for (int i = 0; i < S_ACTIVITY_STRS; i++) {
        if (lens[i])
            memcpy (p, strs[i].ptr, lens[i]);
        p[lens[i]] = 0;
        *dst[i] = p;
        p += lens[i] + 1;
    }
    size_t cap = self->cfg.validator_activity;
    s_activity_free (self, self->activity[self->activity_head]);
    self->activity[self->activity_head] = rec;
    self->activity_head = (self->activity_head + 1) % cap;
    if (self->activity_count < cap)
        self->activity_count++;
    return 0;
}

int
mw_state_priv_add_activity (mw_state_t *self, uint64_t id, uint64_t time_ms, mw_type_t kind,
                            const mw_str_t strs[4])
{
    return s_activity_push (self, id, time_ms, kind, strs);
}

//  An interaction with validator v through event ev: the event's own
//  validator strings where it has them, else the record's.
static void
s_activity_add (mw_state_t *self, const mw_event_t *ev, const mw_validator_rec_t *v)
{
    mw_str_t ip = s_ev_str (ev, MW_K_VALIDATOR_IP);
    mw_str_t hk = s_ev_str (ev, MW_K_VALIDATOR_HOTKEY);
    if (!ip.ptr || !ip.len)
        ip = (mw_str_t){v->pub.ip, (uint32_t) strlen (v->pub.ip)};
    if (!hk.ptr || !hk.len)
        hk = (mw_str_t){v->pub.hotkey, (uint32_t) strlen (v->pub.hotkey)};
    mw_str_t strs[S_ACTIVITY_STRS] = {ev->str[MW_K_MINER], ev->str[MW_K_TASK_ID], ip, hk};
    s_activity_push (self, ev->id, self->now, ev->kind, strs);
}

//  --------------------------------------------------------------------------
//  Tasks

mw_task_rec_t *
mw_state_priv_task_alloc (mw_state_t *self, const char *miner, size_t mlen, const char *task_id,
                          size_t tlen)
{
    size_t size = sizeof (mw_task_rec_t) + mlen + 1 + tlen + 1;
    mw_task_rec_t *task = (mw_task_rec_t *) s_alloc (self, size);
    if (!task)
        return NULL;
    memset (task, 0, sizeof (*task));
    task->size = size;
    char *m = task->keybuf;
    char *t = task->keybuf + mlen + 1;
    if (mlen)
        memcpy (m, miner, mlen);
    m[mlen] = 0;
    if (tlen)
        memcpy (t, task_id, tlen);
    t[tlen] = 0;
    task->pub.miner = m;
    task->pub.task_id = t;
    task->pub.prompt = mw_state_priv_empty;
    task->pub.url = mw_state_priv_empty;
    task->pub.validator_ip = mw_state_priv_empty;
    task->pub.validator_hotkey = mw_state_priv_empty;
    task->pub.current_step = mw_state_priv_empty;
    task->pub.error = mw_state_priv_empty;
    task->key = s_hkey (m, mlen, t, tlen);
    task->heap_pos = S_NOT_IN_HEAP;
    return task;
}

void
mw_state_priv_task_free (mw_state_t *self, mw_task_rec_t *task)
{
    if (!task)
        return;
    s_str_free (self, task->pub.prompt);
    s_str_free (self, task->pub.url);
    s_str_free (self, task->pub.validator_ip);
    s_str_free (self, task->pub.validator_hotkey);
    s_str_free (self, task->pub.current_step);
    s_str_free (self, task->pub.error);
    s_free (self, task, task->size);
}

static mw_task_rec_t *
s_task_find (const mw_state_t *self, const mw_hkey_t *probe)
{
    mw_hkey_t *key = s_index_find (&self->tasks, probe);
    return key ? MW_CONTAINER (key, mw_task_rec_t, key) : NULL;
}

static bool
s_task_finished (const mw_state_t *self, const mw_hkey_t *probe)
{
    return s_index_find (&self->history_index, probe) != NULL;
}

//  The newest finished task goes to the ring; the oldest falls off it.
static void
s_history_push (mw_state_t *self, mw_task_rec_t *task)
{
    size_t cap = self->cfg.task_history;
    mw_task_rec_t *old = self->history[self->history_head];
    if (old) {
        //  The index keeps the newest record of a key: drop the entry only
        //  if it is this one (a newer task of the same key may own it).
        s_index_remove (&self->history_index, &old->key);
        mw_state_priv_task_free (self, old);
    }
    self->history[self->history_head] = task;
    self->history_head = (self->history_head + 1) % cap;
    if (self->history_count < cap)
        self->history_count++;
    s_index_put (&self->history_index, &task->key);
}

//  Counters for a task that finished with the status it now has.
static void
s_task_account (mw_state_t *self, mw_task_rec_t *task, bool was_active)
{
    mw_task_status_t status = task->pub.status;
    bool completed = status == MW_TASK_SUCCEEDED || status == MW_TASK_FAILED;
    //  Only the miner record that counted the task as active counts its
    //  end: a record evicted and created again starts from zero.
    mw_miner_rec_t *miner = s_miner_find (self, task->pub.miner, task->key.alen);
    if (miner && miner->created_id == task->miner_inc) {
        if (was_active && miner->pub.active)
            miner->pub.active--;
        miner->pub.completed++;
        if (status == MW_TASK_SUCCEEDED)
            miner->pub.succeeded++;
        else if (status == MW_TASK_FAILED)
            miner->pub.failed++;
    }
    switch (status) {
        case MW_TASK_SUCCEEDED:
            self->st.tasks_succeeded++;
            break;
        case MW_TASK_FAILED:
            self->st.tasks_failed++;
            self->st.errors++;
            break;
        case MW_TASK_STALE:
            self->st.tasks_stale++;
            break;
        case MW_TASK_EVICTED:
            self->st.tasks_evicted++;
            break;
        case MW_TASK_ACTIVE:
            assert (false);
            break;
    }
    if (!completed)
        return;
    //  Throughput counts tasks that completed (task_complete): a stale or
    //  evicted task did not get done.
    self->rate[self->rate_head % MW_RATE_BUCKETS]++;
    if (task->pub.has_response_time)
        s_hist_add (&self->st.response, task->pub.response_time);
    mw_validator_rec_t *v =
        s_validator_find (self, task->pub.validator_hotkey, task->pub.validator_ip);
    if (v) {
        if (status == MW_TASK_SUCCEEDED)
            v->pub.successes++;
        else
            v->pub.failures++;
        if (task->pub.has_response_time)
            s_hist_add (&v->pub.response, task->pub.response_time);
    }
}

//  Move an active task to the history with status. end_ms is publisher time.
static void
s_task_finish (mw_state_t *self, mw_task_rec_t *task, mw_task_status_t status, uint64_t end_ms)
{
    s_index_remove (&self->tasks, &task->key);
    s_list_remove (&self->active, &task->link);
    s_heap_remove (self, task);
    task->pub.status = status;
    task->pub.end_ms = end_ms;
    s_task_account (self, task, true);
    s_history_push (self, task);
}

//  Create an active task for ev's (miner, task_id). A full table first
//  evicts its oldest task (start order) to the history.
static mw_task_rec_t *
s_task_new (mw_state_t *self, const mw_event_t *ev, const mw_hkey_t *probe, mw_miner_rec_t *miner,
            bool late)
{
    if (self->active.count >= self->cfg.max_active_tasks) {
        mw_task_rec_t *oldest = MW_CONTAINER (self->active.head, mw_task_rec_t, link);
        s_task_finish (self, oldest, MW_TASK_EVICTED, oldest->last_ts_ms);
    }
    if (s_heap_reserve (self) != 0)
        return NULL;
    mw_task_rec_t *task =
        mw_state_priv_task_alloc (self, probe->a, probe->alen, probe->b, probe->blen);
    if (!task)
        return NULL;
    task->serial = self->serial++;
    task->pub.status = MW_TASK_ACTIVE;
    task->pub.started_late = late;
    task->pub.start_ms = ev->ts / 1000;
    task->pub.last_seen_ms = self->now;
    task->pub.first_id = ev->id;
    task->pub.last_id = ev->id;
    task->last_ts_ms = task->pub.start_ms;
    if (ev->kind == MW_TYPE_TASK_START && (ev->has & MW_HAS_TIMEOUT_MS))
        task->pub.timeout_ms = ev->timeout_ms;
    if (miner) {
        task->miner_inc = miner->created_id;
        miner->pub.active++;
    }
    s_index_put (&self->tasks, &task->key);
    s_list_append (&self->active, &task->link);
    s_heap_push (self, task);
    self->st.tasks_started++;
    if (late)
        self->st.started_late++;
    return task;
}

//  An event of an active task: it is alive at broker time now.
static void
s_task_touch (mw_state_t *self, mw_task_rec_t *task, const mw_event_t *ev)
{
    task->pub.events++;
    task->pub.last_seen_ms = self->now;
    task->pub.last_id = ev->id;
    task->last_ts_ms = ev->ts / 1000;
    s_heap_fix (self, task);
}

//  Response time of a task ending with ev: the event's, else measured from
//  its task_start (publisher clock, ms precision). A task that never had a
//  task_start has no start to measure from: a time from its first event
//  would be an underestimate, so it stays unknown.
static void
s_task_response (mw_task_rec_t *task, const mw_event_t *ev)
{
    if (ev->has & MW_HAS_RESPONSE_TIME) {
        task->pub.response_time = s_seconds (ev->response_time);
        task->pub.has_response_time = true;
    }
    else if (task->has_start) {
        uint64_t end = ev->ts / 1000;
        uint64_t ms = end > task->pub.start_ms ? end - task->pub.start_ms : 0;
        task->pub.response_time = s_seconds ((double) ms / 1000.0);
        task->pub.has_response_time = true;
    }
}

//  task_start: creates the task; for an active task, either its real start
//  (it was created late by an earlier event) or a duplicate start, which
//  is counted and refreshes the fields it carries (start_ms stays the
//  first start's, so response times stay measured from it). A task_start
//  always begins a task, even for a key in the history: task ids may be
//  reused, and a start is never a late event.
static void
s_on_task_start (mw_state_t *self, const mw_event_t *ev, mw_miner_rec_t *miner,
                 const mw_hkey_t *probe)
{
    mw_task_rec_t *task = s_task_find (self, probe);
    bool counts_for_validator = true;
    if (task) {
        s_task_touch (self, task, ev);
        if (task->has_start) {
            self->st.duplicate_starts++;
            counts_for_validator = false;
        }
        else
            task->pub.start_ms = ev->ts / 1000;
        if (ev->has & MW_HAS_TIMEOUT_MS) {
            task->pub.timeout_ms = ev->timeout_ms;
            s_heap_fix (self, task);
        }
    }
    else {
        task = s_task_new (self, ev, probe, miner, false);
        if (!task)
            return;
        task->pub.events = 1;
    }
    task->has_start = true;
    s_ev_str_set (self, &task->pub.prompt, ev, MW_K_PROMPT);
    s_ev_str_set (self, &task->pub.url, ev, MW_K_URL);
    s_ev_str_set (self, &task->pub.validator_ip, ev, MW_K_VALIDATOR_IP);
    s_ev_str_set (self, &task->pub.validator_hotkey, ev, MW_K_VALIDATOR_HOTKEY);
    mw_validator_rec_t *v = s_validator_seen (self, s_ev_str (ev, MW_K_VALIDATOR_HOTKEY),
                                              s_ev_str (ev, MW_K_VALIDATOR_IP), ev->id);
    if (v) {
        if (counts_for_validator)
            v->pub.tasks++;
        s_activity_add (self, ev, v);
    }
}

//  task_step, actions_generated, cache_hit, task_complete.
static void
s_on_task_event (mw_state_t *self, const mw_event_t *ev, mw_miner_rec_t *miner,
                 const mw_hkey_t *probe)
{
    mw_task_rec_t *task = s_task_find (self, probe);
    if (!task) {
        if (s_task_finished (self, probe)) {
            //  A duplicate complete, a step after the end: the finished
            //  record stays as it ended.
            self->st.orphan_events++;
            return;
        }
        if (ev->kind == MW_TYPE_TASK_COMPLETE) {
            //  The end of a task we never saw start: straight to the
            //  history, so nothing is left active.
            task = mw_state_priv_task_alloc (self, probe->a, probe->alen, probe->b, probe->blen);
            if (!task)
                return;
            task->serial = self->serial++;
            task->pub.started_late = true;
            task->pub.start_ms = ev->ts / 1000;
            task->pub.last_seen_ms = self->now;
            task->pub.first_id = ev->id;
            task->pub.last_id = ev->id;
            task->pub.events = 1;
            task->last_ts_ms = ev->ts / 1000;
            task->miner_inc = miner ? miner->created_id : 0;
            if (ev->has & MW_HAS_ACTION_COUNT)
                task->pub.actions = ev->action_count;
            s_ev_str_set (self, &task->pub.error, ev, MW_K_ERROR);
            s_task_response (task, ev);
            task->pub.status = ev->success ? MW_TASK_SUCCEEDED : MW_TASK_FAILED;
            task->pub.end_ms = ev->ts / 1000;
            self->st.tasks_started++;
            self->st.started_late++;
            s_task_account (self, task, false);
            s_history_push (self, task);
            return;
        }
        task = s_task_new (self, ev, probe, miner, true);
        if (!task)
            return;
    }
    s_task_touch (self, task, ev);
    switch (ev->kind) {
        case MW_TYPE_TASK_STEP:
            s_ev_str_set (self, &task->pub.current_step, ev, MW_K_STEP);
            task->pub.steps++;
            break;
        case MW_TYPE_ACTIONS_GENERATED:
            //  action_count is the task's count as of this event and
            //  replaces the previous one (the original showed "generated
            //  N actions" with the latest N). Replacing is idempotent under
            //  a duplicate event; adding would double count a miner that
            //  reports running totals. A miner generating actions in rounds
            //  sends the running total.
            task->pub.actions = ev->action_count;
            break;
        case MW_TYPE_CACHE_HIT:
            //  Counted once per task, so the hit rate stays within 0..1.
            if (!task->pub.cache_hit) {
                task->pub.cache_hit = true;
                self->st.cache_hits++;
            }
            break;
        case MW_TYPE_TASK_COMPLETE:
            if (ev->has & MW_HAS_ACTION_COUNT)
                task->pub.actions = ev->action_count;
            s_ev_str_set (self, &task->pub.error, ev, MW_K_ERROR);
            s_task_response (task, ev);
            s_task_finish (self, task, ev->success ? MW_TASK_SUCCEEDED : MW_TASK_FAILED,
                           ev->ts / 1000);
            break;
        default:
            break;
    }
}

//  task_feedback: the score goes to the validator the event names, else to
//  the validator of the task (active or still in the history). Feedback
//  normally arrives after the task ended, so it is never an orphan, and it
//  never creates a task.
static void
s_on_feedback (mw_state_t *self, const mw_event_t *ev, const mw_hkey_t *probe)
{
    mw_task_rec_t *task = s_task_find (self, probe);
    if (task)
        s_task_touch (self, task, ev);
    else {
        mw_hkey_t *key = s_index_find (&self->history_index, probe);
        task = key ? MW_CONTAINER (key, mw_task_rec_t, key) : NULL;
    }
    mw_str_t hk = s_ev_str (ev, MW_K_VALIDATOR_HOTKEY);
    mw_str_t ip = {NULL, 0};
    if ((!hk.ptr || !hk.len) && task) {
        hk = (mw_str_t){task->pub.validator_hotkey, (uint32_t) strlen (task->pub.validator_hotkey)};
        ip = (mw_str_t){task->pub.validator_ip, (uint32_t) strlen (task->pub.validator_ip)};
    }
    mw_validator_rec_t *v = s_validator_seen (self, hk, ip, ev->id);
    if (!v)
        return;
    if ((ev->has & MW_HAS_SCORE) && isfinite (ev->score)) {
        v->pub.feedback_count++;
        v->pub.feedback_sum += ev->score;
    }
    s_activity_add (self, ev, v);
}

//  error: counted; recorded on its task if that is active. It does not
//  create a task: an error often is why a task never properly started,
//  and a task made of an error would only sit active until it went stale.
static void
s_on_error (mw_state_t *self, const mw_event_t *ev)
{
    self->st.errors++;
    mw_str_t tid = s_ev_str (ev, MW_K_TASK_ID);
    if (!tid.ptr)
        return;
    mw_str_t miner = s_ev_str (ev, MW_K_MINER);
    mw_hkey_t probe = s_hkey (miner.ptr ? miner.ptr : "", miner.len, tid.ptr, tid.len);
    mw_task_rec_t *task = s_task_find (self, &probe);
    if (task) {
        s_task_touch (self, task, ev);
        s_ev_str_set (self, &task->pub.error, ev, MW_K_ERROR_MESSAGE);
    }
    else if (s_task_finished (self, &probe))
        self->st.orphan_events++;
}

//  --------------------------------------------------------------------------
//  Recent events

//  True if ev goes into the ring by a plain deep copy: it encodes (its
//  type is consistent, required keys present, no string over its limit, no
//  custom keys to validate) and decodes back to itself. Anything else is
//  canonicalised through the codec, so every event the ring holds can be
//  saved in a snapshot and loaded back. The required keys repeat the
//  codec's table (CONTRACT.md section 1); the codec stays the judge on the
//  slow path.
static bool
s_event_plain (const mw_event_t *ev)
{
    if (ev->kv_count || ev->extra_len || ev->v != MW_PROTOCOL_VERSION)
        return false;
    if (ev->kind <= MW_TYPE_CUSTOM || ev->kind >= MW_TYPE_COUNT ||
        strcmp (ev->type, mw_type_name (ev->kind)) != 0)
        return false;
    if ((ev->str[MW_K_MINER].ptr && ev->str[MW_K_MINER].len > MW_MAX_MINER) ||
        (ev->str[MW_K_TASK_ID].ptr && ev->str[MW_K_TASK_ID].len > MW_MAX_TASK_ID))
        return false;
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (ev->str[k].ptr && ev->str[k].len > MW_MAX_STR)
            return false;
#define S_HAS(k) (ev->str[k].ptr != NULL)
    if (!S_HAS (MW_K_MINER))
        return false;
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
        case MW_TYPE_TASK_FEEDBACK:
        case MW_TYPE_CACHE_HIT:
            return S_HAS (MW_K_TASK_ID);
        case MW_TYPE_TASK_STEP:
            return S_HAS (MW_K_TASK_ID) && S_HAS (MW_K_STEP);
        case MW_TYPE_ACTIONS_GENERATED:
            return S_HAS (MW_K_TASK_ID) && (ev->has & MW_HAS_ACTION_COUNT);
        case MW_TYPE_TASK_COMPLETE:
            return S_HAS (MW_K_TASK_ID) && (ev->has & MW_HAS_SUCCESS);
        case MW_TYPE_VALIDATOR_CONNECTION:
            return S_HAS (MW_K_VALIDATOR_IP) || S_HAS (MW_K_VALIDATOR_HOTKEY);
        case MW_TYPE_ERROR:
            return S_HAS (MW_K_ERROR_MESSAGE);
        default:
            return false;
    }
#undef S_HAS
}

//  Make the ring's copy of ev (broker id set; broker_ts = now_ms unless it
//  has one). Return 0, -1 if the event cannot be carried (it would not
//  encode, or not decode back), -2 if memory ran out.
static int
s_event_copy (mw_state_t *self, const mw_event_t *ev, uint64_t now_ms, mw_event_t *copy)
{
    if (s_event_plain (ev)) {
        //  The common case: one deep copy (it sets every field), no view
        //  struct (copying the 448-byte event showed in the profile).
        if (mw_event_copy (copy, ev) != 0)
            return -2;
        copy->has |= MW_HAS_ID;
        if (!(copy->has & MW_HAS_BROKER_TS)) {
            copy->has |= MW_HAS_BROKER_TS;
            copy->broker_ts = now_ms;
        }
        return 0;
    }
    mw_event_t view = *ev;
    view.has |= MW_HAS_ID;
    if (!(view.has & MW_HAS_BROKER_TS)) {
        view.has |= MW_HAS_BROKER_TS;
        view.broker_ts = now_ms;
    }
    view.store_ = NULL;
    view.store_size_ = 0;
    mw_event_init (copy, MW_TYPE_CUSTOM);
    size_t len = 0;
    if (mw_event_encode (&view, self->scratch, MW_MAX_BODY, &len, NULL) != MW_OK)
        return -1;
    int rc = mw_event_decode (copy, NULL, 0, self->scratch, len, NULL, 0);
    if (rc == MW_ERR_NOMEM)
        return -2;
    return rc == MW_OK ? 0 : -1;
}

//  The plain case of s_event_copy into the ring's next slot, reusing the
//  storage of the event it replaces when that is large enough and not far
//  too large: no malloc, no free, no reset of the slot per event (they were
//  a quarter of apply's cost). Return the ring's event, or NULL if the slot
//  cannot be reused (the caller then copies the usual way). Same result as
//  mw_event_copy + s_recent_put: every field of ev, the strings in one
//  block, each NUL-terminated.
static mw_event_t *
s_recent_put_plain (mw_state_t *self, const mw_event_t *ev, uint64_t now_ms)
{
    mw_event_t *slot = self->recent[self->recent_head];
    if (!slot || !slot->store_ || slot->kv_count)
        return NULL;
    //  A string of ev inside the storage we are about to overwrite (an
    //  event made from the ring's oldest one) takes the usual way.
    uint8_t *store = slot->store_;
    size_t size = slot->store_size_;
    size_t need = 1;
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (ev->str[k].ptr) {
            uintptr_t p = (uintptr_t) ev->str[k].ptr;
            if (p + ev->str[k].len >= (uintptr_t) store && p < (uintptr_t) store + size)
                return NULL;
            need += (size_t) ev->str[k].len + 1;
        }
    if (size < need || size > 4 * need + 1024)
        return NULL;
    *slot = *ev;
    slot->store_ = store;
    slot->store_size_ = size;
    size_t used = 0;
    for (int k = 0; k < MW_STR_COUNT; k++) {
        if (!ev->str[k].ptr)
            continue;
        memcpy (store + used, ev->str[k].ptr, ev->str[k].len);
        store[used + ev->str[k].len] = 0;
        slot->str[k].ptr = (const char *) store + used;
        used += (size_t) ev->str[k].len + 1;
    }
    slot->extra = NULL;
    slot->kv = NULL;
    slot->kv_count = 0;
    slot->has |= MW_HAS_ID;
    if (!(slot->has & MW_HAS_BROKER_TS)) {
        slot->has |= MW_HAS_BROKER_TS;
        slot->broker_ts = now_ms;
    }
    size_t cap = self->cfg.recent_events;
    self->recent_head = (self->recent_head + 1) % cap;
    if (self->recent_count < cap)
        self->recent_count++;
    return slot;
}

//  Put an owned event into the ring as the newest; the ring takes its
//  storage. Return the ring's event, or NULL if memory ran out (ev is then
//  released).
static mw_event_t *
s_recent_put (mw_state_t *self, mw_event_t *ev)
{
    size_t cap = self->cfg.recent_events;
    mw_event_t *slot = self->recent[self->recent_head];
    if (!slot) {
        slot = (mw_event_t *) s_alloc (self, sizeof (mw_event_t));
        if (!slot) {
            mw_event_release (ev);
            return NULL;
        }
        mw_event_init (slot, MW_TYPE_CUSTOM);
        self->recent[self->recent_head] = slot;
    }
    else {
        self->bytes -= slot->store_size_;
        mw_event_release (slot);
    }
    *slot = *ev;
    self->bytes += slot->store_size_;
    self->recent_head = (self->recent_head + 1) % cap;
    if (self->recent_count < cap)
        self->recent_count++;
    return slot;
}

int
mw_state_priv_add_recent (mw_state_t *self, mw_event_t *ev)
{
    return s_recent_put (self, ev) ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  The class

static void
s_state_free (mw_state_t *self)
{
    //  Free members in reverse order of creation; every pointer may be
    //  NULL if mw_state_new failed half way.
    while (self->active.head) {
        mw_task_rec_t *task = MW_CONTAINER (self->active.head, mw_task_rec_t, link);
        s_list_remove (&self->active, &task->link);
        mw_state_priv_task_free (self, task);
    }
    if (self->history)
        for (size_t i = 0; i < self->cfg.task_history; i++)
            mw_state_priv_task_free (self, self->history[i]);
    if (self->recent)
        for (size_t i = 0; i < self->cfg.recent_events; i++)
            if (self->recent[i]) {
                mw_event_release (self->recent[i]);
                free (self->recent[i]);
            }
    if (self->activity)
        for (size_t i = 0; i < self->cfg.validator_activity; i++)
            s_activity_free (self, self->activity[i]);
    while (self->validators.head)
        s_validator_destroy (self, MW_CONTAINER (self->validators.head, mw_validator_rec_t, order));
    while (self->miners.head)
        s_miner_destroy (self, MW_CONTAINER (self->miners.head, mw_miner_rec_t, order));
    free (self->cursors);
    free (self->scratch);
    free (self->expired);
    free (self->heap);
    free (self->activity);
    free (self->recent);
    free (self->history);
    free (self->miners_index.slots);
    free (self->validators_ip.slots);
    free (self->validators_hk.slots);
    free (self->history_index.slots);
    free (self->tasks.slots);
    free (self);
}

mw_state_t *
mw_state_new (const mw_state_config_t *cfg)
{
    mw_state_config_t defaults;
    if (!cfg) {
        mw_state_config_default (&defaults);
        cfg = &defaults;
    }
    if (mw_state_config_check (cfg, NULL, 0) != 0)
        return NULL;
    mw_state_t *self = (mw_state_t *) calloc (1, sizeof (mw_state_t));
    if (!self)
        return NULL;
    self->cfg = *cfg;
    self->bytes = sizeof (mw_state_t);
    if (s_index_init (self, &self->tasks, cfg->max_active_tasks) != 0 ||
        s_index_init (self, &self->history_index, cfg->task_history) != 0 ||
        s_index_init (self, &self->validators_hk, cfg->max_validators) != 0 ||
        s_index_init (self, &self->validators_ip, cfg->max_validators) != 0 ||
        s_index_init (self, &self->miners_index, cfg->max_miners) != 0)
        goto err;
    self->history = (mw_task_rec_t **) s_calloc (self, cfg->task_history, sizeof (mw_task_rec_t *));
    self->recent = (mw_event_t **) s_calloc (self, cfg->recent_events, sizeof (mw_event_t *));
    self->activity = (mw_activity_rec_t **) s_calloc (self, cfg->validator_activity,
                                                      sizeof (mw_activity_rec_t *));
    self->scratch = (uint8_t *) s_alloc (self, MW_MAX_BODY);
    self->cursors = (mw_cursor_t *) s_calloc (self, 3, sizeof (mw_cursor_t));
    if (!self->history || !self->recent || !self->activity || !self->scratch || !self->cursors)
        goto err;
    return self;
err:
    s_state_free (self);
    return NULL;
}

void
mw_state_destroy (mw_state_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_state_free (*self_p);
        *self_p = NULL;
    }
}

const mw_state_config_t *
mw_state_config (const mw_state_t *self)
{
    assert (self);
    return &self->cfg;
}

//  What apply and tick do first: take the id and the time, forget the
//  readers' cursors, roll the rate windows.
static void
s_advance (mw_state_t *self, uint64_t id, uint64_t now_ms)
{
    self->last_id = id;
    self->now = now_ms;
    memset (self->cursors, 0, 3 * sizeof (mw_cursor_t));
    s_rate_roll (self, now_ms);
}

int
mw_state_apply (mw_state_t *self, const mw_event_t *ev, uint64_t now_ms)
{
    assert (self);
    assert (ev);
    if (!(ev->has & MW_HAS_ID) || ev->id <= self->last_id)
        return -1;
    //  The ring's copy first: an event that cannot be carried changes
    //  nothing. The fold then reads the copy, which is exactly what a
    //  mirror decodes from the update stream.
    uint64_t failures = self->alloc_failures;
    const mw_event_t *e = ev;
    mw_event_t *reused = s_event_plain (ev) ? s_recent_put_plain (self, ev, now_ms) : NULL;
    if (reused) {
        s_advance (self, ev->id, now_ms);
        e = reused;
    }
    else {
        mw_event_t copy;
        int rc = s_event_copy (self, ev, now_ms, &copy);
        if (rc == -1)
            return -1;
        s_advance (self, ev->id, now_ms);
        if (rc == 0) {
            mw_event_t *kept = s_recent_put (self, &copy);
            if (kept)
                e = kept;
        }
        else
            self->alloc_failures++;
    }

    self->st.total_events++;
    self->st.events_by_type[(e->kind > MW_TYPE_CUSTOM && e->kind < MW_TYPE_COUNT) ? e->kind : 0]++;
    mw_miner_rec_t *miner = s_miner_touch (self, e);

    mw_str_t tid = s_ev_str (e, MW_K_TASK_ID);
    mw_str_t mname = s_ev_str (e, MW_K_MINER);
    mw_hkey_t probe = s_hkey (mname.ptr ? mname.ptr : "", mname.len, tid.ptr, tid.len);
    switch (e->kind) {
        case MW_TYPE_TASK_START:
            if (tid.ptr)
                s_on_task_start (self, e, miner, &probe);
            break;
        case MW_TYPE_TASK_STEP:
        case MW_TYPE_ACTIONS_GENERATED:
        case MW_TYPE_CACHE_HIT:
        case MW_TYPE_TASK_COMPLETE:
            if (tid.ptr)
                s_on_task_event (self, e, miner, &probe);
            break;
        case MW_TYPE_TASK_FEEDBACK:
            if (tid.ptr)
                s_on_feedback (self, e, &probe);
            break;
        case MW_TYPE_VALIDATOR_CONNECTION: {
            mw_validator_rec_t *v = s_validator_seen (self, s_ev_str (e, MW_K_VALIDATOR_HOTKEY),
                                                      s_ev_str (e, MW_K_VALIDATOR_IP), e->id);
            if (v) {
                v->pub.connections++;
                s_activity_add (self, e, v);
            }
            break;
        }
        case MW_TYPE_ERROR:
            s_on_error (self, e);
            break;
        default:
            break;
    }
    return self->alloc_failures == failures ? 0 : -1;
}

static int
s_expired_cmp (const void *a, const void *b)
{
    const mw_heap_entry_t *x = (const mw_heap_entry_t *) a;
    const mw_heap_entry_t *y = (const mw_heap_entry_t *) b;
    if (x->deadline != y->deadline)
        return x->deadline < y->deadline ? -1 : 1;
    return x->serial < y->serial ? -1 : x->serial > y->serial;
}

int
mw_state_tick (mw_state_t *self, uint64_t now_ms, uint64_t id)
{
    assert (self);
    if (id <= self->last_id)
        return -1;
    s_advance (self, id, now_ms);
    //  A task is stale when now - last_seen > its silence limit, i.e.
    //  now > deadline. Pop while the stored (earliest possible) deadline
    //  has passed; re-file an entry whose real deadline has not.
    size_t count = 0;
    while (self->heap_count && self->heap[0].deadline < now_ms) {
        mw_task_rec_t *task = self->heap[0].task;
        uint64_t deadline = s_task_deadline (self, task);
        if (deadline < now_ms) {
            if (count >= self->expired_alloc)
                break; //  scratch short (memory ran out): the rest wait a tick
            mw_heap_entry_t entry = {task, deadline, task->serial};
            s_heap_remove (self, task);
            self->expired[count++] = entry;
        }
        else {
            self->heap[0].deadline = deadline;
            s_heap_down (self, 0);
        }
    }
    if (count > 1)
        qsort (self->expired, count, sizeof (mw_heap_entry_t), s_expired_cmp);
    for (size_t i = 0; i < count; i++) {
        mw_task_rec_t *task = self->expired[i].task;
        s_task_finish (self, task, MW_TASK_STALE, task->last_ts_ms);
    }
    return (int) count;
}

uint64_t
mw_state_last_id (const mw_state_t *self)
{
    assert (self);
    return self->last_id;
}

uint64_t
mw_state_now (const mw_state_t *self)
{
    assert (self);
    return self->now;
}

//  --------------------------------------------------------------------------
//  Readers

size_t
mw_state_recent_count (const mw_state_t *self)
{
    assert (self);
    return self->recent_count;
}

const mw_event_t *
mw_state_recent (const mw_state_t *self, size_t index)
{
    assert (self);
    if (index >= self->recent_count)
        return NULL;
    size_t cap = self->cfg.recent_events;
    return self->recent[(self->recent_head + cap - 1 - index) % cap];
}

size_t
mw_state_active_count (const mw_state_t *self)
{
    assert (self);
    return self->active.count;
}

const mw_task_t *
mw_state_active (const mw_state_t *self, size_t index)
{
    assert (self);
    const mw_link_t *node = s_list_at (&self->active, &self->cursors[0], index);
    return node ? &MW_CONTAINER (node, mw_task_rec_t, link)->pub : NULL;
}

const mw_task_t *
mw_state_find_task (const mw_state_t *self, const char *miner, const char *task_id)
{
    assert (self);
    if (!miner || !task_id)
        return NULL;
    mw_hkey_t probe =
        s_hkey (miner, mw_state_priv_str_len (miner, strlen (miner), MW_MAX_MINER), task_id,
                mw_state_priv_str_len (task_id, strlen (task_id), MW_MAX_TASK_ID));
    mw_task_rec_t *task = s_task_find (self, &probe);
    return task ? &task->pub : NULL;
}

size_t
mw_state_history_count (const mw_state_t *self)
{
    assert (self);
    return self->history_count;
}

const mw_task_t *
mw_state_history (const mw_state_t *self, size_t index)
{
    assert (self);
    if (index >= self->history_count)
        return NULL;
    size_t cap = self->cfg.task_history;
    return &self->history[(self->history_head + cap - 1 - index) % cap]->pub;
}

size_t
mw_state_activity_count (const mw_state_t *self)
{
    assert (self);
    return self->activity_count;
}

const mw_activity_t *
mw_state_activity (const mw_state_t *self, size_t index)
{
    assert (self);
    if (index >= self->activity_count)
        return NULL;
    size_t cap = self->cfg.validator_activity;
    return &self->activity[(self->activity_head + cap - 1 - index) % cap]->pub;
}

size_t
mw_state_validator_count (const mw_state_t *self)
{
    assert (self);
    return self->validators.count;
}

const mw_validator_t *
mw_state_validator (const mw_state_t *self, size_t index)
{
    assert (self);
    const mw_link_t *node = s_list_at (&self->validators, &self->cursors[1], index);
    return node ? &MW_CONTAINER (node, mw_validator_rec_t, order)->pub : NULL;
}

size_t
mw_state_miner_count (const mw_state_t *self)
{
    assert (self);
    return self->miners.count;
}

const mw_miner_t *
mw_state_miner (const mw_state_t *self, size_t index)
{
    assert (self);
    const mw_link_t *node = s_list_at (&self->miners, &self->cursors[2], index);
    return node ? &MW_CONTAINER (node, mw_miner_rec_t, order)->pub : NULL;
}

void
mw_state_stats (const mw_state_t *self, mw_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->st;
    stats->last_id = self->last_id;
    stats->active_tasks = self->active.count;
    stats->cache_hit_rate =
        self->st.tasks_started ? (double) self->st.cache_hits / (double) self->st.tasks_started : 0;
    if (stats->cache_hit_rate > 1)
        stats->cache_hit_rate = 1;
    uint64_t ended = self->st.tasks_succeeded + self->st.tasks_failed + self->st.tasks_stale;
    stats->success_rate = ended ? (double) self->st.tasks_succeeded / (double) ended : 0;
    stats->tasks_per_min_1 = s_rate_per_min (self, 1);
    stats->tasks_per_min_5 = s_rate_per_min (self, 5);
    stats->tasks_per_min_15 = s_rate_per_min (self, 15);
    stats->p50 = mw_hist_quantile (&self->st.response, 0.50);
    stats->p95 = mw_hist_quantile (&self->st.response, 0.95);
    stats->p99 = mw_hist_quantile (&self->st.response, 0.99);
}

void
mw_state_memory (const mw_state_t *self, mw_state_memory_t *mem)
{
    assert (self);
    assert (mem);
    memset (mem, 0, sizeof (*mem));
    mem->bytes = self->bytes;
    mem->task_table_slots = self->tasks.mask + 1;
    mem->task_table_used = self->tasks.used;
    mem->history_table_slots = self->history_index.mask + 1;
    mem->validator_table_slots = self->validators_hk.mask + 1;
    mem->miner_table_slots = self->miners_index.mask + 1;
    mem->alloc_failures = self->alloc_failures;
}

//  --------------------------------------------------------------------------
//  Restoring (for mw_state_codec.c)

int
mw_state_priv_add_active (mw_state_t *self, mw_task_rec_t *task)
{
    if (self->active.count >= self->cfg.max_active_tasks || s_task_find (self, &task->key))
        return -1;
    if (s_heap_reserve (self) != 0)
        return -1;
    s_index_put (&self->tasks, &task->key);
    s_list_append (&self->active, &task->link);
    s_heap_push (self, task);
    return 0;
}

int
mw_state_priv_add_history (mw_state_t *self, mw_task_rec_t *task)
{
    //  Restoring never overflows the ring: the codec checks the count.
    if (self->history_count >= self->cfg.task_history)
        return -1;
    s_history_push (self, task);
    return 0;
}

mw_miner_rec_t *
mw_state_priv_add_miner (mw_state_t *self, const char *name, size_t len, bool *dup_p)
{
    *dup_p = s_miner_find (self, name, len) != NULL;
    if (*dup_p || self->miners.count >= self->cfg.max_miners)
        return NULL;
    return s_miner_new (self, name, len);
}

mw_validator_rec_t *
mw_state_priv_add_validator (mw_state_t *self, const char *hotkey, size_t hklen, const char *ip,
                             size_t iplen, bool ip_linked, bool *dup_p)
{
    *dup_p = (hklen && s_validator_by_hotkey (self, hotkey, hklen)) ||
             (ip_linked && s_validator_by_ip (self, ip, iplen));
    if (*dup_p || self->validators.count >= self->cfg.max_validators)
        return NULL;
    mw_validator_rec_t *v = s_validator_new (self);
    if (!v)
        return NULL;
    if (hklen && s_validator_set_hotkey (self, v, hotkey, hklen) != 0)
        goto err;
    if (ip_linked) {
        if (s_validator_link_ip (self, v, ip, iplen) != 0)
            goto err;
    }
    else if (iplen) {
        v->pub.ip = mw_state_priv_str_dup (self, ip, iplen);
        if (!v->pub.ip) {
            v->pub.ip = mw_state_priv_empty;
            goto err;
        }
    }
    return v;
err:
    s_validator_destroy (self, v);
    return NULL;
}

//  Sort records' LRU links by touch_id; ties (only in a hand-made
//  snapshot) keep the order of first appearance.
typedef struct {
    uint64_t touch_id;
    size_t order;
    mw_link_t *lru;
} s_lru_item_t;

static int
s_lru_cmp (const void *a, const void *b)
{
    const s_lru_item_t *x = (const s_lru_item_t *) a;
    const s_lru_item_t *y = (const s_lru_item_t *) b;
    if (x->touch_id != y->touch_id)
        return x->touch_id < y->touch_id ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int
s_lru_rebuild (mw_list_t *order, mw_list_t *lru, size_t order_off, size_t lru_off, size_t touch_off)
{
    size_t n = order->count;
    if (n == 0)
        return 0;
    s_lru_item_t *items = (s_lru_item_t *) malloc (n * sizeof (*items));
    if (!items)
        return -1;
    size_t i = 0;
    for (mw_link_t *node = order->head; node; node = node->next, i++) {
        char *rec = (char *) node - order_off;
        items[i].touch_id = *(uint64_t *) (rec + touch_off);
        items[i].order = i;
        items[i].lru = (mw_link_t *) (rec + lru_off);
    }
    qsort (items, n, sizeof (*items), s_lru_cmp);
    while (lru->head)
        s_list_remove (lru, lru->head);
    for (i = 0; i < n; i++)
        s_list_append (lru, items[i].lru);
    free (items);
    return 0;
}

int
mw_state_priv_rebuild_lru (mw_state_t *self)
{
    if (s_lru_rebuild (&self->miners, &self->miners_lru, offsetof (mw_miner_rec_t, order),
                       offsetof (mw_miner_rec_t, lru), offsetof (mw_miner_rec_t, touch_id)) != 0)
        return -1;
    return s_lru_rebuild (&self->validators, &self->validators_lru,
                          offsetof (mw_validator_rec_t, order), offsetof (mw_validator_rec_t, lru),
                          offsetof (mw_validator_rec_t, touch_id));
}
