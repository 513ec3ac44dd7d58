/*  minerwatch.h - the one header a miner includes: the event model, the
    publisher, and the CURVE key helpers. Link with
    `pkg-config --cflags --libs minerwatch`.
*/
#ifndef MINERWATCH_H_INCLUDED
#define MINERWATCH_H_INCLUDED

#include "mw_curve.h"
#include "mw_event.h"
#include "mw_publisher.h"

#endif
