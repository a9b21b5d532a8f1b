/* corio: stream.  Included by corio.h; do not include directly. */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#endif
