/*  mw_state_priv.h - the inside of mw_state_t, shared by mw_state.c (the
    fold) and mw_state_codec.c (snapshot save and load), and by nothing
    else: it is not installed and no other folder includes it.

    Layout in one paragraph. Active tasks are records in a hash index keyed
    by (miner, task_id), a doubly-linked list in start order and a min-heap
    of deadlines. Finished tasks, recent events and validator interactions
    are fixed-size rings of pointers. Miners and validators are records in
    hash indexes, in a list in order of first appearance and in an LRU list.
    Every index has a fixed power-of-two capacity of at least twice the
    bound it serves, allocated once in mw_state_new and never resized.
*/
#ifndef MW_STATE_PRIV_H_INCLUDED
#define MW_STATE_PRIV_H_INCLUDED

#include "mw_state.h"

#include <stddef.h>

//  Tasks per minute: finish counts per 10-second bucket of broker time, for
//  15 minutes plus the bucket now being filled.
#define MW_RATE_BUCKET_MS 10000
#define MW_RATE_BUCKETS   91

//  Largest bound mw_state_config_check accepts.
#define MW_STATE_BOUND_MAX 10000000u

//  Intrusive doubly-linked list.
typedef struct mw_link_t mw_link_t;
struct mw_link_t {
    mw_link_t *prev;
    mw_link_t *next;
};

typedef struct {
    mw_link_t *head;
    mw_link_t *tail;
    size_t count;
} mw_list_t;

//  Where the last indexed read of a list stopped, so that a reader walking
//  index 0, 1, 2 ... costs O(1) per call instead of O(index).
typedef struct {
    const mw_link_t *node;
    size_t index;
} mw_cursor_t;

//  A hash key embedded in a record: (a, b) strings (b may be empty) and the
//  cached hash. An index stores pointers to these.
typedef struct {
    const char *a;
    const char *b;
    uint32_t alen;
    uint32_t blen;
    uint32_t hash;
} mw_hkey_t;

//  Open addressing with linear probing; deletion shifts back (no
//  tombstones), so churn never degrades or grows the table.
typedef struct {
    mw_hkey_t **slots;
    size_t mask; //  capacity - 1
    size_t used;
} mw_index_t;

typedef struct {
    mw_task_t pub;       //  what readers see; strings owned (or the shared "")
    mw_hkey_t key;       //  (miner, task_id): in the active or the history index
    mw_link_t link;      //  start order, while active
    uint64_t serial;     //  creation order, unique: ties in deadlines break on it
    uint64_t miner_inc;  //  created_id of the miner record that counts this task
    uint64_t last_ts_ms; //  publisher time of its last event (the end of a stale task)
    size_t heap_pos;     //  position in the deadline heap, SIZE_MAX when not in it
    bool has_start;      //  a task_start was seen
    size_t size;         //  bytes of this allocation, for the memory account
    char keybuf[];       //  miner NUL task_id NUL
} mw_task_rec_t;

typedef struct {
    mw_task_rec_t *task;
    uint64_t deadline; //  lazy: <= the task's real deadline (see mw_state.c)
    uint64_t serial;
} mw_heap_entry_t;

typedef struct {
    mw_miner_t pub;
    mw_hkey_t key;
    mw_link_t order; //  first appearance
    mw_link_t lru;   //  least recently touched first
    uint64_t created_id;
    uint64_t touch_id; //  broker id of the last event that touched it
    char name[];
} mw_miner_rec_t;

typedef struct {
    mw_validator_t pub; //  hotkey, ip: owned strings or the shared ""
    mw_hkey_t hk_key;   //  in the hotkey index when pub.hotkey is not ""
    mw_hkey_t ip_key;   //  in the IP index when ip_linked
    bool ip_linked;     //  pub.ip resolves to this record
    mw_link_t order;
    mw_link_t lru;
    uint64_t touch_id;
} mw_validator_rec_t;

typedef struct {
    mw_activity_t pub;
    size_t size;
    char buf[];
} mw_activity_rec_t;

struct _mw_state_t {
    mw_state_config_t cfg;
    uint64_t last_id;
    uint64_t now;
    uint64_t serial; //  next task serial

