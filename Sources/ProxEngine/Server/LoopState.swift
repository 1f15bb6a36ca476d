#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import ProxCore
import ProxUpstream

/// Everything one event loop owns: its view of the current snapshot, its upstream connection
/// pools, its balancers, its open client connections and its access-log buffer. Touched only
/// on its own loop, so the hot path takes no lock and makes no thread hop.
final class LoopState {
    let eventLoop: any EventLoop
    /// The snapshot new requests on this loop read (once each, when their head arrives).
    var snapshot: Snapshot
    let balancers: BalancerRegistry
    let upstreams: LoopUpstreamConnections
    /// Endpoint pick, reuse and connect for upstream attempts on this loop.
    let dispatch: UpstreamDispatch
    let accessLog: AccessLog
    /// Error log: upstream failures and aborted responses (one line each; nothing on success).
    var logger: Logger
    /// Open client connections, for the timeout sweep and for draining.
    var connections: [ObjectIdentifier: ClientConnectionHandler] = [:]
    var draining = false
    /// How many event loops share the work (per-endpoint connection limits are split among them).
    let loopCount: Int
    var sweepTask: RepeatedTask?
    /// Upstream request head and client response head buffers, reused across requests on this
    /// loop. Kept per loop, not per connection, so an idle keep-alive connection holds none.
    var upstreamHeadBuffers = ScratchBuffers()
    /// Response heads (with a small body coalesced): given back when sent, taken again once
    /// the socket has let go (at once on SwiftNIO, after the send's completion on io_uring).
    var responseHeads = RecycledBuffers(count: 256, maxCapacity: 4096)
    /// Header arrays of finished request heads, lent to the parser of the next head on this loop.
    var headerSpares = HeaderSparePool()
    /// An empty buffer to drop consumed read buffers for: `ByteBuffer()` goes through a lazily
    /// initialised global each time (`swift_once`, ~70 instructions).
    let emptyBuffer = ByteBuffer()
    /// `Date: <IMF-fixdate>\r\n` for Prox's own answers (RFC 9110 §6.6.1), made at most once a
    /// second per loop (`dateLine(now:)`).
    private var cachedDateLine: [UInt8] = []
    private var cachedDateSecond = -1
    #if DEBUG
    /// Set by tests to prove that closed connections free their objects.
    var tracker: ObjectTracker? {
        didSet { upstreams.tracker = tracker }
    }
    #endif

    /// The io_uring worker's clock, read once per turn (nil on SwiftNIO, which has no hook for
    /// it: there `now()` reads the clock).
    private let turnClock: TurnClock?

    init(eventLoop: any EventLoop, snapshot: Snapshot, seed: UInt64, accessLog: AccessLog, loopCount: Int,
         logger: Logger = Logger(label: "prox"), turnClock: TurnClock? = nil) {
        self.eventLoop = eventLoop
        self.turnClock = turnClock
        self.logger = logger
        self.loopCount = loopCount
        self.snapshot = snapshot
        self.balancers = BalancerRegistry(seed: seed)
        self.upstreams = LoopUpstreamConnections(eventLoop: eventLoop, turnClock: turnClock)
        self.dispatch = UpstreamDispatch(upstreams: upstreams, balancers: balancers, loopCount: loopCount)
        self.accessLog = accessLog
    }

    /// Now, for a connection's timestamps (arrival, deadlines, durations): the io_uring worker's
    /// time of this turn, as nginx caches its time per event loop iteration (at most one turn's
    /// work stale, well under a millisecond at load), or the clock on SwiftNIO.
    @inline(__always)
    func now() -> NIODeadline {
        if let c = turnClock { return c.time }
        return .now()
    }

    /// The `Date` line for an answer made now: the cached one, remade when the second changed.
    func dateLine() -> [UInt8] {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        let second = Int(ts.tv_sec)
        if second != cachedDateSecond {
            cachedDateSecond = second
            cachedDateLine = Array("Date: \(httpDate(second))\r\n".utf8)
        }
        return cachedDateLine
    }

    /// Starts the timeout sweep: every 250 ms, deadlines of connections, requests and idle
    /// upstream connections are checked. A sweep costs a pass over open connections; it saves
    /// scheduling and cancelling a timer per request.
    func startSweep() {
        sweepTask = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] _ in
            let now = NIODeadline.now()
            for c in Array(connections.values) { c.checkTimeouts(now) }
            upstreams.closeExpiredIdle(now)
            accessLog.flush()
        }
    }

    func stop() {
        sweepTask?.cancel()
        upstreams.closeAll()
        accessLog.flush()
    }
}

/// The time an io_uring worker's turn began, set by the worker on its thread (`URingWorker.clock`)
/// and read there by its connections through `LoopState.now()`.
final class TurnClock {
    var time = NIODeadline.now()
}

