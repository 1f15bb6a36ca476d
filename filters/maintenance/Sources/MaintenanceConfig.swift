import ProxCore

/// Config of the `maintenance` filter.
public struct MaintenanceConfig: ConfigObject {
    public var enabled = false
    public var windows: [MaintenanceWindow] = []
    public var allow: [CIDR] = []
    public var status = 503
    public var body = "Down for maintenance; back soon.\n"
    public var contentType = "text/plain; charset=utf-8"
    /// Milliseconds (a duration); nil: seconds until the window ends.
    public var retryAfter: Int64?

    public init() {}

    public static let doc = "Answers every request with a maintenance response while maintenance is on: when `enabled` is true (the manual switch), or while the clock (UTC) is inside one of `windows`. Clients in `allow` still pass, so staff can check the site before it reopens. The response has `status`, `body`, `Retry-After` and `X-Prox-Error: maintenance`."

    public static var fields: [ConfigField<Self>] {[
        .field("enabled", \.enabled, .bool,
               doc: "The manual switch: when true, maintenance is on now, whatever the windows say. Flip it and reload."),
        .field("windows", \.windows, ConfigType.object(MaintenanceWindow.self).list(), default: "none",
               doc: "Planned windows, each `{start, end}` in RFC 3339; maintenance is on from `start` up to (not including) `end`."),
        .field("allow", \.allow, ConfigType.cidr.list(), default: "nobody",
               doc: "Clients that pass during maintenance (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`). The address checked is the connection's peer."),
        .field("status", \.status, .int(min: 400, max: 599),
               doc: "Status of the maintenance response; 503 tells clients and crawlers the outage is temporary."),
        .field("body", \.body, .string, doc: "Body of the maintenance response."),
        .field("content_type", \.contentType, .string(minLength: 1), doc: "`Content-Type` of the body."),
        .field("retry_after", \.retryAfter, .duration(min: 1000), default: "seconds until the window ends",
               doc: "`Retry-After` sent with the response, in whole seconds (`30s`, `15m`). Left out, it is the time until the current window ends; with only `enabled: true` and no open window, no `Retry-After` is sent."),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if !enabled && windows.isEmpty && node["windows"] == nil && node["enabled"] == nil {
            decoder.warning(node, "maintenance is never on: no windows and `enabled` is false",
                            hint: "add `enabled: true` or a window `{start: ..., end: ...}`")
        }
        if let r = retryAfter, r % 1000 != 0, let n = node["retry_after"] {
            decoder.error(n, "Retry-After is whole seconds", hint: "write \((r + 999) / 1000)s")
        }
        // Overlapping windows are harmless but usually a typo in a date.
        let sorted = windows.enumerated().sorted { $0.element.start < $1.element.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.element.start < a.element.end {
            if let n = node["windows"]?.items?[b.offset] {
                decoder.warning(n, "overlaps window \(a.offset + 1) (\(UTCTime.format(a.element.start)) to \(UTCTime.format(a.element.end)))")
            }
        }
    }
}

/// One planned maintenance window.
public struct MaintenanceWindow: ConfigObject, Sendable {
    /// Seconds since the epoch.
    public var start: Int64 = 0
    public var end: Int64 = 0

    public init() {}

    public static let doc = "A planned maintenance window, in UTC or with an explicit offset: on from `start` up to (not including) `end`."

    public static var fields: [ConfigField<Self>] {[
        .field("start", \.start, .utcTimestamp, required: true, doc: "When the window opens (`2026-12-01T02:00:00Z`)."),
        .field("end", \.end, .utcTimestamp, required: true, doc: "When it closes; must be after `start`."),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        guard let endNode = node["end"], node["start"] != nil, start != 0, end != 0 else { return }
        if end <= start {
            decoder.error(endNode, "the window ends (\(UTCTime.format(end))) \(end == start ? "when" : "before") it starts (\(UTCTime.format(start)))",
                          hint: "`end` must be after `start`")
        }
    }
}
