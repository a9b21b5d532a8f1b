/* corio: net.  Included by corio.h; do not include directly. */
#ifndef CORIO_NET_H
#define CORIO_NET_H

#endif
