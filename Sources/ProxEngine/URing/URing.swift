#if os(Linux)
import CProxURing
import Glibc

/// A failed io_uring system call: which one, and the errno it gave.
struct URingError: Error, CustomStringConvertible {
    var call: String
    var errno: Int32

    var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// One completion, copied out of the completion queue.
struct URingCompletion {
    var userData: UInt64
    /// The operation's result: bytes, a file descriptor, 0, or -errno.
    var result: Int32
    var flags: UInt32
}

/// One io_uring: its submission and completion queues, mapped once. Used by one thread only (the
/// ring is set up `SINGLE_ISSUER`, on the thread that uses it). Noncopyable: the ring's memory and
/// file descriptor are released once, when it goes.
struct URing: ~Copyable {
    /// The C record of the ring: a pointer, so its address is stable for the C side.
    private let ring: UnsafeMutablePointer<prox_ring>

    /// The flags the engine's rings use: one issuer, and completions posted only when this thread
    /// asks for them (no task-work interrupts).
    static let engineFlags = UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)

    init(entries: UInt32, flags: UInt32 = URing.engineFlags) throws(URingError) {
        let r = UnsafeMutablePointer<prox_ring>.allocate(capacity: 1)
        let rc = prox_ring_init(r, entries, flags)
        guard rc == 0 else {
            r.deallocate()
            throw URingError(call: "io_uring_setup", errno: -rc)
        }
        ring = r
    }

    deinit {
        prox_ring_exit(ring)
        ring.deallocate()
    }

    var fd: Int32 { ring.pointee.fd }
    /// The C record, for the worker's sockets to take SQEs from (on the ring's thread only).
    var raw: UnsafeMutablePointer<prox_ring> { ring }
    var features: UInt32 { ring.pointee.features }
    /// SQEs prepared and not yet submitted.
    var pending: UInt32 { prox_ring_sq_pending(ring) }

    /// A zeroed SQE for the caller to prepare. When the submission queue is full, what is in it
    /// goes to the kernel first (submission never waits for completions, so this cannot block).
    func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        if let s = prox_ring_get_sqe(ring) { return s }
        return uringSQEAfterSubmitting(ring)
    }

    /// Submits what is prepared and, with `wait` > 0, waits for that many completions or until
    /// `timeoutNanos` passes (negative: no limit). Returns the count submitted, or -errno
    /// (-ETIME: the wait timed out; -EINTR: a signal).
    @discardableResult
    func submit(wait: UInt32 = 0, timeoutNanos: Int64 = -1) -> Int32 {
        prox_ring_submit(ring, wait, timeoutNanos)
    }

    /// Hands every completion waiting in the queue to `body`, in order, and marks them seen.
    /// Returns how many there were.
    @inline(__always)
    func drainCompletions(_ body: (URingCompletion) -> Void) -> Int {
        var n = 0
        while let cqe = prox_ring_peek_cqe(ring) {
            let c = URingCompletion(userData: cqe.pointee.user_data, result: cqe.pointee.res, flags: cqe.pointee.flags)
            // Marked seen before the handler runs: it may prepare (and submit) more.
            prox_ring_cq_advance(ring, 1)
            body(c)
            n += 1
        }
        return n
    }

    /// The first of `ops` (IORING_OP_* values) the kernel lacks, or nil if it has them all.
    func firstUnsupported(_ ops: [UInt8]) throws(URingError) -> UInt8? {
        let r = ops.withUnsafeBufferPointer { prox_ring_first_unsupported_op(ring, $0.baseAddress, UInt32($0.count)) }
        if r <= -1000 { throw URingError(call: "io_uring_register(PROBE)", errno: -r - 1000) }
        return r < 0 ? nil : UInt8(r)
    }

    /// Registers, then unregisters, a provided-buffer ring of `entries` for group `group`.
    func tryProvidedBufferRing(entries: UInt32, group: UInt16) throws(URingError) {
        let bytes = Int(entries) * MemoryLayout<io_uring_buf>.stride
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = (bytes + page - 1) / page * page
        guard let mem = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mem != MAP_FAILED else {
            throw URingError(call: "mmap", errno: Glibc.errno)
        }
        defer { munmap(mem, size) }
        let r = prox_ring_try_pbuf_ring(ring, mem, entries, group)
        if r < 0 { throw URingError(call: "io_uring_register(PBUF_RING)", errno: -r) }
    }
}

/// The submission queue is full: what is in it goes to the kernel, which consumes submitted SQEs
/// at once (no SQPOLL), so there is room after. The kernel may refuse for a moment (`EAGAIN` when
/// it cannot allocate a request, `EINTR`): it is asked again, yielding the CPU in between. A ring
/// that stays full for a second of retries is a broken kernel state, reported as such (before,
/// this was an unexplained crash on the first refusal).
@inline(never)
func uringSQEAfterSubmitting(_ ring: UnsafeMutablePointer<prox_ring>) -> UnsafeMutablePointer<io_uring_sqe> {
    var last: Int32 = 0
    for attempt in 0..<10_000 {
        let r = prox_ring_submit(ring, 0, -1)
        if r < 0 { last = r }
        if let s = prox_ring_get_sqe(ring) { return s }
        if attempt > 0 { usleep(100) } else { sched_yield() }
    }
    fatalError("io_uring: the submission queue stays full; the kernel refuses submissions (\(String(cString: strerror(-last))))")
}
#endif
