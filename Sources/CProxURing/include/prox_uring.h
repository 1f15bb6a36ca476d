// Raw io_uring for Prox's io_uring engine: the three system calls, the ring's shared memory
// mapped once, and the SQE preparations Swift cannot write itself (the SQE's fields sit in
// anonymous unions Swift imports poorly). Built over the kernel's uapi header only, not
// liburing, so Prox adds no system dependency (docs/ARCHITECTURE.md, "An io_uring engine").
// Everything is Linux-only; elsewhere the header declares nothing and the engine reports
// io_uring as unavailable.
#ifndef PROX_URING_H
#define PROX_URING_H

#ifdef __linux__
#include <linux/io_uring.h>
#include <linux/time_types.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/// One ring: its file descriptor and the pointers into the kernel-shared queues. Owned and used
/// by one thread (the rings are set up with `SINGLE_ISSUER`).
struct prox_ring {
    int fd;
    unsigned setup_flags;
    unsigned features;
    unsigned sq_entries;
    unsigned cq_entries;
    // Submission queue.
    unsigned *sq_khead;
    unsigned *sq_ktail;
    unsigned sq_mask;
    unsigned *sq_array;
    struct io_uring_sqe *sqes;
    /// SQEs handed out but not yet published to the kernel (`sq_tail` local copy).
    unsigned sqe_tail;
    // Completion queue.
    unsigned *cq_khead;
    unsigned *cq_ktail;
    unsigned cq_mask;
    struct io_uring_cqe *cqes;
    // The mappings, for teardown.
    void *sq_map;
    size_t sq_map_len;
    void *cq_map;
    size_t cq_map_len;
    size_t sqes_len;
};

/// Sets up a ring of `entries` with `flags` (IORING_SETUP_*) and maps it. 0, or -errno.
int prox_ring_init(struct prox_ring *ring, unsigned entries, unsigned flags);
/// Unmaps and closes the ring.
void prox_ring_exit(struct prox_ring *ring);
/// A zeroed SQE, or NULL when the submission queue is full (submit first).
struct io_uring_sqe *prox_ring_get_sqe(struct prox_ring *ring);
/// Publishes the SQEs handed out and enters the kernel: submits them and, with `wait_nr` > 0,
/// waits for that many completions, or until `timeout_ns` passes (< 0: no limit). Always asks
/// for completions to be posted (needed with `DEFER_TASKRUN`). The count submitted, or -errno
/// (-ETIME when the wait timed out, -EINTR on a signal).
int prox_ring_submit(struct prox_ring *ring, unsigned wait_nr, int64_t timeout_ns);
/// SQEs handed out and not yet submitted.
unsigned prox_ring_sq_pending(const struct prox_ring *ring);
/// The next CQE, or NULL when the completion queue is empty.
struct io_uring_cqe *prox_ring_peek_cqe(struct prox_ring *ring);
/// Marks `n` CQEs seen.
void prox_ring_cq_advance(struct prox_ring *ring, unsigned n);

/// An eventfd (close-on-exec, blocking) for waking a ring's thread, or -errno.
int prox_eventfd(void);

/// `io_uring_register`: 0 or a positive result, or -errno.
int prox_uring_register(int fd, unsigned opcode, void *arg, unsigned nr_args);
/// Whether the ring supports every opcode in `ops`: -1 if all, else the first unsupported one;
/// or -(1000 + errno) when the probe itself failed.
int prox_ring_first_unsupported_op(struct prox_ring *ring, const uint8_t *ops, unsigned count);
/// Registers a provided-buffer ring of `entries` (a power of two) for group `bgid`, over memory
/// `ring_mem` (page-aligned, `entries` * 16 bytes), and unregisters it. 0, or -errno.
int prox_ring_try_pbuf_ring(struct prox_ring *ring, void *ring_mem, unsigned entries, unsigned short bgid);

