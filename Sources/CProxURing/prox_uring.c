#ifdef __linux__
#include "prox_uring.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    int r = (int)syscall(__NR_io_uring_setup, entries, p);
    return r < 0 ? -errno : r;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, void *arg, size_t argsz) {
    int r = (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    return r < 0 ? -errno : r;
}

int prox_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int prox_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args) {
    int r = (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
    return r < 0 ? -errno : r;
}

int prox_ring_init(struct prox_ring *ring, unsigned entries, unsigned flags) {
    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    int fd = sys_setup(entries, &p);
    if (fd < 0) return fd;
    ring->fd = fd;
    ring->setup_flags = flags;
    ring->features = p.features;
    ring->sq_entries = p.sq_entries;
    ring->cq_entries = p.cq_entries;

    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) {
        if (cq_len > sq_len) sq_len = cq_len;
        cq_len = sq_len;
    }
    void *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) { int e = -errno; close(fd); ring->fd = -1; return e; }
    void *cq = sq;
    if (!single) {
        cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED) { int e = -errno; munmap(sq, sq_len); close(fd); ring->fd = -1; return e; }
    }
    size_t sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    void *sqes = mmap(NULL, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        int e = -errno;
        if (!single) munmap(cq, cq_len);
        munmap(sq, sq_len);
        close(fd);
        ring->fd = -1;
        return e;
    }
    ring->sq_map = sq;
    ring->sq_map_len = sq_len;
    ring->cq_map = single ? NULL : cq;
    ring->cq_map_len = single ? 0 : cq_len;
    ring->sqes = sqes;
    ring->sqes_len = sqes_len;
    char *s = sq, *c = cq;
    ring->sq_khead = (unsigned *)(s + p.sq_off.head);
    ring->sq_ktail = (unsigned *)(s + p.sq_off.tail);
    ring->sq_mask = *(unsigned *)(s + p.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(s + p.sq_off.array);
    ring->cq_khead = (unsigned *)(c + p.cq_off.head);
    ring->cq_ktail = (unsigned *)(c + p.cq_off.tail);
    ring->cq_mask = *(unsigned *)(c + p.cq_off.ring_mask);
    ring->cqes = (struct io_uring_cqe *)(c + p.cq_off.cqes);
    // The SQ array maps slot i to SQE i once and for all: SQEs are used in ring order.
    for (unsigned i = 0; i < p.sq_entries; i++) ring->sq_array[i] = i;
    ring->sqe_tail = *ring->sq_ktail;
    return 0;
}

void prox_ring_exit(struct prox_ring *ring) {
    if (ring->fd < 0) return;
    munmap(ring->sqes, ring->sqes_len);
    if (ring->cq_map) munmap(ring->cq_map, ring->cq_map_len);
    munmap(ring->sq_map, ring->sq_map_len);
    close(ring->fd);
    ring->fd = -1;
}

