import ProxCore
import ProxFilterTesting
import Testing
@testable import ProxFilterMaintenance

@Suite struct MaintenanceTests {
    static let bed = FilterTestbed([FilterDescriptor(MaintenanceFactory.self)])

    /// Compiles one route whose chain is `[{maintenance: <filter>}]` and returns its stage.
    static func stage(_ filter: String) throws -> (Snapshot, MaintenanceStage) {
        let r = bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{maintenance: \(filter)}]
            proxy: up
        """))
        let s = try #require(r.snapshot, "\(r.diagnostics)")
        let stage = try #require(s.routes[0].chain.stages[0] as? MaintenanceStage)
        return (s, stage)
    }

    static let window = "{windows: [{start: 2026-12-01T02:00:00Z, end: 2026-12-01T04:00:00Z}]"
    static let t0200 = UTCTime.parse("2026-12-01T02:00:00Z")!

    /// (filter config, clock as offset from 02:00 in seconds, client, expected status or nil for pass, Retry-After)
    @Test(arguments: [
        (window + "}", -1, "10.0.0.1", nil, nil),                         // a second before the window
        (window + "}", 0, "10.0.0.1", 503, "7200"),                       // it opens
        (window + "}", 3600, "10.0.0.1", 503, "3600"),                    // halfway: Retry-After counts down
        (window + "}", 7199, "10.0.0.1", 503, "1"),
        (window + "}", 7200, "10.0.0.1", nil, nil),                       // end is exclusive
        (window + ", allow: [10.0.0.0/8]}", 60, "10.9.9.9", nil, nil),    // staff pass
        (window + ", allow: [10.0.0.0/8]}", 60, "192.0.2.1", 503, "7140"),
        (window + ", retry_after: 15m, status: 502}", 60, "10.0.0.1", 502, "900"),
        ("{enabled: true}", -86_400, "10.0.0.1", 503, nil),               // manual switch: no window, no Retry-After
        ("{enabled: true, retry_after: 1h}", 0, "::1", 503, "3600"),
        ("{enabled: true, allow: [\"::1\"]}", 0, "::1", nil, nil),
        ("{enabled: false, windows: []}", 0, "10.0.0.1", nil, nil),
        ("{windows: [{start: 2026-12-01T03:00:00+01:00, end: 2026-12-01T02:30:00Z}]}", 60, "10.0.0.1", 503, "1740"),
    ] as [(String, Int64, String, Int?, String?)])
    func decides(_ filter: String, _ offset: Int64, _ client: String, _ status: Int?, _ retryAfter: String?) throws {
        let (s, compiled) = try Self.stage(filter)
        let now = Self.t0200 + offset
        let stage = compiled.withClock { now }
        let ctx = Self.bed.request(s, client: client)
        let v = stage.request(ctx)
        let entry = try #require(ctx.trace?.entries.first)
        #expect(entry.stage == "maintenance")
        switch (v, status) {
        case (.next, nil):
            #expect(entry.decided == "pass")
        case (.respond(let r), let want?):
            #expect(r.status == want)
            #expect(r.category == "maintenance")
            #expect(r.body == "Down for maintenance; back soon.\n")
            #expect(r.headers.first { $0.name == HeaderName("Retry-After") }?.value == retryAfter)
            #expect(entry.decided == "respond \(want)")
        default:
            Issue.record("unexpected verdict for \(filter) at +\(offset)s from \(client)")
        }
    }

    /// (filter config, error message, path)
    @Test(arguments: [
        ("{windows: [{start: 2026-12-01T04:00:00Z, end: 2026-12-01T02:00:00Z}]}",
         "the window ends (2026-12-01T02:00:00Z) before it starts (2026-12-01T04:00:00Z)", "routes[0].chain[0].maintenance.windows[0].end"),
        ("{windows: [{start: 2026-12-01 02:00, end: 2026-12-01T04:00:00Z}]}",
         "'2026-12-01 02:00' is not an RFC 3339 timestamp", "routes[0].chain[0].maintenance.windows[0].start"),
        ("{windows: [{start: 2026-02-30T00:00:00Z, end: 2026-12-01T04:00:00Z}]}",
         "'2026-02-30T00:00:00Z' is not an RFC 3339 timestamp", "routes[0].chain[0].maintenance.windows[0].start"),
        ("{windows: [{start: 2026-12-01T02:00:00Z}]}",
         "missing required key 'end'", "routes[0].chain[0].maintenance.windows[0]"),
        ("{enabled: true, allow: [10.0.0.0/33]}",
         "'10.0.0.0/33' is not an IP address or CIDR block", "routes[0].chain[0].maintenance.allow[0]"),
        ("{enabled: true, status: 200}", "", "routes[0].chain[0].maintenance.status"),
        ("{enabled: true, retry_after: 1500ms}", "Retry-After is whole seconds", "routes[0].chain[0].maintenance.retry_after"),
    ])
    func configErrors(_ filter: String, _ message: String, _ path: String) throws {
        let r = Self.bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{maintenance: \(filter)}]
            proxy: up
        """))
        let e = try #require(r.errors.first, "no error for \(filter)")
        if !message.isEmpty { #expect(e.message == message) }
        #expect(e.path == path)
        #expect(e.mark.line == 10, "positioned on the chain entry's line")
    }

    @Test func neverOnIsAWarning() throws {
        let r = Self.bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{maintenance: {allow: [10.0.0.0/8]}}]
            proxy: up
        """))
        #expect(r.snapshot != nil)
        #expect(r.diagnostics.map(\.message) == ["maintenance is never on: no windows and `enabled` is false"])
    }

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2026-12-01T02:00:00Z", Int64(1_796_090_400)),
        ("2026-12-01T03:00:00+01:00", Int64(1_796_090_400)),
        ("2026-12-01T02:00:00.250Z", Int64(1_796_090_400)),
        ("2024-02-29T23:59:59Z", Int64(1_709_251_199)),
    ])
    func timestamps(_ text: String, _ seconds: Int64) {
        #expect(UTCTime.parse(text) == seconds)
        if !text.contains("+") && !text.contains(".") { #expect(UTCTime.format(seconds) == text) }
    }
}
