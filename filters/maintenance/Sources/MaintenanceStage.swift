import Foundation
import ProxCore

/// Answers the maintenance response while maintenance is on, unless the client is in `allow`.
///
/// Everything the response needs is made at compile time: the headers, the body, and the
/// `Retry-After` value when it is fixed. Per request it reads the clock once; it builds a string
/// only for a computed `Retry-After`, on the refusal path.
public struct MaintenanceStage: Stage {
    /// A window in seconds since the epoch: on from `start` up to (not including) `end`.
    public struct Window: Sendable, Equatable {
        public var start: Int64
        public var end: Int64
        public init(start: Int64, end: Int64) {
            self.start = start
            self.end = end
        }
    }

    public let manual: Bool
    /// Sorted by start.
    public let windows: [Window]
    public let allow: [CIDR]
    public let status: Int
    public let body: String
    /// `Retry-After` when it is fixed; nil: seconds until the window ends.
    public let retryAfter: String?
    let headers: [(name: HeaderName, value: String)]
    /// Seconds since the epoch, UTC. Tests pass a fixed clock.
    public let now: @Sendable () -> Int64

    static let retryAfterName = HeaderName("Retry-After")

    /// The real clock.
    public static let systemClock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    public init(manual: Bool, windows: [Window], allow: [CIDR], status: Int = 503, body: String,
                contentType: String = "text/plain; charset=utf-8", retryAfterSeconds: Int64? = nil,
                now: @escaping @Sendable () -> Int64 = MaintenanceStage.systemClock) {
        self.manual = manual
        self.windows = windows.sorted { $0.start < $1.start }
        self.allow = allow
        self.status = status
        self.body = body
        self.retryAfter = retryAfterSeconds.map { String($0) }
        self.headers = [(.contentType, contentType)]
        self.now = now
    }

    /// The same stage reading another clock.
    public func withClock(_ now: @escaping @Sendable () -> Int64) -> MaintenanceStage {
        MaintenanceStage(manual: manual, windows: windows, allow: allow, status: status, body: body,
                         contentType: headers[0].value, retryAfterSeconds: retryAfter.flatMap { Int64($0) }, now: now)
    }

    public var kind: String { MaintenanceFactory.name }

    /// The window open at `t`, if any.
    public func openWindow(at t: Int64) -> Window? {
        for w in windows {
            if w.start > t { return nil }
            if t < w.end { return w }
        }
        return nil
    }

    public func request(_ ctx: RequestContext) -> Verdict {
        if !manual && windows.isEmpty {  // a switch left off: no clock to read
            ctx.record(kind, looked: "the switch", decided: "pass", why: "not enabled, and no windows")
            return .next
        }
        let t = now()
        let window = openWindow(at: t)
        guard manual || window != nil else {
            ctx.record(kind, looked: "the clock", decided: "pass", why: "not enabled, and no window is open")
            return .next
        }
        // For a trace only: called from `record`'s autoclosures, so not built per request.
        func why() -> String {
            window.map { "window \(UTCTime.format($0.start)) to \(UTCTime.format($0.end)) is open" } ?? "enabled: true"
        }
        if let block = allow.first(where: { $0.contains(ctx.client) }) {
            ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "pass", why: "\(why()), but the client is in allow \(block)")
            return .next
        }
        var response = LocalResponse(status: status, headers: headers, body: body, category: "maintenance")
        if let r = retryAfter {
            response.headers.append((Self.retryAfterName, r))
        } else if let w = window {
            response.headers.append((Self.retryAfterName, String(max(1, w.end - t))))
        }
        ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "respond \(status)", why: "\(why()); the client is not in allow")
        return .respond(response)
    }
}
