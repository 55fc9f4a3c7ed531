/*
 * weft: common definitions shared by every public header.
 *
 * Error model (all of weft): a call that can fail returns int, 0 on success or
 * a positive errno value, exactly like pthread_mutex_lock.  Nothing is reported
 * through errno, because a green task may resume on another OS thread.  A call
 * that fails has no side effect.
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(WEFT_STATIC_DEFINE)
#define WEFT_API
#elif defined(WEFT_BUILDING)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* Entry function of a task: its return value is the task's status. */
typedef int (*weft_fn)(void *arg);

typedef struct weft_runtime weft_runtime;
typedef struct weft_task weft_task;

#ifdef __cplusplus
}
#endif
#endif
