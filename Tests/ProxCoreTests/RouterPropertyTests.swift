import Testing
import ProxCore
import ProxRegex

/// Draws from ProxCore's seeded `SplitMix64`, so failures reproduce from the printed seed.
struct RouterRNG {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { int(100) < percent }
    mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
}

/// Random route configs and requests drawn to hit them.
struct RouterFuzz {
    var rng: RouterRNG
    /// Percent of routes without hosts, and of routes without a path. Large configs keep these
    /// low, or an early catch-all would answer every request.
    var anyHostPercent = 25
    var anyPathPercent = 10
    /// Numbered hosts and path segments, so that large configs have many distinct places.
    var wide = false

    static let hosts = ["a.com", "b.com", "x.a.com", "y.x.a.com", "api.b.com", "c.org", "a.com.evil", "xa.com", "", "caf\u{e9}.fr", "A.com"]
    static let suffixes = [".a.com", ".com", ".b.com", ".x.a.com", ".org", "a.com", ".", ""]
    /// Host regexes with hosts they match (the config compiler anchors host regexes).
    static let hostRegexes: [(String, Bool, [String])] = [
        ("^(?:[a-z]+\\.)?a\\.com\\z", false, ["a.com", "x.a.com", "q.a.com"]),
        ("^(?:api\\.)", false, ["api.b.com", "api.c.org"]),
        ("^(?:.*\\.org)\\z", false, ["c.org", "w.c.org"]),
        ("^(?:B\\.COM)\\z", true, ["b.com"]),
        ("^(?:([a-z])\\1\\.com)\\z", false, ["aa.com", "bb.com"]),
        ("^(?:(?<sub>[a-z]+)\\.b\\.com)\\z", false, ["api.b.com", "zz.b.com"]),
    ]
    static let segments = ["api", "v1", "v2", "users", "42", "7", "static", "app.js", "x.json", "a", "b", "", "caf\u{e9}", "API", "edit"]
    /// Path regexes with paths they match: anchored with literal prefixes, unanchored (matching
    /// in the middle), caseless, top-level alternations, unsafe ones (back references).
    static let pathRegexes: [(String, Bool, [String])] = [
        ("^/api/v1/users/[0-9]+$", false, ["/api/v1/users/42", "/api/v1/users/7"]),
        ("^/api/v1/", false, ["/api/v1/x", "/api/v1/users/42/edit"]),
        ("^/api/v[0-9]+/users", false, ["/api/v2/users", "/api/v1/users/7"]),
        ("/users/[0-9]+", false, ["/api/v1/users/42", "/x/users/7/edit"]),
        ("\\.json$", false, ["/x.json", "/api/x.json"]),
        ("v1", false, ["/api/v1", "/v1/a"]),
        ("/v[0-9]/", false, ["/api/v1/x", "/v2/"]),
        ("^/API", true, ["/api", "/Api/v1"]),
        ("^/(a)/\\1", false, ["/a/a", "/a/a/b"]),
        ("(?<id>[0-9]+)$", false, ["/users/42", "/7"]),
        ("^/static/|^/assets/", false, ["/static/app.js", "/assets/x"]),
        ("(?i)/STATIC", false, ["/static/app.js", "/x/Static"]),
        ("^/static/[^/]+\\.js$", false, ["/static/app.js"]),
        ("^/caf\u{e9}", false, ["/caf\u{e9}/x"]),
        ("^/$", false, ["/"]),
        ("^/a", false, ["/a", "/a/b", "/ab"]),
        ("^/", false, ["/", "/x", "/a/b"]),
        ("\\A/v1", false, ["/v1", "/v1/a", "/v10"]),
        ("^/a\\.b", false, ["/a.b", "/a.b/c"]),
        ("^/a/b", false, ["/a/b", "/a/b/c"]),
        ("^/a/c", false, ["/a/c"]),
        ("b$", false, ["/a/b", "/b"]),
        ("(a)\\1|x", false, ["/aa", "/x"]),
        ("\\Kz|^/z", false, ["/z"]),
        ("^/ab?c", false, ["/ac", "/abc"]),
        ("^/a/x*y", false, ["/a/y", "/a/xxy"]),
        ("^/a\\/b\\.c", false, ["/a/b.c"]),
        ("^\\Q/a\\E", false, ["/a/b", "/a"]),
    ]
    static let methods: [HTTPMethod] = [.get, .post, .put, .delete, .head, .other("PURGE")]
    static let headerNames = ["X-Env", "X-Tenant"]
    static let queryNames = ["debug", "v"]
    static let cookieNames = ["session", "beta"]
    static let values = ["prod", "dev", "1", "", "p1"]
    static let listeners = [0, 1, 2, 70]

