/* Static files for corio-http (--static DIR): GET and HEAD, the body sent
 * with sendfile(2) straight from the page cache to the socket.
 *
 * The path is percent-decoded and must stay inside DIR: ".." segments are
 * refused outright, and where the kernel has openat2(2) (Linux 5.6) it is
 * opened with RESOLVE_BENEATH, so no symlink can lead out either; without
 * it, no symlink is followed at all. */
#include <string.h>
#include <sys/syscall.h>
#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#endif

#include "http_private.h"
#include "sys.h"

#define PATH_MAX_LEN 1024

int http__static_open(const char *dir)
{
    SITE(s_open, "open");
    return sys_open(&s_open, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The request path as a path relative to the directory: decoded, with
 * "index.html" for a directory.  0, or the status to answer with. */
static int relative_path(const char *p, size_t n, char *out, size_t size)
{
    size_t o = 0;
    while (n && *p == '/')
        p++, n--;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (i + 2 >= n || hi < 0 || lo < 0)
                return 400;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == 0 || c == '\\')
            return 400;
        if (o + 16 >= size)
            return 414;
        out[o++] = c;
    }
    if (o == 0 || out[o - 1] == '/') {
        memcpy(out + o, "index.html", 10);
        o += 10;
    }
    out[o] = 0;
    /* No ".." segment anywhere. */
    for (const char *s = out; (s = strstr(s, "..")) != NULL; s += 2)
        if ((s == out || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
            return 403;
    return 0;
}

/* Without openat2: one component at a time, refusing every symlink, so
 * nothing can lead out of the directory (stricter than RESOLVE_BENEATH,
 * which follows symlinks that stay inside). */
static int open_walk(int dirfd, char *rel)
{
    SITE(s_openat, "openat");
    SITE(s_close, "close");
    int at = dirfd;
    char *comp = rel;
    for (;;) {
        while (*comp == '/')
            comp++;
        char *slash = strchr(comp, '/');
        if (slash)
            *slash = 0;
        int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | (slash ? O_DIRECTORY : 0);
        int fd = sys_openat(&s_openat, at, comp, flags);
        if (slash)
            *slash = '/';
        if (at != dirfd)
            (void)sys_close(&s_close, at);
        if (fd < 0 || !slash)
            return fd;
        at = fd;
        comp = slash + 1;
    }
}

static int open_beneath(int dirfd, char *rel)
{
#if defined(SYS_openat2) && defined(HAVE_OPENAT2)
    SITE(s_openat2, "openat2");
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    /* An injected failure takes the kernel's path: ENOSYS falls back. */
    int f = corio_unlikely(corio__fault_on) ? corio__fault(&s_openat2) : 0;
    long r = f < 0 ? f : syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
    if (r < 0 && f == 0)
        r = -errno;
    if (r != -ENOSYS)
        return (int)r;
#endif
    return open_walk(dirfd, rel); /* before Linux 5.6, and under valgrind */
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css"}, {"js", "text/javascript"}, {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"}, {"xml", "application/xml"},
        {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
        {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"ico", "image/x-icon"},
        {"webp", "image/webp"}, {"wasm", "application/wasm"}, {"pdf", "application/pdf"},
    };
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Sends [0, size) of file to the socket, waiting while the socket is full. */
static int send_file(http_exchange *x, int file, off_t size)
{
    SITE(s_sendfile, "sendfile");
    int sock = x->c->fd;
    corio_loop *loop = http_exchange_loop(x);
    off_t off = 0;
    while (off < size) {
        ssize_t n = sys_sendfile(&s_sendfile, sock, file, &off, (size_t)(size - off));
        if (n > 0)
            continue;
        if (n == 0)
            return -EIO; /* the file shrank under us: the length we sent is a lie now */
        if (n == -EINTR)
            continue;
        if (n != -EAGAIN)
            return (int)n;
        corio_fd_drained(loop, sock, CORIO_WRITABLE);
        int r = corio_wait_fd(sock, CORIO_WRITABLE, corio_loop_now(loop) + x->timeout);
        if (r < 0)
            return r;
    }
    return 0;
}

int http__static_serve(http_exchange *x, const struct http_request *req, int dirfd)
{
    SITE(s_fstat, "fstat");
    SITE(s_close, "close");
    char rel[PATH_MAX_LEN];
    int status = relative_path(req->path, req->path_len, rel, sizeof rel);
    if (status)
        return http_respond(x, status, "text/plain", "refused\n", 8);
    int fd = open_beneath(dirfd, rel);
    if (fd < 0) {
        if (fd == -EACCES || fd == -EPERM)
            return http_respond(x, 403, "text/plain", "forbidden\n", 10);
        if (fd == -ENOENT || fd == -ENOTDIR || fd == -ENAMETOOLONG || fd == -EXDEV || fd == -ELOOP)
            return http_respond(x, 404, "text/plain", "not found\n", 10);
        /* Out of descriptors or memory says nothing about the file: a 404
         * would be cached as the truth. */
        return http_respond(x, 503, "text/plain", "unavailable\n", 12);
    }
    struct stat st;
    int r = sys_fstat(&s_fstat, fd, &st);
    if (r == 0 && !S_ISREG(st.st_mode))
        r = http_respond(x, 404, "text/plain", "not found\n", 10);
    else if (r == 0)
        r = http__respond_head(x, 200, content_type(rel), (uint64_t)st.st_size);
    if (r == 0 && x->responded && S_ISREG(st.st_mode) && req->method_id != HTTP_M_HEAD &&
        st.st_size > 0) {
        r = corio_stream_flush(x->c->s, x->deadline);
        if (r == 0)
            r = send_file(x, fd, st.st_size);
        if (r == 0)
            x->out += (uint64_t)st.st_size;
    }
    (void)sys_close(&s_close, fd);
    return r;
}