/// Registers an empty table of `count` fixed files (IORING_REGISTER_FILES2, sparse; Linux 5.19).
/// 0, or -errno.
int prox_ring_register_file_slots(struct prox_ring *ring, unsigned count);
/// A provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19): `entries` buffers of `size`
/// bytes that the kernel picks from for multishot receives, and that the owner gives back once
/// it has copied a completion's bytes out.
struct prox_buf_ring {
    struct io_uring_buf_ring *ring;
    size_t ring_len;
    unsigned char *buffers;
    unsigned entries;
    unsigned size;
    unsigned short tail;
    unsigned short group;
};
/// Maps and registers `entries` (a power of two) buffers of `size` bytes as group `group`, all
/// given to the kernel. 0, or -errno (nothing is left allocated then).
int prox_buf_ring_setup(struct prox_ring *ring, struct prox_buf_ring *br, unsigned entries, unsigned size,
                        unsigned short group);
/// Frees the memory (after the ring is closed, or the ring unregistered).
void prox_buf_ring_free(struct prox_buf_ring *br);
/// The start of buffer `bid`.
static inline const unsigned char *prox_buf_ring_buffer(const struct prox_buf_ring *br, unsigned bid) {
    return br->buffers + (size_t)bid * br->size;
}
/// Gives buffer `bid` back to the kernel.
void prox_buf_ring_recycle(struct prox_buf_ring *br, unsigned bid);
// SQE preparations. Every one sets `user_data`.
void prox_prep_nop(struct io_uring_sqe *sqe, uint64_t data);
void prox_prep_read(struct io_uring_sqe *sqe, int fd, void *buf, unsigned len, uint64_t offset, uint64_t data);
void prox_prep_write(struct io_uring_sqe *sqe, int fd, const void *buf, unsigned len, uint64_t offset, uint64_t data);
/// `poll_first`: the socket is believed empty, so the kernel arms its poll at once instead of
/// first trying a receive that would fail (IORING_RECVSEND_POLL_FIRST, Linux 5.19).
void prox_prep_recv(struct io_uring_sqe *sqe, int fd, void *buf, unsigned len, int flags, int poll_first, uint64_t data);
/// A receive that stays armed, into buffers the kernel picks from group `group`: one completion
/// per receive, with IORING_CQE_F_BUFFER and the buffer's id in `flags >> IORING_CQE_BUFFER_SHIFT`,
/// and IORING_CQE_F_MORE while it stays armed (Linux 6.0).
void prox_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, unsigned short group, uint64_t data);
void prox_prep_send(struct io_uring_sqe *sqe, int fd, const void *buf, unsigned len, int flags, uint64_t data);
void prox_prep_accept(struct io_uring_sqe *sqe, int fd, int flags, uint64_t data);
/// An accept that stays armed: one completion per connection, with IORING_CQE_F_MORE while it
/// stays armed (Linux 5.19).
void prox_prep_multishot_accept(struct io_uring_sqe *sqe, int fd, int flags, uint64_t data);
/// A gathering send of `msg`'s iovecs (kept valid by the caller until the completion).
void prox_prep_sendmsg(struct io_uring_sqe *sqe, int fd, const struct msghdr *msg, int flags, uint64_t data);
void prox_prep_connect(struct io_uring_sqe *sqe, int fd, const struct sockaddr *addr, socklen_t len, uint64_t data);
void prox_prep_close(struct io_uring_sqe *sqe, int fd, uint64_t data);
/// A relative timeout of `ts` that completes with -ETIME (or is cancelled).
void prox_prep_timeout(struct io_uring_sqe *sqe, struct __kernel_timespec *ts, uint64_t data);
/// Puts `*fds` (a descriptor, or -1 to empty the slot) into fixed-file slot `slot`. `fds` must
/// stay valid until the SQE is submitted.
void prox_prep_files_update(struct io_uring_sqe *sqe, int *fds, int slot, uint64_t data);
/// The prepared operation names fixed-file slot `slot` instead of a descriptor.
void prox_sqe_fixed_file(struct io_uring_sqe *sqe, int slot);
/// The next SQE runs only after this one succeeded (IOSQE_IO_LINK).
void prox_sqe_link(struct io_uring_sqe *sqe);
/// Cancels the request whose user_data is `target`.
void prox_prep_cancel(struct io_uring_sqe *sqe, uint64_t target, uint64_t data);

#endif /* __linux__ */
#endif /* PROX_URING_H */
