/*  gw_synth.h - synthetic events for the gateway tests.

    A feed owns a state and folds generated events into it exactly as the
    broker does (a broker id and a broker time on each), then hands each
    event to a callback so that a test can render or push it. The events
    cover every known type, a custom type, several miners and validators,
    and hostile strings (markup, quotes, control characters, invalid UTF-8,
    a 64-bit sid above 2^53).
*/
#ifndef GW_SYNTH_H_INCLUDED
#define GW_SYNTH_H_INCLUDED

#include "mw_state.h"

#include <stdint.h>

typedef void (gw_synth_fn) (const mw_event_t *ev, void *arg);

typedef struct {
    mw_state_t *state;
    uint64_t id;     //  last broker id used (events and ticks)
    uint64_t now;    //  broker time, ms
    uint64_t seq[4]; //  per miner
    uint64_t tasks;  //  tasks started so far
    gw_synth_fn *fn; //  called after each apply (may be NULL)
    void *arg;
} gw_synth_t;

//  Start a feed on a new state (cfg NULL: defaults). Return 0 or -1.
int gw_synth_init (gw_synth_t *self, const mw_state_config_t *cfg);

//  Destroy the state.
void gw_synth_release (gw_synth_t *self);

//  Fold one event of the given type for miner m (0..3) and task number t.
//  Return the broker id it got, or 0 if the state refused it.
uint64_t gw_synth_event (gw_synth_t *self, const char *type, int m, uint64_t t);

//  Fold a whole task: start, step, actions, a cache hit for every third,
//  feedback, complete (every fifth fails). Return the last id.
uint64_t gw_synth_task (gw_synth_t *self);

//  Fold n events cycling over every type (tasks as above, plus
//  validator_connection, error and a custom type). Return the last id.
uint64_t gw_synth_events (gw_synth_t *self, uint64_t n);

//  Advance time by ms and tick. Return the tick's id.
uint64_t gw_synth_tick (gw_synth_t *self, uint64_t ms);

//  The miner names (index 0..3); miner 3 is hostile text.
extern const char *gw_synth_miners[4];

#endif
