/*  mw_sim.h - the traffic generator of `minerwatch simulate` and
    `minerwatch up --demo`: realistic events from simulated miners.

    K miners, each with its own publisher (its own session id and sequence),
    serve tasks from V validators (public-looking IPs, ss58-looking
    hotkeys). A task lives through task_start, sometimes cache_hit, 1-5
    task_step, actions_generated, task_complete (about 85% succeed; the rest
    fail with an error or time out, some with an error event first) and
    often task_feedback with a score. Several tasks per miner are active at
    once, so their events interleave. Validators connect before their first
    task and now and then again; miners report errors outside tasks too.

    Every choice comes from one seeded generator (xoshiro256**), so a given
    seed gives the same events in the same order; only timestamps and
    session ids differ. The generator does not pace: each mw_sim_step sends
    one event at once, and the caller decides when.
*/
#ifndef MW_SIM_H_INCLUDED
#define MW_SIM_H_INCLUDED

#include "mw_publisher.h"

#include <stddef.h>
#include <stdint.h>

#define MW_SIM_MINERS_MAX      1000
#define MW_SIM_VALIDATORS_MAX  1000
#define MW_SIM_TASKS_PER_MINER 4 //  tasks a miner works on at once, at most

//  The event types the generator sends, for its counters.
typedef enum {
    MW_SIM_TASK_START,
    MW_SIM_TASK_STEP,
    MW_SIM_ACTIONS,
    MW_SIM_TASK_COMPLETE,
    MW_SIM_FEEDBACK,
    MW_SIM_VALIDATOR,
    MW_SIM_CACHE_HIT,
    MW_SIM_ERROR,
    MW_SIM_EV_COUNT
} mw_sim_ev_t;

//  The wire names of the types above ("task_start", ...).
extern const char *const mw_sim_ev_names[MW_SIM_EV_COUNT];

typedef struct {
    uint64_t sent[MW_SIM_EV_COUNT];                 //  handed to the publisher
    uint64_t dropped[MW_SIM_EV_COUNT];              //  refused by it (no subscriber, queue full)
    uint64_t started, succeeded, failed, timed_out; //  tasks
    size_t active;                                  //  tasks in progress
} mw_sim_stats_t;

typedef struct _mw_sim_t mw_sim_t;

//  Create a generator for `miners` publishers (the array pubs[0..miners-1],
//  which the caller owns, fills before the first mw_sim_step and keeps
//  alive; miner i publishes with pubs[i]) and `validators`
//  simulated validators (1..MW_SIM_*_MAX each), seeded with seed. Return
//  NULL if memory ran out or a count is out of range.
mw_sim_t *mw_sim_new (mw_publisher_t **pubs, size_t miners, size_t validators, uint64_t seed);

//  Free the generator (not the publishers); null the pointer.
void mw_sim_destroy (mw_sim_t **self_p);

//  Choose the next event and send it.
void mw_sim_step (mw_sim_t *self);

//  Copy the counters.
void mw_sim_stats (const mw_sim_t *self, mw_sim_stats_t *stats);

//  Sum of an array of MW_SIM_EV_COUNT counters.
uint64_t mw_sim_total (const uint64_t *counts);

//  A seed from the clock and the process id, for runs without --seed.
uint64_t mw_sim_random_seed (void);

#endif
