# Sync primitives, the blocking pool, name resolution and signals.
LIB_SRC += src/sync.c src/pool.c src/resolve.c src/signal.c