    //  Counters; the derived fields (rates, quantiles, active_tasks,
    //  last_id) are computed by mw_state_stats.
    mw_stats_t st;
    uint64_t rate[MW_RATE_BUCKETS];
    uint64_t rate_head; //  bucket number (now / MW_RATE_BUCKET_MS) of the newest bucket

    //  Active tasks.
    mw_index_t tasks;
    mw_list_t active;
    mw_heap_entry_t *heap;
    size_t heap_count;
    size_t heap_alloc;
    mw_heap_entry_t *expired; //  scratch for tick
    size_t expired_alloc;

    //  Finished tasks: ring, and an index of the newest record per key.
    mw_task_rec_t **history;
    size_t history_head; //  next write
    size_t history_count;
    mw_index_t history_index;

    //  Recent events (owned deep copies, broker id set).
    mw_event_t **recent;
    size_t recent_head;
    size_t recent_count;

    //  Validator interactions.
    mw_activity_rec_t **activity;
    size_t activity_head;
    size_t activity_count;

    //  Validators: by hotkey, and by IP (an IP resolves to one record).
    mw_index_t validators_hk;
    mw_index_t validators_ip;
    mw_list_t validators;
    mw_list_t validators_lru;

    //  Miners.
    mw_index_t miners_index;
    mw_list_t miners;
    mw_list_t miners_lru;

    //  Reader cursors (active, validators, miners). Allocated apart so the
    //  const readers may move them.
    mw_cursor_t *cursors;

    size_t bytes;            //  bytes allocated, as requested
    uint64_t alloc_failures; //  allocations that failed
    uint8_t *scratch;        //  MW_MAX_BODY bytes to canonicalise odd events
};

#define MW_CONTAINER(ptr, type, member) ((type *) ((char *) (ptr) -offsetof (type, member)))

//  Services of mw_state.c for the codec.

//  The shared empty string of records ("" when unknown; never freed).
extern const char mw_state_priv_empty[1];

//  Length of a string as the state stores it: cut at its first NUL and at
//  limit bytes on a UTF-8 boundary.
size_t mw_state_priv_str_len (const char *p, size_t len, size_t limit);

//  Copy len bytes (no NUL inside) into a new string owned by the state;
//  mw_state_priv_empty for len 0. Return NULL if memory runs out.
const char *mw_state_priv_str_dup (mw_state_t *self, const char *p, size_t len);

//  Allocate and initialise an active-less task record for (miner, task_id),
//  every other string "". Return NULL if memory runs out.
mw_task_rec_t *mw_state_priv_task_alloc (mw_state_t *self, const char *miner, size_t mlen,
                                         const char *task_id, size_t tlen);

//  Free a task record that is in no structure.
void mw_state_priv_task_free (mw_state_t *self, mw_task_rec_t *task);

//  Insert a restored task: active ones at the tail of the start order (and
//  index and heap); finished ones as the newest of the history. Return 0,
//  or -1 if its key is already active or a bound would be exceeded.
int mw_state_priv_add_active (mw_state_t *self, mw_task_rec_t *task);
int mw_state_priv_add_history (mw_state_t *self, mw_task_rec_t *task);

//  Allocate a miner or validator record and append it in order of first
//  appearance (restoring a snapshot). Return it, or NULL if the key exists,
//  the bound is reached or memory runs out; *dup_p says which.
mw_miner_rec_t *mw_state_priv_add_miner (mw_state_t *self, const char *name, size_t len,
                                         bool *dup_p);
mw_validator_rec_t *mw_state_priv_add_validator (mw_state_t *self, const char *hotkey, size_t hklen,
                                                 const char *ip, size_t iplen, bool ip_linked,
                                                 bool *dup_p);

//  After every miner and validator is added: rebuild the LRU lists from
//  their touch_id (ties by first appearance).
int mw_state_priv_rebuild_lru (mw_state_t *self);

//  Append a validator interaction as the newest (restoring). Return 0 or -1.
//  The strings are miner, task_id, validator_ip, validator_hotkey (ptr
//  NULL or len 0: ""), each cut as mw_state_priv_str_len does.
int mw_state_priv_add_activity (mw_state_t *self, uint64_t id, uint64_t time_ms, mw_type_t kind,
                                const mw_str_t strs[4]);

//  Move a decoded event into the recent ring as the newest (restoring; the
//  state takes its storage). Return 0 or -1.
int mw_state_priv_add_recent (mw_state_t *self, mw_event_t *ev);

#endif
