#if os(Linux)
import CProxURing
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

    @Test func autoTakesURingWhenAvailable() throws {
        let d = try EngineDecision.decide(.auto, probe: { Self.passed })
        #expect(d.engine == .uring)
    }

    @Test func explicitURingFailsWithTheReason() throws {
        do {
            _ = try EngineDecision.decide(.uring, probe: { Self.refused })
            Issue.record("uring was accepted without io_uring")
        } catch {
            #expect("\(error)".contains("io_uring is not permitted here (test)"))
        }
        #expect(try EngineDecision.decide(.uring, probe: { Self.passed }).engine == .uring)
    }

}

/// The worker as NIOCore's `EventLoop`: tasks, promises and timers run on its thread, and work
/// handed over from other threads wakes its ring.
@Suite(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
struct URingWorkerTests {
    /// A registration the kernel refuses is said (`degraded`, which `ProxServer` logs), and the
    /// worker still serves without it.
    @Test func aRefusedRegistrationIsSaid() throws {
        let ok = try URingWorker()
        defer { try? ok.syncShutdownGracefully() }
        #expect(ok.degraded.isEmpty)
        // 3 buffers: a provided-buffer ring's size must be a power of two (EINVAL).
        let w = try URingWorker(receiveRingEntries: URingWorker.multishotReceive ? 3 : 0)
        defer { try? w.syncShutdownGracefully() }
        if URingWorker.multishotReceive {
            #expect(w.degraded.count == 1)
            #expect(w.degraded.first?.contains("receive buffer ring of 3 buffers refused") == true, "\(w.degraded)")
        }
        #expect(try w.submit { w.inEventLoop }.wait())
    }

    /// A fixed-file table larger than the descriptor limit is refused by the kernel: the worker
    /// asks for no more than the limit, and gets it.
    @Test func theFixedFileTableFitsTheDescriptorLimit() throws {
        var rl = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0)
        let limit = rl.rlim_cur == rlim_t.max ? Int32(1 << 20) : Int32(clamping: rl.rlim_cur)
        #expect(URingWorker.slotsWithinLimit(limit + 1) == limit)
        #expect(URingWorker.slotsWithinLimit(2) == 2)
        #expect(URingWorker.slotsWithinLimit(0) == 0)
        // A worker with a table of the limit's size, when that is of a size to make here.
        guard limit <= 65_536 else { return }
        let w = try URingWorker(fileSlots: limit + 1, receiveRingEntries: 0)
        defer { try? w.syncShutdownGracefully() }
        #expect(w.degraded.isEmpty, "\(w.degraded)")
        #expect(try w.submit { w.freeSlotCount }.wait() == Int(limit))
    }

    @Test func submitRunsOnTheWorker() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        #expect(!w.inEventLoop)
        #expect(try w.submit { w.inEventLoop }.wait())
    }

    /// More operations prepared in one turn than the submission queue holds: each SQE taken
    /// from a full queue first sends what is in it to the kernel, and every operation completes.
    @Test func moreOperationsThanTheQueueHoldsInOneTurn() throws {
        final class Counter: URingTarget, @unchecked Sendable {
            let done = NIOLockedValueBox(0)
            override func complete(tag: UInt64, result: Int32, flags: UInt32) { done.withLockedValue { $0 += 1 } }
        }
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let counter = Counter()
        let n = Int(URingWorker.ringEntries) * 3 + 7
        try w.submit {
            for _ in 0..<n { prox_prep_nop(w.sqe(), counter.submitting(1)) }
        }.wait()
        for _ in 0..<200 where counter.done.withLockedValue({ $0 }) < n { usleep(10_000) }
        #expect(counter.done.withLockedValue { $0 } == n)
    }

    /// An object nobody else holds lives while its operations are in flight (it holds itself,
    /// once, not once per operation), and is freed after the last completion, not before.
    @Test func aTargetLivesUntilItsLastCompletion() throws {
        final class Probe: URingTarget, @unchecked Sendable {
            let done: NIOLockedValueBox<Int>
            let completionsWhenFreed: NIOLockedValueBox<Int>
            init(_ done: NIOLockedValueBox<Int>, _ freed: NIOLockedValueBox<Int>) {
                self.done = done
                self.completionsWhenFreed = freed
            }
            override func complete(tag: UInt64, result: Int32, flags: UInt32) {
                #expect(opsInFlight == 10 - done.withLockedValue { $0 } - 1)
                done.withLockedValue { $0 += 1 }
            }
            deinit { completionsWhenFreed.withLockedValue { $0 = done.withLockedValue { $0 } } }
        }
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        let done = NIOLockedValueBox(0)
        let freed = NIOLockedValueBox(-1)
        try w.submit {
            let probe = Probe(done, freed)
            for _ in 0..<10 { prox_prep_nop(w.sqe(), probe.submitting(1)) }
        }.wait()
        for _ in 0..<200 where freed.withLockedValue({ $0 }) < 0 { usleep(10_000) }
        #expect(done.withLockedValue { $0 } == 10)
        #expect(freed.withLockedValue { $0 } == 10)
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

#if os(Linux)
/// `URingSocket`, the io_uring engine's `ConnectionIO`, over a socket pair: one end on a worker,
/// the other a plain blocking descriptor the test drives.
@Suite(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
struct URingSocketTests {
    /// Records what the socket tells its connection, for the test thread to read.
    final class Recorder: URingSocketDelegate, @unchecked Sendable {
        let bytes = NIOLockedValueBox<[UInt8]>([])
        let closes = NIOLockedValueBox(0)
        let writability = NIOLockedValueBox<[Bool]>([])
        var socket: URingSocket?
        var holdReads = false

        func socketReceived(_ data: ByteBuffer) { bytes.withLockedValue { $0 += data.readableBytesView } }
        func socketReadComplete() {}
        func socketReadRequested() { if !holdReads { socket?.read() } }
        func socketWritabilityChanged(_ writable: Bool) { writability.withLockedValue { $0.append(writable) } }
        func socketClosed() { closes.withLockedValue { $0 += 1 } }
    }

    /// A worker, a socket on it for one end of a pair, and the other end.
    static func pair() throws -> (URingWorker, URingSocket, Recorder, Int32) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        let w = try URingWorker()
        let r = Recorder()
        let s = try w.submit { () -> URingSocket in
            let s = URingSocket(fd: fds[0], worker: w)
            s.delegate = r
            r.socket = s
            s.read()
            return s
        }.wait()
        return (w, s, r, fds[1])
    }

    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out += buf[0..<n]
        }
    }

    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    @Test func receivesEveryByteInOrder() throws {
        let (w, _, r, peer) = try Self.pair()
        defer { try? w.syncShutdownGracefully() }
        let data = Self.pattern(3 << 20)
        let sent = data.withUnsafeBytes { p -> Int in
            var off = 0
            while off < p.count {
                let n = send(peer, p.baseAddress! + off, min(100_000, p.count - off), 0)
                if n <= 0 { break }
                off += n
            }
            return off
        }
        #expect(sent == data.count)
        for _ in 0..<500 where r.bytes.withLockedValue({ $0.count }) < data.count { usleep(10_000) }
        #expect(r.bytes.withLockedValue { $0 } == data)
        Glibc.close(peer)
        for _ in 0..<200 where r.closes.withLockedValue({ $0 }) == 0 { usleep(10_000) }
        #expect(r.closes.withLockedValue { $0 } == 1, "the peer's close is told once")
    }

    /// Many buffers queued past the high-water mark: the socket says it is unwritable, sends
    /// them (gathered, resent from where short sends stopped), says writable again, and, asked to
    /// close after sending, closes only once every byte went.
    @Test func sendsQueuedBuffersThenClosesAfterSending() throws {
        let (w, s, r, peer) = try Self.pair()
        defer { try? w.syncShutdownGracefully() }
        let data = Self.pattern(4 << 20)
        let closed = NIOLockedValueBox(false)
        let writableWhenQueued = try w.submit { () -> Bool in
            s.onClosed = { closed.withLockedValue { $0 = true } }
            var i = 0
            while i < data.count {
                // Pieces of varied size, so gathers and short sends cut across them.
                let n = min(data.count - i, 1000 + (i / 1000) % 9000)
                var b = ByteBufferAllocator().buffer(capacity: n)
                b.writeBytes(data[i..<(i + n)])
                s.send(b)
                i += n
            }
            let writable = s.isWritable
            s.flush()
            s.closeAfterSending()
            return writable
        }.wait()
        #expect(!writableWhenQueued)
        let got = Self.readAll(peer)
        #expect(got.count == data.count)
        #expect(got == data)
        for _ in 0..<200 where !closed.withLockedValue({ $0 }) { usleep(10_000) }
        #expect(closed.withLockedValue { $0 })
        #expect(r.writability.withLockedValue { $0 } == [false, true])
        Glibc.close(peer)
    }

    /// `close` with a receive in flight: the receive is cancelled, the descriptor closes (the
    /// peer sees end of file), and the delegate is told once.
    @Test func closeCancelsTheReceiveAndClosesOnce() throws {
        let (w, s, r, peer) = try Self.pair()
        defer { try? w.syncShutdownGracefully() }
        try w.submit { s.close(); s.close() }.wait()
        var b: UInt8 = 0
        #expect(recv(peer, &b, 1, 0) == 0)
        #expect(r.closes.withLockedValue { $0 } == 1)
        Glibc.close(peer)
    }

    /// A connection that holds reading back (it does not ask for more after a delivery) gets
    /// nothing more until it asks: the multishot receive is cancelled, not left receiving. When
    /// it asks again, what the peer sent meanwhile arrives, in order.
    @Test func heldBackReadingStopsTheMultishotReceive() throws {
        let (w, s, r, peer) = try Self.pair()
        defer { try? w.syncShutdownGracefully() }
        r.holdReads = true
        #expect(send(peer, "a", 1, 0) == 1)
        for _ in 0..<200 where r.bytes.withLockedValue({ $0.count }) < 1 { usleep(5_000) }
        usleep(50_000)  // the cancel lands
        #expect(send(peer, "b", 1, 0) == 1)
        usleep(100_000)
        #expect(r.bytes.withLockedValue { $0 } == Array("a".utf8))
        r.holdReads = false
        try w.submit { s.read() }.wait()
        for _ in 0..<200 where r.bytes.withLockedValue({ $0.count }) < 2 { usleep(5_000) }
        #expect(r.bytes.withLockedValue { $0 } == Array("ab".utf8))
        Glibc.close(peer)
    }

    /// A burst grows the buffer the socket receives into; once it is handed on, the next bytes
    /// go into a buffer of ordinary size, so a connection that once uploaded megabytes does not
    /// hold a large buffer while it idles.
    @Test func aBurstDoesNotLeaveALargeReceiveBuffer() throws {
        let (w, s, r, peer) = try Self.pair()
        defer { try? w.syncShutdownGracefully() }
        let data = Self.pattern(2 << 20)
        let sent = data.withUnsafeBytes { send(peer, $0.baseAddress!, $0.count, 0) }
        #expect(sent == data.count)
        for _ in 0..<500 where r.bytes.withLockedValue({ $0.count }) < data.count { usleep(5_000) }
        #expect(r.bytes.withLockedValue { $0.count } == data.count)
        #expect(send(peer, "x", 1, 0) == 1)
        for _ in 0..<200 where r.bytes.withLockedValue({ $0.count }) < data.count + 1 { usleep(5_000) }
        #expect(r.bytes.withLockedValue { $0.count } == data.count + 1)
        let capacity = try w.submit { s.receiveCapacity }.wait()
        #expect(capacity <= URingSocket.maxReceive, "receive buffer kept at \(capacity) bytes")
        Glibc.close(peer)
    }

    /// More sockets readable at once than the worker has receive buffers: receives that find
    /// the ring empty end (`ENOBUFS`) and are armed again, and every socket gets all its bytes in
    /// order.
    @Test func aDryReceiveRingLosesNothing() throws {
        let w = try URingWorker(receiveRingEntries: 2)
        defer { try? w.syncShutdownGracefully() }
        var peers: [Int32] = []
        var recorders: [Recorder] = []
        for _ in 0..<8 {
            var fds: [Int32] = [0, 0]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let r = Recorder()
            try w.submit {
                let s = URingSocket(fd: fds[0], worker: w)
                s.delegate = r
                r.socket = s
                s.read()
            }.wait()
            peers.append(fds[1])
            recorders.append(r)
        }
        let data = Self.pattern(64 * 1024)
        for _ in 0..<4 {
            for p in peers {
                #expect(data.withUnsafeBytes { send(p, $0.baseAddress!, 16 * 1024, 0) } == 16 * 1024)
            }
        }
        for p in peers { _ = data.withUnsafeBytes { send(p, $0.baseAddress! + 16 * 1024, 1, 0) } }
        let want = Array(data[0..<(16 * 1024)]) + Array(data[0..<(16 * 1024)]) + Array(data[0..<(16 * 1024)])
            + Array(data[0..<(16 * 1024)]) + [data[16 * 1024]]
        for r in recorders {
            for _ in 0..<400 where r.bytes.withLockedValue({ $0.count }) < want.count { usleep(5_000) }
            let got = r.bytes.withLockedValue { $0 }
            #expect(got.count == want.count)
            #expect(got == want, "bytes out of order or wrong")
        }
        for p in peers { Glibc.close(p) }
    }

    /// Sockets in fixed-file slots: bytes go both ways through the slot, and each closed socket's
    /// slot comes back once the kernel emptied it, so a worker with two slots serves ten
    /// connections one after another, each in a slot.
    @Test func fixedFileSlotsCarryBytesAndComeBack() throws {
        let w = try URingWorker(fileSlots: 2)
        defer { try? w.syncShutdownGracefully() }
        for i in 0..<10 {
            var fds: [Int32] = [0, 0]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let r = Recorder()
            let (s, inSlot) = try w.submit { () -> (URingSocket, Bool) in
                let s = URingSocket(fd: fds[0], worker: w)
                s.delegate = r
                r.socket = s
                s.takeFixedSlot()
                s.read()
                return (s, s.usesFixedSlot)
            }.wait()
            #expect(inSlot, "connection \(i) got no slot: slots of closed sockets did not come back")
            let ping: [UInt8] = Array("ping \(i)".utf8)
            #expect(send(fds[1], ping, ping.count, 0) == ping.count)
            for _ in 0..<200 where r.bytes.withLockedValue({ $0.count }) < ping.count { usleep(5_000) }
            #expect(r.bytes.withLockedValue { $0 } == ping)
            try w.submit {
                var b = ByteBufferAllocator().buffer(capacity: 4)
                b.writeString("pong")
                s.sendAndFlush(b)
                s.closeAfterSending()
            }.wait()
            #expect(String(decoding: Self.readAll(fds[1]), as: UTF8.self) == "pong")
            Glibc.close(fds[1])
            var free = 0
            for _ in 0..<200 {
                free = try w.submit { w.freeSlotCount }.wait()
                if free == 2 { break }
                usleep(5_000)
            }
            #expect(free == 2)
        }
    }

    @Test func connectToAClosedPortFails() throws {
        let w = try URingWorker()
        defer { try? w.syncShutdownGracefully() }
        // A port just released: nothing listens there.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: a.sin_port))
        Glibc.close(fd)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let f = try w.submit { URingSocket.connect(on: w, to: address, timeout: .seconds(2), describe: "127.0.0.1:\(port)") }.wait()
        do {
            _ = try f.wait()
            Issue.record("connected to a closed port")
        } catch UpstreamFailure.connectFailed(let detail) {
            #expect(detail.contains("Connection refused"), "\(detail)")
        }
    }
}
#endif
