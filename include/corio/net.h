/* corio: addresses, TCP, UDP and Unix sockets.  Included by corio.h; do not
 * include directly.
 *
 * Address strings, one syntax for every call:
 *   "127.0.0.1:80"  "localhost:80"  "[::1]:80"  "[fe80::1%2]:80"  ":80"
 *   "unix:/run/app.sock"  "unix:@abstract-name"
 * ":80" is the IPv4 wildcard (0.0.0.0); "[::]:80" the IPv6 one, which also
 * takes IPv4 unless v6only is set.  Ports are decimal, 0 to 65535.  Numeric
 * addresses never park; host names resolve with corio_resolve() on the
 * blocking pool (include/corio/pool.h) within the call's deadline.
 *
 * Every fd these calls return is non-blocking and close-on-exec; close it
 * with corio_close(). */
#ifndef CORIO_NET_H
#define CORIO_NET_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Addresses ---- */

typedef struct corio_addr {
    struct sockaddr_storage ss; /* AF_INET, AF_INET6 or AF_UNIX */
    socklen_t len;              /* 0: no address */
} corio_addr;

/* Enough for any corio_addr_format() result, the NUL included. */
#define CORIO_ADDR_STRLEN 128

/* Parses a numeric address string into *a.  Never parks.  0,
 * -CORIO_EADDR for a malformed string, -CORIO_ENONAME for a well-formed
 * host name (resolve it with corio_addr_resolve()), -ENAMETOOLONG for a
 * Unix path over the kernel's limit. */
int corio_addr_parse(corio_addr *a, const char *str);

/* Fills out[0..max) with the addresses str stands for, in getaddrinfo's
 * order, and returns how many (>= 1).  socktype: SOCK_STREAM or
 * SOCK_DGRAM.  Parks only for a host name.  The errors of
 * corio_addr_parse() and of corio_resolve(). */
int corio_addr_resolve(corio_addr *out, int max, const char *str, int socktype,
                       int64_t deadline);

/* Writes a in the syntax above ("unix:@name" for an abstract socket, an
 * unnamed Unix socket is "unix:").  Returns the length, -ENOSPC when size
 * is too small, -EAFNOSUPPORT for an unknown family. */
int corio_addr_format(const corio_addr *a, char *buf, size_t size);

/* The port of an IP address, or -EAFNOSUPPORT. */
int corio_addr_port(const corio_addr *a);

/* True when a and b are the same family, address and port (or path). */
bool corio_addr_equal(const corio_addr *a, const corio_addr *b);

/* The fd's local (getsockname) and peer (getpeername) address. */
int corio_addr_local(int fd, corio_addr *a);
int corio_addr_peer(int fd, corio_addr *a);

/* ---- Stream listeners (TCP and Unix) ---- */

typedef struct corio_listener corio_listener;

typedef struct corio_listen_options {
    int backlog;           /* 0: SOMAXCONN */
    bool no_reuseaddr;     /* SO_REUSEADDR is on by default */
    bool reuseport;        /* SO_REUSEPORT: one listener per loop and core */
    bool v6only;           /* IPV6_V6ONLY on an IPv6 wildcard */
    bool no_nodelay;       /* accepted TCP sockets keep Nagle's algorithm */
    int defer_accept;      /* TCP_DEFER_ACCEPT: wake only once data came, seconds */
    int fastopen;          /* TCP_FASTOPEN queue length; 0: off */
    int keepalive;         /* idle seconds before keepalive probes; 0: off */
    /* Called once when accepting starts to fail for lack of descriptors
     * (EMFILE, ENFILE), with that error; again only after an accept has
     * succeeded since.  NULL: one line on stderr instead. */
    void (*on_shed)(corio_listener *l, int err, void *data);
    void *data;
} corio_listen_options;

/* Listens on addr (TCP, or "unix:" for a Unix stream socket).  opts may be
 * NULL.  Parks only to resolve a host name (the first address is used).
 * 0, -CORIO_EADDR, -CORIO_ENONAME, -EADDRINUSE, -EACCES, -ENOMEM, ... */
int corio_net_listen(corio_listener **l, const char *addr, const corio_listen_options *opts,
                     int64_t deadline);

/* The same on a parsed address.  Never parks, and needs no running loop
 * (main() may listen first): the listener belongs to the loop of its first
 * accept. */
int corio_net_listen_addr(corio_listener **l, const corio_addr *addr,
                          const corio_listen_options *opts);

