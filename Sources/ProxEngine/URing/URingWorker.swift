#if os(Linux)
import CProxURing
import Dispatch
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import ProxCore

/// One io_uring worker: a thread with its own ring, conforming to NIOCore's `EventLoop`, so
/// promises, futures, `Verdict.suspend` and scheduled work resolve on it exactly as on a SwiftNIO
/// loop (docs/ARCHITECTURE.md, "An io_uring engine for the HTTP/1 data plane").
///
/// Tasks from the worker's own thread queue without a lock; tasks from other threads queue under
/// a lock and wake the thread through an eventfd whose read is always armed on the ring. Timers
/// are a heap of deadlines: the ring's wait is bounded by the earliest.
public final class URingWorker: EventLoop, @unchecked Sendable {
    /// A task scheduled for a deadline: its run and its failure (cancelled, or shut down).
    private struct Timer {
        var run: () -> Void
        var fail: (any Error) -> Void
    }

    public let name: String
    /// Set by the worker thread itself before `init` returns; read-only after.
    private var thread = pthread_t()
    private let eventFD: Int32

    // Guarded by `lock`: what other threads hand over.
    private let lock = NIOLock()
    private var remoteTasks: [() -> Void] = []
    /// An eventfd write is on its way (or the thread is awake and will look): no other needed.
    private var wakeSignalled = false
    private var stopRequested = false
    private var stopped = false
    private var shutdownCallbacks: [(DispatchQueue, (any Error)?) -> Void] = []

    // The worker thread's own.
    private var localTasks: [() -> Void] = []
    /// Whether the remote queue may hold something: set when the eventfd's read completes (every
    /// hand-over that finds the thread not yet told writes it) and when a stop is asked on this
    /// thread. A turn without it skips the lock: one lock round trip (about 60 instructions)
    /// a turn fewer.
    private var lookAtRemote = true
    /// A stop was asked (read with the remote queue); it stays asked.
    private var stopSeen = false
    private var timerHeap = DeadlineHeap()
    private var timers: [UInt64: Timer] = [:]
    private let nextTimerID = NIOLockedValueBox<UInt64>(0)
    /// The ring, for sockets to prepare operations on (set by the thread, used on it only).
    private var ring: UnsafeMutablePointer<prox_ring>?
    /// The eventfd's counter, read into by the armed READ.
    private let wakeBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    /// Receive buffers its sockets gave back while a connection still held their bytes, taken
    /// again once it let go (and those of closed sockets): no allocation per read.
    var receiveBuffers = RecycledBuffers(count: 256, maxCapacity: 4096)
    /// The time of this turn, read once when a wait returns and once at a turn's start, for the
    /// connections' timestamps (`LoopState.now()`): a request took six to eight clock reads of
    /// its own, about 1% of the worker's CPU.
    let clock = TurnClock()

    /// Fixed-file slots (`IORING_REGISTER_FILES2`): a socket in one is named by its slot in its
    /// operations, so the kernel skips looking its descriptor up (`fget`/`fput`) on each, about
    /// 1.2% of the worker's CPU. Free slots, taken on the worker's thread; empty when the kernel
    /// refused the table or `PROX_URING_FIXED_FILES=0`. A socket that finds none uses its
    /// descriptor.
    private var freeSlots: [Int32] = []
    /// What each slot's update puts in it, read by the kernel when the update is submitted.
    let slotValues: UnsafeMutablePointer<Int32>
    /// Buffers the kernel receives into for every socket's multishot receive (a provided-buffer
    /// ring), or nil: sockets then arm one receive at a time into their own buffer. A receive
    /// that stays armed saves arming the socket's poll and preparing an SQE for every read
    /// (about 1.5% of the worker's CPU at `wrk -c64`, by perf's shares); its bytes are copied out of the ring's
    /// buffer, which goes back to the kernel at once. `PROX_URING_MULTISHOT=0` turns it off.
    private(set) var receiveRing: UnsafeMutablePointer<prox_buf_ring>?
    /// 512 buffers of 4 KiB: 2 MiB a worker. A receive finding none left ends (`ENOBUFS`) and the
    /// socket arms it again.
    public static let defaultReceiveRingEntries: UInt32 = 512
    let receiveRingEntries: UInt32
    static let receiveRingBufferSize: UInt32 = 4096
    static let receiveRingGroup: UInt16 = 0
    public static let multishotReceive: Bool = {
        if let v = getenv("PROX_URING_MULTISHOT"), String(cString: v) == "0" { return false }
        return true
    }()
    /// Sockets whose receives in this batch of completions wait to be handed to their
    /// connections once the batch is collected: every read a socket got in one batch (the
    /// kernel posts one per buffer) reaches the connection as one.
    /// Each holds its socket (one retain per delivery, taken when queued, let go when done).
    private var deliveries: [Unmanaged<URingSocket>] = []