struct io_uring_sqe *prox_ring_get_sqe(struct prox_ring *ring) {
    unsigned head = __atomic_load_n(ring->sq_khead, __ATOMIC_ACQUIRE);
    if (ring->sqe_tail - head >= ring->sq_entries) return NULL;
    struct io_uring_sqe *sqe = &ring->sqes[ring->sqe_tail & ring->sq_mask];
    ring->sqe_tail++;
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

unsigned prox_ring_sq_pending(const struct prox_ring *ring) {
    return ring->sqe_tail - *ring->sq_ktail;
}

int prox_ring_submit(struct prox_ring *ring, unsigned wait_nr, int64_t timeout_ns) {
    unsigned to_submit = ring->sqe_tail - *ring->sq_ktail;
    // Release: the kernel sees the SQEs' contents before the new tail.
    __atomic_store_n(ring->sq_ktail, ring->sqe_tail, __ATOMIC_RELEASE);
    unsigned flags = IORING_ENTER_GETEVENTS;
    if (wait_nr > 0 && timeout_ns >= 0) {
        struct __kernel_timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
        struct io_uring_getevents_arg arg;
        memset(&arg, 0, sizeof(arg));
        arg.ts = (uint64_t)(uintptr_t)&ts;
        return sys_enter(ring->fd, to_submit, wait_nr, flags | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
    }
    return sys_enter(ring->fd, to_submit, wait_nr, flags, NULL, 0);
}

struct io_uring_cqe *prox_ring_peek_cqe(struct prox_ring *ring) {
    unsigned head = *ring->cq_khead;
    unsigned tail = __atomic_load_n(ring->cq_ktail, __ATOMIC_ACQUIRE);
    if (head == tail) return NULL;
    return &ring->cqes[head & ring->cq_mask];
}

void prox_ring_cq_advance(struct prox_ring *ring, unsigned n) {
    __atomic_store_n(ring->cq_khead, *ring->cq_khead + n, __ATOMIC_RELEASE);
}

int prox_ring_first_unsupported_op(struct prox_ring *ring, const uint8_t *ops, unsigned count) {
    size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, len);
    if (!probe) return -(1000 + ENOMEM);
    int r = prox_uring_register(ring->fd, IORING_REGISTER_PROBE, probe, 256);
    if (r < 0) { free(probe); return -(1000 - r); }
    int missing = -1;
    for (unsigned i = 0; i < count; i++) {
        uint8_t op = ops[i];
        if (op > probe->last_op || !(probe->ops[op].flags & IO_URING_OP_SUPPORTED)) { missing = op; break; }
    }
    free(probe);
    return missing;
}

static int register_pbuf_ring(struct prox_ring *ring, void *ring_mem, unsigned entries, unsigned short bgid) {
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)ring_mem;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    return prox_uring_register(ring->fd, IORING_REGISTER_PBUF_RING, &reg, 1);
}

int prox_ring_try_pbuf_ring(struct prox_ring *ring, void *ring_mem, unsigned entries, unsigned short bgid) {
    int r = register_pbuf_ring(ring, ring_mem, entries, bgid);
    if (r < 0) return r;
    struct io_uring_buf_reg unreg;
    memset(&unreg, 0, sizeof(unreg));
    unreg.bgid = bgid;
    r = prox_uring_register(ring->fd, IORING_UNREGISTER_PBUF_RING, &unreg, 1);
    return r < 0 ? r : 0;
}

int prox_ring_register_file_slots(struct prox_ring *ring, unsigned count) {
    struct io_uring_rsrc_register reg;
    memset(&reg, 0, sizeof(reg));
    reg.nr = count;
    reg.flags = IORING_RSRC_REGISTER_SPARSE;
    int r = prox_uring_register(ring->fd, IORING_REGISTER_FILES2, &reg, sizeof(reg));
    return r < 0 ? r : 0;
}

int prox_buf_ring_setup(struct prox_ring *ring, struct prox_buf_ring *br, unsigned entries, unsigned size,
                        unsigned short group) {
    memset(br, 0, sizeof(*br));
    if (entries == 0 || (entries & (entries - 1)) != 0 || entries > 32768) return -EINVAL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = ((size_t)entries * sizeof(struct io_uring_buf) + page - 1) / page * page;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    unsigned char *buffers = malloc((size_t)entries * size);
    if (!buffers) { munmap(mem, len); return -ENOMEM; }
    br->ring = mem;
    br->ring_len = len;
    br->buffers = buffers;
    br->entries = entries;
    br->size = size;
    br->group = group;
    for (unsigned i = 0; i < entries; i++) {
        struct io_uring_buf *b = &br->ring->bufs[i];
        b->addr = (uint64_t)(uintptr_t)(buffers + (size_t)i * size);
        b->len = size;
        b->bid = (unsigned short)i;
    }
    br->tail = (unsigned short)entries;
    __atomic_store_n(&br->ring->tail, br->tail, __ATOMIC_RELEASE);
    int r = register_pbuf_ring(ring, mem, entries, group);
    if (r < 0) { prox_buf_ring_free(br); return r; }
    return 0;
}

void prox_buf_ring_free(struct prox_buf_ring *br) {
    if (br->ring) munmap(br->ring, br->ring_len);
    free(br->buffers);
    memset(br, 0, sizeof(*br));
}

void prox_buf_ring_recycle(struct prox_buf_ring *br, unsigned bid) {
    struct io_uring_buf *b = &br->ring->bufs[br->tail & (br->entries - 1)];
    b->addr = (uint64_t)(uintptr_t)(br->buffers + (size_t)bid * br->size);
    b->len = br->size;
    b->bid = (unsigned short)bid;
    br->tail++;
    __atomic_store_n(&br->ring->tail, br->tail, __ATOMIC_RELEASE);
}

