/*
 * check.h: the test programs' CHECK(cond, fmt, ...): when cond is false, print
 * "FAIL file:line: " and the message to stdout and count it in `failures`, which
 * the program reports at the end (its exit status says whether any failed).
 * Stdout, not stderr, so the failure sits in order with the program's output in
 * the runs the test suite compares.
 */
#ifndef MOTE_APPS_CHECK_H
#define MOTE_APPS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(c, ...)                                                          \
    do {                                                                       \
        if (!(c)) {                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                        \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#endif
