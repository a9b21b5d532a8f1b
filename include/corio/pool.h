/* corio: pool.  Included by corio.h; do not include directly. */
#ifndef CORIO_POOL_H
#define CORIO_POOL_H

#endif
