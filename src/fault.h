/* Fault injection, for tests: make chosen calls at a syscall or allocation
 * site fail (fault.c).  Sites are declared with SITE() (sys.h); a failed
 * call returns the injected -errno (an allocation returns NULL), or, for a
 * call that moves bytes, moves fewer bytes than asked (CORIO__FAULT_SHORT).
 *
 * Arm and disarm from one thread while no loop runs; loops on any thread,
 * and processes forked meanwhile, may then cross the sites (the plan is in
 * shared memory and its counters are atomic). */
#ifndef CORIO_FAULT_H
#define CORIO_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "sys.h"

/* Every site in the library (and in whatever else links SITE()s in). */
size_t corio__fault_sites(struct corio__site **first);

/* Replaces the plan with one rule: the nth (1-based) call matching site
 * (NULL: any) and name (NULL: any) returns err (-errno, or
 * CORIO__FAULT_SHORT for a short transfer).  Fires once. */
void corio__fault_arm(const struct corio__site *site, const char *name, unsigned nth, int err);

/* Adds a rule to the plan: calls nth .. nth + times - 1 that match fail
 * with err (times 0: every call from the nth on).  Earlier rules claim a
 * call first.  Returns the rule's index, or -ENOSPC (4 rules at most). */
int corio__fault_add(const struct corio__site *site, const char *name, unsigned nth,
                     unsigned times, int err);

/* Empties the plan. */
void corio__fault_disarm(void);

/* While paused, the rules neither count calls nor fail them (recording
 * goes on): a test can run something in the middle that must not be hit. */
void corio__fault_pause(bool on);

/* Whether rule 0 (the one corio__fault_arm sets) has fired, and how many
 * calls a rule has failed. */
bool corio__fault_fired(void);
unsigned corio__fault_fires(int rule);

/* While on, every call at every site is counted: in site->calls for this
 * process's calls, live; with corio__fault_calls() for those of processes
 * forked from here too (turning recording off copies that count into
 * site->calls). */
void corio__fault_record(bool on);
unsigned corio__fault_calls(const struct corio__site *site);
void corio__fault_reset_counts(void);

/* The plan is shared with the processes forked after it was made; a
 * process that wants one of its own (a test's parallel cases) calls this
 * first.  Leaves nothing armed. */
void corio__fault_isolate(void);

#endif
