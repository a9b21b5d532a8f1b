/* corio: mt.  Included by corio.h; do not include directly. */
#ifndef CORIO_MT_H
#define CORIO_MT_H

#endif
