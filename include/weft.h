/*
 * weft: green tasks on a work-stealing pool of pthreads.
 * The umbrella header; each module's contract is in include/weft/<module>.h.
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/cancel.h"
#include "weft/chan.h"
#include "weft/runtime.h"
#include "weft/sync.h"
#include "weft/task.h"
#include "weft/time.h"

#endif
