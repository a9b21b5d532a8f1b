/* corio: sync.  Included by corio.h; do not include directly. */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#endif
