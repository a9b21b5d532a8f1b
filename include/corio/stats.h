/* corio: stats.  Included by corio.h; do not include directly. */
#ifndef CORIO_STATS_H
#define CORIO_STATS_H

#endif