    /// How many slots the worker's table has (0: none).
    let fileSlots: Int32
    public static let defaultFileSlots: Int32 = {
        if let v = getenv("PROX_URING_FIXED_FILES"), String(cString: v) == "0" { return 0 }
        return 16_384
    }()

    /// `PROX_URING_MAX_WAIT_MS`: the longest the ring's wait may last (0: no bound). For
    /// valgrind, which holds its one big lock through `io_uring_enter` (3.19 does not know the
    /// call blocks), so a waiting worker would stop every other thread: bench/callgrind.py sets 10.
    static let maxWaitNanos: Int64 = {
        guard let v = getenv("PROX_URING_MAX_WAIT_MS"), let ms = Int64(String(cString: v)), ms > 0 else { return 0 }
        return ms * 1_000_000
    }()

    /// `user_data` of the eventfd read.
    static let wakeTag: UInt64 = 1
    /// Submission queue size: enough for a burst of operations between two waits.
    static let ringEntries: UInt32 = 256

    /// Starts the thread and its ring; throws (with the ring's error) when the ring cannot be set up.
    /// `fileSlots` and `receiveRingEntries` (a power of two, 0 for none) are for tests: the
    /// defaults are what serving uses.
    public init(name: String = "prox-uring", fileSlots: Int32 = URingWorker.defaultFileSlots,
                receiveRingEntries: UInt32 = URingWorker.defaultReceiveRingEntries) throws {
        self.name = name
        self.fileSlots = Self.slotsWithinLimit(fileSlots)
        self.receiveRingEntries = Self.multishotReceive ? receiveRingEntries : 0
        slotValues = .allocate(capacity: Int(max(1, fileSlots)))
        // Blocking: the ring's read waits on it (a write never blocks short of 2^64 - 1 wakes).
        let efd = prox_eventfd()
        guard efd >= 0 else { throw URingError(call: "eventfd", errno: -efd) }
        eventFD = efd
        // Signalled once the thread has set its ring up (or failed: `setupError`).
        let started = DispatchSemaphore(value: 0)
        let setupError = NIOLockedValueBox<URingError?>(nil)
        let box = Unmanaged.passRetained(ThreadStart { [self] in
            self.thread = pthread_self()
            // Made on this thread: a SINGLE_ISSUER ring belongs to the thread that set it up.
            let ring: URing
            do {
                ring = try URing(entries: Self.ringEntries)
            } catch {
                setupError.withLockedValue { $0 = error as? URingError }
                started.signal()
                return
            }
            // The fixed-file table and the receive ring are set up before `init` returns, so
            // that what the kernel refused is known (`degraded`) to whoever starts the worker.
            self.setUpRegistrations(ring)
            started.signal()
            self.run(ring)
        })
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let start = Unmanaged<ThreadStart>.fromOpaque(arg!).takeRetainedValue()
            start.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw URingError(call: "pthread_create", errno: rc)  // deinit closes the eventfd
        }
        pthread_detach(tid)
        started.wait()
        if let error = setupError.withLockedValue({ $0 }) {
            throw error  // deinit closes the eventfd
        }
    }

    deinit {
        // Closed here, not when the loop stops: a thread that handed over work just before the
        // stop may still be about to write its wake-up, and a closed descriptor's number can
        // already belong to another socket, which would get those 8 bytes. Whoever writes holds
        // the worker, so the descriptor outlives every write.
        Glibc.close(eventFD)
        wakeBuffer.deallocate()
        slotValues.deallocate()
        // The ring is closed by now (the thread has finished): the kernel writes no more.
        if let r = receiveRing {
            prox_buf_ring_free(r)
            r.deallocate()
        }
    }

    /// A free fixed-file slot, or nil (none left, or no table).
    @inline(__always)
    func takeSlot() -> Int32? { freeSlots.popLast() }

    /// A slot the kernel has emptied (its update to -1 completed).
    func giveSlot(_ slot: Int32) { freeSlots.append(slot) }

    /// `socket` got bytes in this batch: it hands them on when the batch is collected.
    @inline(__always)
    func deliverLater(_ socket: URingSocket) { deliveries.append(.passRetained(socket)) }

    private func deliverReceived() {
        // A delivery can close other sockets or queue more work, but adds no delivery: those
        // come from completions only.
        var list = deliveries
        deliveries = []
        for s in list {
            s._withUnsafeGuaranteedRef { $0.deliverReceived() }
            s.release()
        }
        list.removeAllKeepingStorage()
        if deliveries.isEmpty { deliveries = list }
    }

    /// Slots free now (tests; on the worker's thread).
    var freeSlotCount: Int { freeSlots.count }

    // MARK: EventLoop

    public var inEventLoop: Bool { pthread_equal(pthread_self(), thread) != 0 }

    public func execute(_ task: @escaping @Sendable () -> Void) {
        if inEventLoop {
            localTasks.append(task)
        } else {
            enqueueRemote(task)
        }
    }

    public func _executeIsolatedUnsafeUnchecked(_ task: @escaping () -> Void) {
        if inEventLoop {
            localTasks.append(task)
        } else {
            enqueueRemote(task)
        }
    }

    private func enqueueRemote(_ task: @escaping () -> Void) {
        let wake: Bool? = lock.withLock {
            if stopped { return nil }
            remoteTasks.append(task)
            if wakeSignalled { return false }
            wakeSignalled = true
            return true
        }
        guard let wake else {
            // As SwiftNIO's loops do: work handed to a loop that has shut down is dropped, loudly.
            let msg = "prox: ERROR: a task was handed to io_uring worker \(name) after it shut down; it does not run\n"
            _ = msg.withCString { Glibc.write(2, $0, strlen($0)) }
            return
        }
        if wake { signal() }
    }

    private func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(eventFD, $0.baseAddress, 8) }
    }

    public func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        let id = nextTimerID.withLockedValue { v -> UInt64 in
            v += 1
            return v
        }
        let timer = Timer(run: {
            do { promise.assumeIsolatedUnsafeUnchecked().succeed(try task()) } catch { promise.fail(error) }
        }, fail: { promise.fail($0) })
        let refused = lock.withLock { stopped || stopRequested }
        if refused {
            promise.fail(EventLoopError.shutdown)
        } else if inEventLoop {
            addTimer(id, deadline, timer)
        } else {
            enqueueRemote { self.addTimer(id, deadline, timer) }
        }
        return Scheduled(promise: promise, cancellationTask: {
            if self.inEventLoop {
                self.cancelTimer(id)
            } else {
                self.enqueueRemote { self.cancelTimer(id) }
            }
        })
    }

    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    private func addTimer(_ id: UInt64, _ deadline: NIODeadline, _ timer: Timer) {
        timers[id] = timer
        timerHeap.push(deadline, id)
    }

    private func cancelTimer(_ id: UInt64) {
        // Its heap entry stays and is skipped when it comes due.
        timers.removeValue(forKey: id)?.fail(EventLoopError.cancelled)
    }

    public func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        let already: Bool = lock.withLock {
            if stopped { return true }
            shutdownCallbacks.append { q, e in q.async { callback(e) } }
            stopRequested = true
            return false
        }
        if already {
            queue.async { callback(nil) }
            return
        }
        if inEventLoop {
            lookAtRemote = true  // the loop sees `stopRequested` when this task returns
            return
        }
        signal()
    }

    // MARK: the loop

    /// A zeroed SQE on this worker's ring; on its thread only. When the submission queue is full,
    /// what is in it goes to the kernel first (a submission never waits for completions).
    @inline(__always)
    func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        let r = ring.unsafelyUnwrapped
        if let s = prox_ring_get_sqe(r) { return s }
        return uringSQEAfterSubmitting(r)
    }

    /// `requested`, or the process's descriptor limit when that is lower: the kernel refuses a
    /// fixed-file table larger than `RLIMIT_NOFILE` (EMFILE), and a socket that finds no free
    /// slot uses its descriptor anyway.
    static func slotsWithinLimit(_ requested: Int32) -> Int32 {
        var rl = rlimit()
        guard requested > 0, getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0,
              rl.rlim_cur != rlim_t.max, rl.rlim_cur < rlim_t(requested) else { return requested }
        return Int32(rl.rlim_cur)
    }

    /// What the kernel refused when the worker set up its ring's registrations, one line each
    /// (empty when it took everything asked). The engine still works without them, slower:
    /// sockets use their descriptors, or one receive at a time. Written by the worker's thread
    /// before `init` returns (the start semaphore orders it), read-only after.
    public private(set) var degraded: [String] = []

    /// Registers the fixed-file table and the provided-buffer ring; on the worker's thread.
    private func setUpRegistrations(_ ring: borrowing URing) {
        if fileSlots > 0 {
            let rc = prox_ring_register_file_slots(ring.raw, UInt32(fileSlots))
            if rc == 0 {
                freeSlots = (0..<fileSlots).reversed()
            } else {
                degraded.append("fixed-file table of \(fileSlots) slots refused (\(String(cString: strerror(-rc)))): sockets use their descriptors")
            }
        }
        if receiveRingEntries > 0 {
            let r = UnsafeMutablePointer<prox_buf_ring>.allocate(capacity: 1)
            let rc = prox_buf_ring_setup(ring.raw, r, receiveRingEntries, Self.receiveRingBufferSize, Self.receiveRingGroup)
            if rc == 0 {
                receiveRing = r
            } else {
                r.deallocate()
                degraded.append("receive buffer ring of \(receiveRingEntries) buffers refused (\(String(cString: strerror(-rc)))): one receive at a time")
            }
        }
    }

    private func run(_ ring: consuming URing) {
        self.ring = ring.raw
        armWake(ring)
        // Whether `clock` was read since the turn's work: just after a wait it was.
        var clockRead = false
        while true {
            runDueTimers(clockRead: clockRead)
            clockRead = false
            // The hand-over and the stop request are read together, under the lock, only in a turn
            // after the eventfd's read completed: every hand-over that finds `wakeSignalled`
            // clear writes it, so work handed over is never missed, and the remote queue need not
            // be looked at again before waiting.
            if runTasks() && localTasks.isEmpty && lock.withLock({ remoteTasks.isEmpty }) { break }
            if !localTasks.isEmpty {
                // More to do: submit what is prepared and collect what completed, without waiting.
                ring.submit()
            } else {
                // Nothing to do: wait for a completion (the eventfd's, at least) or the next timer.
                // The turn's time serves for the timeout: a timer is late by this turn's tasks at most.
                let now = clock.time
                var timeout = timerHeap.first.map { max(0, ($0 - now).nanoseconds) } ?? -1
                if Self.maxWaitNanos > 0 && (timeout < 0 || timeout > Self.maxWaitNanos) { timeout = Self.maxWaitNanos }
                if timeout != 0 { ring.submit(wait: 1, timeoutNanos: timeout) } else { ring.submit() }
                // Under valgrind (the only user of the bound), a thread switch point: 3.19 holds
                // its lock through `io_uring_enter`, and switches threads at a yield.
                if Self.maxWaitNanos > 0 { sched_yield() }
                clock.time = .now()
                clockRead = true
            }
            var woken = false
            _ = ring.drainCompletions { c in
                switch c.userData {
                case Self.wakeTag:
                    woken = true
                default:
                    URingTarget.deliver(c)
                }
            }
            if !deliveries.isEmpty { deliverReceived() }
            if woken {
                armWake(ring)
                lookAtRemote = true
            }
        }
        finish(ring)
    }

    private func armWake(_ ring: borrowing URing) {
        prox_prep_read(ring.sqe(), eventFD, wakeBuffer, 8, 0, Self.wakeTag)
    }

    /// Runs the tasks handed over and those queued on this thread; returns whether a stop was
    /// requested.
    private func runTasks() -> Bool {
        if lookAtRemote {
            lookAtRemote = false
            let (remote, stop): ([() -> Void], Bool) = lock.withLock {
                let r = remoteTasks
                remoteTasks = []
                // Awake now: what is handed over from here on is seen before the next wait, or wakes it.
                wakeSignalled = false
                return (r, stopRequested)
            }
            if stop { stopSeen = true }
            for t in remote { t() }
        }
        // Tasks queued by these tasks run in the next turn, after completions are collected.
        if localTasks.isEmpty { return stopSeen }
        var local = localTasks
        localTasks = []
        for t in local { t() }
        local.removeAll()
        return stopSeen
    }

    /// `clockRead`: `clock` holds the time a wait just returned; otherwise it is read here.
    private func runDueTimers(clockRead: Bool) {
        let now: NIODeadline
        if clockRead { now = clock.time } else { now = .now(); clock.time = now }
        while let (deadline, id) = timerHeap.peek(), deadline <= now {
            timerHeap.pop()
            timers.removeValue(forKey: id)?.run()
        }
    }

    /// The loop has stopped: pending timers fail with `shutdown`, the ring and eventfd close, and
    /// whoever asked for the shutdown is told.
    private func finish(_ ring: consuming URing) {
        let callbacks: [(DispatchQueue, (any Error)?) -> Void] = lock.withLock {
            stopped = true
            return shutdownCallbacks
        }
        // Sockets closed on the way out have cancels in flight: collect those completions, so the
        // sockets close their descriptors and are freed, before the ring goes. Bounded: until a
        // 10 ms wait brings nothing, at most 50 waits.
        for _ in 0..<50 {
            ring.submit(wait: 1, timeoutNanos: 10_000_000)
            let n = ring.drainCompletions { c in
                if c.userData != Self.wakeTag { URingTarget.deliver(c) }
            }
            if !deliveries.isEmpty { deliverReceived() }
            while !localTasks.isEmpty { _ = runTasks() }
            if n == 0 { break }
        }
        let pending = timers
        timers = [:]
        for (_, t) in pending { t.fail(EventLoopError.shutdown) }
        // Failing promises may queue callbacks on this loop: they run, then the loop is gone.
        while !localTasks.isEmpty { _ = runTasks() }
        self.ring = nil
        _ = consume ring
        for cb in callbacks { cb(DispatchQueue.global(), nil) }
    }
}

/// The thread's entry point, boxed for `pthread_create`.
private final class ThreadStart {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A binary min-heap of (deadline, id): the worker's timers in firing order.
struct DeadlineHeap {
    private var items: [(deadline: NIODeadline, id: UInt64)] = []

    var isEmpty: Bool { items.isEmpty }
    var first: NIODeadline? { items.first?.deadline }
    func peek() -> (NIODeadline, UInt64)? { items.first.map { ($0.deadline, $0.id) } }

    private static func less(_ a: (deadline: NIODeadline, id: UInt64), _ b: (deadline: NIODeadline, id: UInt64)) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
    }

    mutating func push(_ deadline: NIODeadline, _ id: UInt64) {
        items.append((deadline, id))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> (NIODeadline, UInt64)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.less(items[l], items[m]) { m = l }
                if r < items.count && Self.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return (top.deadline, top.id)
    }
}
#endif
