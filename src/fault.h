/* Fault injection, for tests: make the Nth call at a syscall or allocation
 * site fail.  Sites are declared with SITE() (sys.h).  Not thread-safe: it
 * is meant for a test process driving one loop. */
#ifndef CORIO_FAULT_H
#define CORIO_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "sys.h"

/* Every site in the library (and in whatever else links SITE()s in). */
size_t corio__fault_sites(struct corio__site **first);

/* Makes the nth (1-based) call matching site (NULL: any) and name (NULL:
 * any) return err (-errno, or CORIO__FAULT_SHORT for a short transfer).
 * Fires once. */
void corio__fault_arm(const struct corio__site *site, const char *name, unsigned nth, int err);
void corio__fault_disarm(void);
bool corio__fault_fired(void);

/* Counts calls per site in site->calls while on. */
void corio__fault_record(bool on);

#endif
