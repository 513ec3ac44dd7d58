/*  minerwatch.h - the one header a miner includes: the event model and the
    publisher. Link with `pkg-config --cflags --libs minerwatch`.
*/
#ifndef MINERWATCH_H_INCLUDED
#define MINERWATCH_H_INCLUDED

#include "mw_event.h"
#include "mw_publisher.h"

#endif
