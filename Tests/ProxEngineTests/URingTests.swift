#if os(Linux)
import Dispatch
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// The start-up probe and the engine decision (`server.engine`).
@Suite struct URingProbeTests {
    /// The probe runs for real here: either io_uring serves everything the engine uses (then a
    /// worker's ring can be made), or the reason says what is missing.
    @Test func probeRunsAndExplains() throws {
        let p = URingProbe.run()
        #expect(!p.reason.isEmpty)
        if p.available {
            let w = try URingWorker()
            try w.syncShutdownGracefully()
        } else {
            #expect(throws: (any Error).self) { try URingWorker() }
        }
    }

    @Test func setupRefusalsNameTheCause() {
        #expect(URingProbe.setupRefusal(errno: ENOSYS).contains("has no io_uring"))
        #expect(URingProbe.setupRefusal(errno: EPERM).contains("kernel.io_uring_disabled"))
        #expect(URingProbe.setupRefusal(errno: EPERM).contains("seccomp"))
        #expect(URingProbe.setupRefusal(errno: EINVAL).contains("Linux 6.1"))
        #expect(URingProbe.setupRefusal(errno: ENOMEM).contains("ulimit -l"))
    }

    static let refused = URingProbe(available: false, reason: "io_uring is not permitted here (test)")
    static let passed = URingProbe(available: true, reason: "io_uring is available")

    @Test func nioNeverProbes() throws {
        let d = try EngineDecision.decide(.nio, probe: { Issue.record("probed"); return Self.passed })
        #expect(d.engine == .nio)
    }

    @Test func autoFallsBackWithTheReason() throws {
        let d = try EngineDecision.decide(.auto, probe: { Self.refused })
        #expect(d.engine == .nio)
        #expect(d.reason.contains("io_uring is not permitted here (test)"))
    }

    @Test func autoRunsNIOUntilTheEngineServes() throws {
        let d = try EngineDecision.decide(.auto, probe: { Self.passed })
        #expect(d.engine == .nio)
        #expect(d.reason.contains("does not serve HTTP/1 listeners yet"))
    }

    @Test func explicitURingFailsWithTheReason() {
        do {
            _ = try EngineDecision.decide(.uring, probe: { Self.refused })
            Issue.record("uring was accepted without io_uring")
        } catch {
            #expect("\(error)".contains("io_uring is not permitted here (test)"))
        }
        #expect(throws: ServerError.self) { try EngineDecision.decide(.uring, probe: { Self.passed }) }
    }
}

/// The worker as NIOCore's `EventLoop`: tasks, promises and timers run on its thread, and work
/// handed over from other threads wakes its ring.
@Suite(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
struct URingWorkerTests {
    @Test func submitRunsOnTheWorker() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        #expect(!w.inEventLoop)
        #expect(try w.submit { w.inEventLoop }.wait())
    }

    /// The worker sleeps in the ring's wait with no timer: only the eventfd wakes it.
    @Test func crossThreadExecuteWakesTheRing() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        for i in 0..<50 {
            // Give the worker time to block in the wait: each task arrives at a sleeping ring.
            usleep(2_000)
            #expect(try w.submit { i * 2 }.wait() == i * 2)
        }
    }

    @Test func manyThreadsHandOverWork() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let count = NIOLockedValueBox(0)
        let done = w.makePromise(of: Void.self)
        let threads = 4, perThread = 500
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<perThread {
                w.execute {
                    precondition(w.inEventLoop)
                    let n = count.withLockedValue { v -> Int in v += 1; return v }
                    if n == threads * perThread { done.succeed(()) }
                }
            }
        }
        try done.futureResult.wait()
        #expect(count.withLockedValue { $0 } == threads * perThread)
    }

    @Test func futuresChainOnTheWorker() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let p = w.makePromise(of: Int.self)
        let chained = p.futureResult.map { v -> (Int, Bool) in (v + 1, w.inEventLoop) }
            .flatMap { v in w.makeSucceededFuture((v.0 * 10, v.1 && w.inEventLoop)) }
        // Completed from another thread: the callbacks still run on the worker.
        DispatchQueue.global().async { p.succeed(4) }
        let (value, onWorker) = try chained.wait()
        #expect(value == 50)
        #expect(onWorker)
    }

    @Test func scheduledTasksFireInDeadlineOrder() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let order = NIOLockedValueBox<[Int]>([])
        let start = NIODeadline.now()
        let late = w.scheduleTask(in: .milliseconds(60)) { order.withLockedValue { $0.append(3) }; return w.inEventLoop }
        let early = w.scheduleTask(in: .milliseconds(10)) { order.withLockedValue { $0.append(1) } }
        let middle = w.scheduleTask(deadline: start + .milliseconds(30)) { order.withLockedValue { $0.append(2) } }
        try early.futureResult.wait()
        try middle.futureResult.wait()
        #expect(try late.futureResult.wait())
        #expect(order.withLockedValue { $0 } == [1, 2, 3])
        #expect(NIODeadline.now() - start >= .milliseconds(60))
    }

    @Test func scheduledFromTheWorkerItself() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let fired = try w.submit { w.scheduleTask(in: .milliseconds(5)) { w.inEventLoop }.futureResult }.wait()
        #expect(try fired.wait())
    }

    @Test func cancelledTaskNeverRuns() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let ran = NIOLockedValueBox(false)
        let s = w.scheduleTask(in: .milliseconds(50)) { ran.withLockedValue { $0 = true } }
        s.cancel()
        #expect(throws: EventLoopError.cancelled) { try s.futureResult.wait() }
        // A later timer fires after the cancelled one's deadline: it did not run.
        try w.scheduleTask(in: .milliseconds(80)) {}.futureResult.wait()
        #expect(!ran.withLockedValue { $0 })
    }

    @Test func repeatedTasksRun() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let n = NIOLockedValueBox(0)
        let done = w.makePromise(of: Void.self)
        let task = w.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(2)) { t in
            if n.withLockedValue({ v -> Int in v += 1; return v }) == 5 { t.cancel(); done.succeed(()) }
        }
        try done.futureResult.wait()
        _ = task
        #expect(n.withLockedValue { $0 } == 5)
    }

    @Test func shutdownFailsPendingTimers() throws {
        let w = try URingWorker()
        let pending = w.scheduleTask(in: .hours(1)) {}
        let failure = NIOLockedValueBox<(any Error)?>(nil)
        // Registered before the shutdown: it runs on the worker as the loop stops.
        pending.futureResult.whenFailure { e in failure.withLockedValue { $0 = e } }
        try w.syncShutdownGracefully()
        #expect(failure.withLockedValue { $0 } as? EventLoopError == .shutdown)
    }
}

@Suite struct DeadlineHeapTests {
    @Test func popsInOrder() {
        var h = DeadlineHeap()
        let base = NIODeadline.now()
        let offsets = [50, 3, 17, 3, 99, 0, 42, 8]
        for (i, o) in offsets.enumerated() { h.push(base + .milliseconds(Int64(o)), UInt64(i)) }
        var out: [UInt64] = []
        while let (_, id) = h.pop() { out.append(id) }
        // Equal deadlines keep their insertion order (ids 1 then 3).
        #expect(out == [5, 1, 3, 7, 2, 6, 0, 4])
        #expect(h.isEmpty)
    }
}
#endif
