#if canImport(Glibc)
import Glibc
#endif

/// What one stage looked at, what it decided and why: recorded for `prox dry-run`, `prox check`
/// and a live trace (`server.trace`). On the hot path `RequestContext.trace` is nil and
/// recording costs a nil check.
public struct TraceEntry: Sendable, Codable, Equatable {
    public var stage: String
    public var looked: String
    public var decided: String
    public var why: String
    /// Live traces only: microseconds from the request head's arrival to this entry (a stage
    /// records when it has decided, so the gap to the entry before is the stage's time).
    public var atMicros: Int64?

    public init(stage: String, looked: String, decided: String, why: String, atMicros: Int64? = nil) {
        self.stage = stage
        self.looked = looked
        self.decided = decided
        self.why = why
        self.atMicros = atMicros
    }

    enum CodingKeys: String, CodingKey {
        case stage, looked, decided, why, atMicros = "at_us"
    }
}

/// The entries of one request's trace. Dry-run and live traces are the same type; a live trace
/// also has a start time, and its entries carry timestamps.
public final class Trace {
    public var entries: [TraceEntry] = []
    /// Monotonic nanoseconds at the request head's arrival; nil in dry-run (no real time).
    public let startNanos: UInt64?

    public init() { startNanos = nil }

    public init(live: Void) { startNanos = Trace.now() }

    /// Microseconds since the start, for a live trace.
    public var elapsedMicros: Int64? {
        startNanos.map { Int64((Trace.now() &- $0) / 1000) }
    }

    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
