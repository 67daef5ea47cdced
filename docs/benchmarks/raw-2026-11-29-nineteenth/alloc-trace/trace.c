// LD_PRELOAD shim: records every malloc/calloc/realloc/free/aligned allocation of a process
// (op, thread, pointer, size) into a shared file (ALLOC_TRACE_FILE), so that a script can replay
// them through a model of glibc's per-thread cache. Header: the number of records written.
// Build: gcc -O2 -shared -fPIC -o trace.so trace.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct rec { uint32_t op, tid; uint64_t ptr, size, ret; };
#define CAP (64u << 20) /* records: 2 GiB of sparse file */
static struct rec *recs;
static _Atomic uint64_t *count;
static __thread uint32_t my_tid;

static void *(*r_malloc)(size_t);
static void *(*r_calloc)(size_t, size_t);
static void *(*r_realloc)(void *, size_t);
static void (*r_free)(void *);
static int (*r_posix_memalign)(void **, size_t, size_t);
static void *(*r_aligned_alloc)(size_t, size_t);
static void *(*r_memalign)(size_t, size_t);

__attribute__((constructor)) static void init(void) {
    r_malloc = dlsym(RTLD_NEXT, "malloc");
    r_calloc = dlsym(RTLD_NEXT, "calloc");
    r_realloc = dlsym(RTLD_NEXT, "realloc");
    r_free = dlsym(RTLD_NEXT, "free");
    r_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    r_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    r_memalign = dlsym(RTLD_NEXT, "memalign");
    const char *f = getenv("ALLOC_TRACE_FILE");
    if (!f) return;
    int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    size_t len = 64 + (size_t)CAP * sizeof(struct rec);
    if (ftruncate(fd, len) != 0) return;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return;
    count = (_Atomic uint64_t *)m;
    recs = (struct rec *)(m + 64);
}

static void put(uint32_t op, void *p, size_t size, void *ret) {
    if (!recs) return;
    if (!my_tid) my_tid = (uint32_t)syscall(SYS_gettid);
    uint64_t i = atomic_fetch_add(count, 1);
    if (i >= CAP) return;
    recs[i] = (struct rec){op, my_tid, (uint64_t)p, size, (uint64_t)ret};
}

/* dlsym may call calloc before r_calloc is set: a small static arena for that. */
static char boot[4096];
static size_t boot_used;

void *malloc(size_t n) { if (!r_malloc) init(); void *r = r_malloc(n); put(1, 0, n, r); return r; }
void *calloc(size_t a, size_t b) {
    if (!r_calloc) {
        size_t n = (a * b + 15) & ~15ul;
        if (n > sizeof boot - boot_used) return NULL;
        void *p = boot + boot_used; boot_used += n; return p;
    }
    void *r = r_calloc(a, b); put(2, 0, a * b, r); return r;
}
void *realloc(void *p, size_t n) { void *r = r_realloc(p, n); put(3, p, n, r); return r; }
void free(void *p) {
    if ((char *)p >= boot && (char *)p < boot + sizeof boot) return;
    put(4, p, 0, 0); r_free(p);
}
int posix_memalign(void **out, size_t al, size_t n) { int e = r_posix_memalign(out, al, n); put(5, 0, n, e ? 0 : *out); return e; }
void *aligned_alloc(size_t al, size_t n) { void *r = r_aligned_alloc(al, n); put(6, 0, n, r); return r; }
void *memalign(size_t al, size_t n) { void *r = r_memalign(al, n); put(7, 0, n, r); return r; }
