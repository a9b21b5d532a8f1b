/* libFuzzer target for the address parser.  Properties: it never crashes
 * or reads past the string, every result is 0 or one of its documented
 * errors, and what it accepts formats back into a string that parses to
 * the same address (parse(format(a)) == a). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "corio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1); /* exactly sized: ASan catches an over-read */
    memcpy(s, data, size);
    s[size] = '\0';
    corio_addr a, b;
    int r = corio_addr_parse(&a, s);
    if (r != 0 && r != -CORIO_EADDR && r != -CORIO_ENONAME && r != -ENAMETOOLONG)
        abort();
    if (r == 0) {
        char buf[CORIO_ADDR_STRLEN];
        int n = corio_addr_format(&a, buf, sizeof buf);
        if (n <= 0 || (size_t)n != strlen(buf))
            abort();
        if (corio_addr_parse(&b, buf) != 0 || !corio_addr_equal(&a, &b))
            abort();
        if (corio_addr_format(&a, buf, (size_t)n) != -ENOSPC) /* no room for the NUL */
            abort();
    }
    /* Numeric and malformed strings never reach the resolver (no loop is
     * running here: a name would fail with -CORIO_ENOTCO). */
    corio_addr out[2];
    if (r != -CORIO_ENONAME) {
        int n = corio_addr_resolve(out, 2, s, 0, CORIO_NOWAIT);
        if (r == 0 ? n != 1 : n != r)
            abort();
    }
    free(s);
    return 0;
}