    mutating func randomPath() -> String {
        let n = rng.int(4)
        var p = wide && rng.chance(80) ? "/r\(rng.int(60))" : ""
        for _ in 0...n { p += "/" + rng.pick(RouterFuzz.segments) }
        if rng.chance(10) { p += "/" }
        return p
    }

    mutating func valueTest() -> ValueTest {
        switch rng.int(5) {
        case 0: return .present
        case 1: return .absent
        case 2, 3: return .exact(rng.pick(RouterFuzz.values))
        default: return .regex(try! Regex(rng.pick(["^p", "^[0-9]+$", "e"])))
        }
    }

    mutating func spec(routeCount: Int) -> RouteMatchSpec {
        var s = RouteMatchSpec()
        if !rng.chance(anyHostPercent) {
            for _ in 0...rng.int(2) where rng.chance(85) || s.hosts.isEmpty {
                switch rng.int(10) {
                case 0...4: s.hosts.append(.exact(wide && rng.chance(70) ? "h\(rng.int(20)).a.com" : rng.pick(RouterFuzz.hosts)))
                case 5...7: s.hosts.append(.wildcard(suffix: rng.pick(RouterFuzz.suffixes)))
                default:
                    let (p, ci, _) = rng.pick(RouterFuzz.hostRegexes)
                    s.hosts.append(.regex(try! Regex(p, caseless: ci)))
                }
            }
        }
        switch rng.chance(anyPathPercent) ? 0 : 1 + rng.int(9) {
        case 0: s.path = nil
        case 1, 2: s.path = .exact(randomPath())
        case 3, 4, 5:
            // Prefixes cut anywhere, so that they overlap each other and the exact paths.
            let p = Array(randomPath().utf8)
            let cut = wide ? min(p.count, 4 + rng.int(p.count + 1)) : rng.int(p.count + 1)
            s.path = .prefix(String(decoding: p[..<cut], as: UTF8.self))
        default:
            let (p, ci, _) = rng.pick(RouterFuzz.pathRegexes)
            s.path = .regex(try! Regex(p, caseless: ci))
        }
        if rng.chance(30) {
            var m = Set<HTTPMethod>()
            for _ in 0...rng.int(3) { m.insert(rng.pick(RouterFuzz.methods)) }
            s.methods = m
        }
        if rng.chance(30) {
            for _ in 0...rng.int(2) {
                switch rng.int(3) {
                case 0: s.predicates.append(ValuePredicate(.header(HeaderName(rng.pick(RouterFuzz.headerNames))), valueTest()))
                case 1: s.predicates.append(ValuePredicate(.query(rng.pick(RouterFuzz.queryNames)), valueTest()))
                default: s.predicates.append(ValuePredicate(.cookie(rng.pick(RouterFuzz.cookieNames)), valueTest()))
                }
            }
        }
        if rng.chance(15) {
            var l = Set<Int>()
            for _ in 0...rng.int(2) { l.insert(rng.pick(RouterFuzz.listeners)) }
            s.listeners = l
        }
        return s
    }

    /// A host that the pattern matches (mostly).
    mutating func host(for h: HostPattern) -> String {
        switch h {
        case .exact(let s): return s
        case .wildcard(let s): return rng.pick(["q", "x.y", "a", ""]) + s
        case .regex(let r):
            for (p, _, samples) in RouterFuzz.hostRegexes where p == r.pattern { return rng.pick(samples) }
            return rng.pick(RouterFuzz.hosts)
        }
    }

    mutating func path(for p: PathPattern?) -> String {
        switch p {
        case nil: return randomPath()
        case .exact(let s)?: return s
        case .prefix(let s)?: return s + (rng.chance(50) ? "" : rng.pick(["/", "x", "/users/42", ".json", "/v1/a"]))
        case .regex(let r)?:
            for (pat, _, samples) in RouterFuzz.pathRegexes where pat == r.pattern { return rng.pick(samples) }
            return randomPath()
        }
    }

