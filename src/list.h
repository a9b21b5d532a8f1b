/* Intrusive circular doubly-linked lists.  A head is a corio_list whose
 * next and prev point at itself when empty; a node is unlinked when its
 * next is NULL. */
#ifndef CORIO_LIST_H
#define CORIO_LIST_H

#include <stddef.h>

#include "corio.h"

#define corio_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(corio_list *h)
{
    h->next = h;
    h->prev = h;
}

static inline int list_empty(const corio_list *h)
{
    return h->next == h;
}

static inline int list_linked(const corio_list *n)
{
    return n->next != NULL;
}

static inline void list_insert_tail(corio_list *h, corio_list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void list_remove(corio_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = NULL;
    n->prev = NULL;
}

/* Moves every node of src to the end of dst, leaving src empty. */
static inline void list_splice_tail(corio_list *dst, corio_list *src)
{
    if (list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    list_init(src);
}

#endif
