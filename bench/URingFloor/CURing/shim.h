// liburing (Debian's liburing-dev, 2.3) for bench/URingFloor. Its prep helpers are static inline
// and import as they are; the few below only reach fields Swift sees through anonymous unions
// (buf_group) and the CQ ring's head, which liburing reads through a macro.
#include <liburing.h>

// A multishot receive that picks its buffers from provided-buffer group `bgid`.
static inline void prox_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, unsigned short bgid, __u64 data) {
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = bgid;
    sqe->user_data = data;
}

// The CQE at ring position `index` (the caller owns the head: one thread per ring).
static inline struct io_uring_cqe *prox_cqe_at(struct io_uring *ring, unsigned index) {
    return &ring->cq.cqes[index & ring->cq.ring_mask];
}

static inline unsigned prox_cq_head(struct io_uring *ring) { return *ring->cq.khead; }

static const unsigned prox_sqe_cqe_skip_success = IOSQE_CQE_SKIP_SUCCESS;