    /// A request aimed at `target` (a random route) or at nothing in particular.
    mutating func request(aimingAt target: RouteMatchSpec?) -> (RequestHead, Int) {
        var host = rng.pick(RouterFuzz.hosts)
        var path = randomPath()
        if let t = target {
            if !t.hosts.isEmpty && rng.chance(85) { host = self.host(for: rng.pick(t.hosts)) }
            if rng.chance(85) { path = self.path(for: t.path) }
        }
        var method = rng.pick(RouterFuzz.methods)
        // Sets iterate in a per-process order: sort before picking, so a seed reproduces.
        if let ms = target?.methods, rng.chance(70) { method = rng.pick(ms.sorted { $0.description < $1.description }) }
        var headers: [(String, String)] = [("Host", host + (rng.chance(10) ? ":8080" : ""))]
        var query: [String] = []
        var cookies: [String] = []
        for p in target?.predicates ?? [] where rng.chance(70) {
            let v: String
            switch p.test {
            case .present, .absent: v = rng.pick(RouterFuzz.values)
            case .exact(let s): v = s
            case .regex: v = rng.pick(["prod", "42", "dev"])
            }
            if case .absent = p.test, rng.chance(70) { continue }
            switch p.source {
            case .header(let n): headers.append((n.name, v))
            case .query(let n): query.append(n + "=" + v)
            case .cookie(let n): cookies.append(n + "=" + v)
            }
        }
        if rng.chance(15) { headers.append((rng.pick(RouterFuzz.headerNames), rng.pick(RouterFuzz.values))) }
        if rng.chance(10) { query.append(rng.pick(RouterFuzz.queryNames) + "=" + rng.pick(RouterFuzz.values)) }
        if !cookies.isEmpty { headers.append(("Cookie", cookies.joined(separator: "; "))) }
        var listener = rng.pick(RouterFuzz.listeners + [3])
        if let ls = target?.listeners, rng.chance(70) { listener = rng.pick(ls.sorted()) }
        let targetString = path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        return (RequestHead.make(method: method, target: targetString, headers: headers), listener)
    }
}

@Suite struct RouterPropertyTests {
    /// Compares the compiled router with the in-order reference on random configs.
    func run(seed: UInt64, configs: Int, routes: ClosedRange<Int>, requests: Int, sparse: Bool = false) throws -> Int {
        var fuzz = RouterFuzz(rng: RouterRNG(seed: seed))
        if sparse {
            fuzz.anyHostPercent = 1
            fuzz.anyPathPercent = 1
            fuzz.wide = true
        }
        var compared = 0
        var totalMatched = 0
        var winnerSum = 0.0
        for c in 0..<configs {
            let n = routes.lowerBound + fuzz.rng.int(routes.count)
            var specs: [RouteMatchSpec] = []
            for _ in 0..<n { specs.append(fuzz.spec(routeCount: n)) }
            let compiled = try Router(specs)
            let reference = ReferenceRouter(specs)
            var matched = 0
            for q in 0..<requests {
                let aim = specs.isEmpty || fuzz.rng.chance(15) ? nil : specs[fuzz.rng.int(specs.count)]
                let (head, listener) = fuzz.request(aimingAt: aim)
                let want = reference.match(head, listener: listener)
                let got = compiled.match(head, listener: listener)
                if let w = want { matched += 1; winnerSum += Double(w.routeIndex) / Double(specs.count) }
                compared += 1
                if got != want {
                    let routesText = specs.enumerated().map { i, s in
                        "  \(i): hosts \(s.hosts) path \(s.path.map(\.description) ?? "-") methods \(s.methods.map { "\($0)" } ?? "-") "
                            + "predicates \(s.predicates.map(\.description)) listeners \(s.listeners.map { "\($0)" } ?? "-")"
                    }.joined(separator: "\n")
                    Issue.record("""
                        seed \(seed) config \(c) request \(q): compiled \(got.map { "\($0.routeIndex)" } ?? "nil"), reference \(want.map { "\($0.routeIndex)" } ?? "nil")
                        request: \(head.method) host '\(head.host)' target '\(head.target)' listener \(listener) headers \(head.fields)
                        routes:
                        \(routesText)
                        """)
                    return compared
                }
            }
            totalMatched += matched
        }
        print("router property: seed \(seed): \(totalMatched)/\(compared) requests matched a route, mean winner position \(winnerSum / Double(max(totalMatched, 1)))")
        // The generator must keep aiming well: most requests should match some route.
        #expect(totalMatched * 2 >= compared, "seed \(seed): only \(totalMatched)/\(compared) requests matched a route")
        return compared
    }

    @Test func smallConfigs() throws {
        let n = try run(seed: 1, configs: 400, routes: 1...12, requests: 25)
        #expect(n == 10_000)
    }

    @Test func mediumConfigs() throws {
        let n = try run(seed: 2, configs: 60, routes: 20...120, requests: 100, sparse: true)
        #expect(n == 6_000)
    }

    @Test func largeConfigs() throws {
        // Hundreds of routes per host: regex sets with many members, deep tries.
        let n = try run(seed: 3, configs: 4, routes: 800...1500, requests: 600, sparse: true)
        #expect(n == 2_400)
    }

    @Test(arguments: [11, 12, 13, 14] as [UInt64])
    func moreSeeds(seed: UInt64) throws {
        _ = try run(seed: seed, configs: 50, routes: 1...60, requests: 30)
    }
}