static inline void prep_rw(struct io_uring_sqe *sqe, uint8_t op, int fd, const void *addr, unsigned len, uint64_t off,
                           uint64_t data) {
    sqe->opcode = op;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = len;
    sqe->off = off;
    sqe->user_data = data;
}

void prox_prep_nop(struct io_uring_sqe *sqe, uint64_t data) { prep_rw(sqe, IORING_OP_NOP, -1, NULL, 0, 0, data); }

void prox_prep_read(struct io_uring_sqe *sqe, int fd, void *buf, unsigned len, uint64_t offset, uint64_t data) {
    prep_rw(sqe, IORING_OP_READ, fd, buf, len, offset, data);
}

void prox_prep_write(struct io_uring_sqe *sqe, int fd, const void *buf, unsigned len, uint64_t offset, uint64_t data) {
    prep_rw(sqe, IORING_OP_WRITE, fd, buf, len, offset, data);
}

void prox_prep_recv(struct io_uring_sqe *sqe, int fd, void *buf, unsigned len, int flags, int poll_first, uint64_t data) {
    prep_rw(sqe, IORING_OP_RECV, fd, buf, len, 0, data);
    sqe->msg_flags = (uint32_t)flags;
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
}

void prox_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, unsigned short group, uint64_t data) {
    prep_rw(sqe, IORING_OP_RECV, fd, NULL, 0, 0, data);
    sqe->ioprio |= IORING_RECV_MULTISHOT;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
}

void prox_prep_send(struct io_uring_sqe *sqe, int fd, const void *buf, unsigned len, int flags, uint64_t data) {
    prep_rw(sqe, IORING_OP_SEND, fd, buf, len, 0, data);
    sqe->msg_flags = (uint32_t)flags;
}

void prox_prep_accept(struct io_uring_sqe *sqe, int fd, int flags, uint64_t data) {
    prep_rw(sqe, IORING_OP_ACCEPT, fd, NULL, 0, 0, data);
    sqe->accept_flags = (uint32_t)flags;
}

void prox_prep_multishot_accept(struct io_uring_sqe *sqe, int fd, int flags, uint64_t data) {
    prox_prep_accept(sqe, fd, flags, data);
    sqe->ioprio |= IORING_ACCEPT_MULTISHOT;
}

void prox_prep_sendmsg(struct io_uring_sqe *sqe, int fd, const struct msghdr *msg, int flags, uint64_t data) {
    prep_rw(sqe, IORING_OP_SENDMSG, fd, msg, 1, 0, data);
    sqe->msg_flags = (uint32_t)flags;
}

void prox_prep_connect(struct io_uring_sqe *sqe, int fd, const struct sockaddr *addr, socklen_t len, uint64_t data) {
    // The address length goes in `off` for connect.
    prep_rw(sqe, IORING_OP_CONNECT, fd, addr, 0, len, data);
}

void prox_prep_close(struct io_uring_sqe *sqe, int fd, uint64_t data) { prep_rw(sqe, IORING_OP_CLOSE, fd, NULL, 0, 0, data); }

void prox_prep_timeout(struct io_uring_sqe *sqe, struct __kernel_timespec *ts, uint64_t data) {
    prep_rw(sqe, IORING_OP_TIMEOUT, -1, ts, 1, 0, data);
}

void prox_prep_files_update(struct io_uring_sqe *sqe, int *fds, int slot, uint64_t data) {
    prep_rw(sqe, IORING_OP_FILES_UPDATE, -1, fds, 1, (uint64_t)slot, data);
}

void prox_sqe_fixed_file(struct io_uring_sqe *sqe, int slot) {
    sqe->fd = slot;
    sqe->flags |= IOSQE_FIXED_FILE;
}

void prox_sqe_link(struct io_uring_sqe *sqe) { sqe->flags |= IOSQE_IO_LINK; }

void prox_prep_cancel(struct io_uring_sqe *sqe, uint64_t target, uint64_t data) {
    prep_rw(sqe, IORING_OP_ASYNC_CANCEL, -1, NULL, 0, 0, data);
    sqe->addr = target;
}
#endif
