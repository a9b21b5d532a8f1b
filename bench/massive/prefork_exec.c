/* corio-prefork: runs a server command as N worker processes under corio's
 * prefork supervisor (corio_prefork_run): SIGINT and SIGTERM are forwarded,
 * a worker that crashes is restarted with backoff.  Each worker finds its
 * index in $CORIO_WORKER.  The workers share a port with SO_REUSEPORT.
 *
 *   corio-prefork -n N [-q] [-k SEC] -- command [args...]
 *
 * This is how one server passes the per-process descriptor cap (20,000
 * here): N processes hold N times as many connections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corio.h"

struct cmd {
    char **argv;
};

static int run_worker(unsigned index, void *data)
{
    struct cmd *c = data;
    char v[16];
    snprintf(v, sizeof v, "%u", index);
    setenv("CORIO_WORKER", v, 1);
    execvp(c->argv[0], c->argv);
    perror(c->argv[0]);
    return 127;
}

int main(int argc, char **argv)
{
    corio_prefork_options o = {.worker = run_worker};
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            o.workers = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
            o.shutdown_timeout = (int64_t)(atof(argv[++i]) * 1e9);
        else if (strcmp(argv[i], "-q") == 0)
            o.quiet = true;
        else
            break;
    }
    if (i + 1 >= argc || strcmp(argv[i], "--") != 0) {
        fprintf(stderr, "usage: corio-prefork -n N [-q] [-k shutdown-seconds] -- command [args...]\n");
        return 2;
    }
    struct cmd c = {&argv[i + 1]};
    o.data = &c;
    int r = corio_prefork_run(&o);
    if (r < 0) {
        fprintf(stderr, "corio-prefork: %s\n", corio_strerror(r));
        return 1;
    }
    return r;
}