/* Accepts a connection: returns its fd (TCP_NODELAY already on for TCP
 * unless no_nodelay) and stores the peer in *peer (may be NULL).  Parks.
 * Out of descriptors, it does not spin: it closes a reserve descriptor,
 * accepts and closes the pending connections, reopens the reserve, counts
 * them (corio_listener_shed()), reports once (on_shed), and waits again.
 * -ETIMEDOUT, -ECANCELED, -CORIO_ECLOSED; -EMFILE/-ENFILE only if the
 * reserve could not be reopened either. */
int corio_listener_accept(corio_listener *l, corio_addr *peer, int64_t deadline);

/* The listening fd (for watchers or corio_close() from another coroutine). */
int corio_listener_fd(const corio_listener *l);

/* The bound address: the port the kernel picked for port 0. */
int corio_listener_addr(const corio_listener *l, corio_addr *a);

/* Connections accepted and closed for lack of descriptors. */
uint64_t corio_listener_shed(const corio_listener *l);

/* Closes the listener (waking a coroutine parked in accept with
 * -CORIO_ECLOSED), removes its Unix socket file if it made one, frees it.
 * Returns close(2)'s result. */
int corio_listener_close(corio_listener *l);

/* ---- Dialling (TCP and Unix stream) ---- */

typedef struct corio_dial_options {
    bool no_nodelay; /* keep Nagle's algorithm (TCP_NODELAY is on by default) */
    int keepalive;   /* idle seconds before keepalive probes; 0: off */
} corio_dial_options;

/* Connects to addr, trying its resolved addresses in order until one
 * answers; deadline covers resolution and every attempt.  opts may be
 * NULL.  Returns the connected fd, or the last attempt's error
 * (-ECONNREFUSED, -ETIMEDOUT, ...), -CORIO_EADDR, -CORIO_ENONAME.  Parks. */
int corio_net_dial(const char *addr, const corio_dial_options *opts, int64_t deadline);

/* The same for one parsed address. */
int corio_net_dial_addr(const corio_addr *addr, const corio_dial_options *opts, int64_t deadline);

/* ---- Datagrams (UDP and Unix datagram sockets) ---- */

typedef struct corio_dgram_options {
    bool reuseaddr;
    bool reuseport;
    bool v6only;
    bool broadcast;
    int rcvbuf; /* SO_RCVBUF bytes; 0: the kernel's default */
    int sndbuf; /* SO_SNDBUF bytes; 0: the kernel's default */
} corio_dgram_options;

/* A datagram socket bound to local (NULL: an ephemeral port, or unbound for
 * Unix) and connected to remote (NULL: not connected); the family comes
 * from whichever is given (both NULL: -EINVAL).  opts may be NULL.  Parks
 * only to resolve a host name.  Returns the fd. */
int corio_dgram_open(const char *local, const char *remote, const corio_dgram_options *opts,
                     int64_t deadline);

/* Sends one datagram to `to` (NULL: the connected peer).  Returns n.
 * -EMSGSIZE, -ECONNREFUSED (an earlier datagram was refused), ...  Parks
 * while the socket buffer is full. */
ssize_t corio_dgram_sendto(int fd, const void *buf, size_t n, const corio_addr *to,
                           int64_t deadline);

/* Receives one datagram into buf, storing its sender in *from (may be
 * NULL).  Returns its length (a longer datagram is cut to n).  Parks. */
ssize_t corio_dgram_recvfrom(int fd, void *buf, size_t n, corio_addr *from, int64_t deadline);

/* One datagram of a batch. */
typedef struct corio_dgram_msg {
    void *buf;
    size_t len;       /* bytes in buf (send) or room in buf (receive) */
    corio_addr *addr; /* destination (send; NULL: connected peer) or sender
                         (receive; may be NULL) */
    size_t result;    /* receive: bytes stored in buf */
    bool truncated;   /* receive: the datagram was longer than len */
} corio_dgram_msg;

/* Sends up to n datagrams with one sendmmsg(2) per attempt.  Returns how
 * many went (>= 1; the rest can be sent again), or -errno if none did.
 * Parks while the first cannot go. */
int corio_dgram_send_batch(int fd, corio_dgram_msg *msgs, unsigned n, int64_t deadline);

/* Receives up to n datagrams with one recvmmsg(2): those already queued,
 * at least one.  Returns how many.  Parks while none is queued. */
int corio_dgram_recv_batch(int fd, corio_dgram_msg *msgs, unsigned n, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