/// A free list of buffers to write heads into. Once SwiftNIO has written a buffer it lets go,
/// and `clear()` on a buffer only we hold reuses its memory; if SwiftNIO still holds it (a slow
/// peer), `clear()` gets fresh memory instead (copy-on-write), so reuse never touches bytes in
/// flight. Bounded in count and per-buffer size, so its memory stays constant per loop.
struct ScratchBuffers {
    private var free: [ByteBuffer] = []
    /// As many as a loop's requests in flight at c256 (128 left half of them allocating).
    static let maxCount = 256
    static let maxCapacity = 16 * 1024

    init() { free.reserveCapacity(Self.maxCount) }

    @inline(__always)
    mutating func take(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var b = free.popLast() else { return allocator.buffer(capacity: 1024) }
        b.clear()
        return b
    }

    @inline(__always)
    mutating func give(_ b: consuming ByteBuffer) {
        guard b.capacity > 0, b.capacity <= Self.maxCapacity, free.count < Self.maxCount else { return }
        free.append(b)
    }
}

/// Buffers given back while something else may still hold them (a send in flight, a request's
/// slices of a receive buffer); one is taken again only when nobody else holds it, so its memory
/// is reused without copy-on-write. Sends on io_uring complete after the loop turn that queued
/// them, so without this each response head and each client receive buffer was a fresh
/// allocation (two `malloc`s and two `free`s each per request).
///
/// The newest given back is looked at first: on SwiftNIO a send usually completes before its
/// call returns, so that buffer is free again and the take costs one check. Otherwise the
/// ring, first in first out (the longest given back is the likeliest let go): a take looks at
/// its four oldest at most, and a give to a full ring drops the oldest, whose other holder then
/// frees it as usual. At most `count` + 1 buffers of at most `maxCapacity` bytes each.
struct RecycledBuffers {
    private var newest: ByteBuffer?
    private var slots: [ByteBuffer] = []
    /// The oldest in `slots`, and how many are held there.
    private var head = 0
    private var held = 0
    let count: Int
    let maxCapacity: Int
    private let empty = ByteBuffer()

    init(count: Int, maxCapacity: Int) {
        self.count = count
        self.maxCapacity = maxCapacity
    }

    @inline(__always) private func wrap(_ i: Int) -> Int { i >= count ? i - count : i }

    /// A buffer nobody else holds, emptied; nil when the newest and the four oldest are held.
    @inline(__always)
    mutating func take() -> ByteBuffer? {
        if var b = newest.take() {
            if b.modifyIfUniquelyOwned({ $0.clear() }) != nil { return b }
            push(b)
        }
        return held == 0 ? nil : takeFromRing()
    }

    @inline(__always)
    mutating func give(_ b: ByteBuffer) {
        guard b.capacity > 0, b.capacity <= maxCapacity else { return }
        if let previous = newest.take() { push(previous) }
        newest = b
    }

    private mutating func takeFromRing() -> ByteBuffer? {
        var k = 0
        while k < held && k < 4 {
            let i = wrap(head + k)
            if slots[i].modifyIfUniquelyOwned({ $0.clear() }) != nil {
                // Out of the ring (the oldest takes its slot): the taker is the only holder and
                // writes without a copy.
                let b = slots[i]
                slots[i] = slots[head]
                slots[head] = empty
                head = wrap(head + 1)
                held -= 1
                return b
            }
            k += 1
        }
        return nil
    }

    private mutating func push(_ b: ByteBuffer) {
        if slots.isEmpty { slots = Array(repeating: empty, count: count) }
        if held == count {
            // Full: the oldest goes.
            slots[head] = b
            head = wrap(head + 1)
        } else {
            slots[wrap(head + held)] = b
            held += 1
        }
    }
}

/// A bounded free list of request-head arrays (see `H1Spares`), so a keep-alive request parses
/// without allocating while an idle connection holds no arrays at all.
struct HeaderSparePool {
    private var free: [H1Spares] = []
    /// As `ScratchBuffers.maxCount`.
    static let maxCount = 256

    init() { free.reserveCapacity(Self.maxCount) }

    @inline(__always)
    mutating func keep(_ fields: inout HeaderFields) {
        guard free.count < Self.maxCount else { return }
        var s = H1Spares()
        s.keep(&fields)
        if !s.isEmpty { free.append(s) }
    }

    /// Lends `parser` a spare for its next head when it has none. (Not only when idle: after a
    /// bodiless request the parser still holds the request's end, so it is not idle when the
    /// next request's bytes arrive.)
    @inline(__always)
    mutating func lend(to parser: inout HTTP1RequestParser) {
        guard !parser.hasSpares, !free.isEmpty else { return }
        var s = free.removeLast()
        parser.adoptSpares(&s)
    }
}

/// `seconds` since the epoch as an IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
func httpDate(_ seconds: Int) -> String {
    var t = time_t(seconds)
    var tm = tm()
    gmtime_r(&t, &tm)
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
        + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
}
