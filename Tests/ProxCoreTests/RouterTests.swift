import Testing
import ProxCore
import ProxRegex

/// Tricky cases for the compiled router, each checked against the reference matcher too.
@Suite struct RouterTests {
    func head(_ method: HTTPMethod, _ host: String, _ target: String, _ headers: [(String, String)] = []) -> RequestHead {
        RequestHead.make(method: method, target: target, headers: [("Host", host)] + headers)
    }

    func head(_ host: String, _ target: String, _ headers: [(String, String)] = []) -> RequestHead {
        head(.get, host, target, headers)
    }

    /// Routes `head` with both routers and checks they agree; returns the compiled answer.
    func route(_ specs: [RouteMatchSpec], _ h: RequestHead, listener: Int = 0,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> Int? {
        let got = try Router(specs).match(h, listener: listener)?.routeIndex
        let want = ReferenceRouter(specs).match(h, listener: listener)?.routeIndex
        #expect(got == want, "compiled \(String(describing: got)) reference \(String(describing: want))", sourceLocation: sourceLocation)
        return got
    }

    func re(_ p: String, caseless: Bool = false) -> Regex { try! Regex(p, caseless: caseless) }

    @Test func emptyConfigMatchesNothing() throws {
        #expect(try route([], head("a.com", "/")) == nil)
    }

    @Test func overlappingPrefixesAndExact() throws {
        let specs = [
            RouteMatchSpec(path: .prefix("/api/v1/"), methods: [.post]),
            RouteMatchSpec(path: .exact("/api/v1/users")),
            RouteMatchSpec(path: .prefix("/api/")),
            RouteMatchSpec(path: .prefix("/api/v1/users")),
            RouteMatchSpec(path: .prefix("")),
        ]
        #expect(try route(specs, head(.post, "a.com", "/api/v1/users")) == 0)
        #expect(try route(specs, head("a.com", "/api/v1/users")) == 1)
        #expect(try route(specs, head("a.com", "/api/v1/users/7")) == 2)
        #expect(try route(specs, head("a.com", "/api")) == 4)
        #expect(try route(specs, head("a.com", "/ap")) == 4)
        #expect(try route(specs, head("a.com", "")) == 4)
    }

    @Test func exactPathIsNotAPrefix() throws {
        let specs = [RouteMatchSpec(path: .exact("/a/b")), RouteMatchSpec(path: .exact("/a"))]
        #expect(try route(specs, head("h", "/a/b")) == 0)
        #expect(try route(specs, head("h", "/a")) == 1)
        #expect(try route(specs, head("h", "/a/")) == nil)
        #expect(try route(specs, head("h", "/a/b?x=1")) == 0)
    }

    @Test func lowestRegexRouteWinsNotLeftmostMatch() throws {
        // "z$" matches at the end of the path, "^/a" at its start: route 0 must still win.
        let specs = [
            RouteMatchSpec(path: .regex(re("z$"))),
            RouteMatchSpec(path: .regex(re("^/a"))),
            RouteMatchSpec(path: .regex(re("/b"))),
            RouteMatchSpec(path: .regex(re("q"))),
        ]
        #expect(try route(specs, head("h", "/abz")) == 0)
        #expect(try route(specs, head("h", "/ab")) == 1)
        #expect(try route(specs, head("h", "/x/bq")) == 2)
        #expect(try route(specs, head("h", "/xq")) == 3)
    }

    @Test func regexMatchesInTheMiddle() throws {
        let specs = [RouteMatchSpec(path: .regex(re("/users/[0-9]+/"))), RouteMatchSpec(path: .regex(re("v[0-9]")))]
        #expect(try route(specs, head("h", "/api/v1/users/42/edit")) == 0)
        #expect(try route(specs, head("h", "/api/v1/users/x/edit")) == 1)
    }

    @Test func failedPredicatesMoveOnToTheNextRegexRoute() throws {
        // Enough regexes under one place to be matched as a set.
        let specs = [
            RouteMatchSpec(path: .regex(re("^/api/")), predicates: [ValuePredicate(.header(HeaderName("X-Env")), .exact("prod"))]),
            RouteMatchSpec(path: .regex(re("^/api/v1")), methods: [.delete]),
            RouteMatchSpec(path: .regex(re("users")), predicates: [ValuePredicate(.query("debug"), .present)]),
            RouteMatchSpec(path: .regex(re("^/api/v1/users$")), predicates: [ValuePredicate(.cookie("beta"), .regex(re("^1")))]),
            RouteMatchSpec(path: .regex(re("^/api"))),
        ]
        #expect(try route(specs, head("h", "/api/v1/users", [("X-Env", "prod")])) == 0)
        #expect(try route(specs, head(.delete, "h", "/api/v1/users")) == 1)
        #expect(try route(specs, head("h", "/api/v1/users?debug")) == 2)
        #expect(try route(specs, head("h", "/api/v1/users", [("Cookie", "a=b; beta=1x")])) == 3)
        #expect(try route(specs, head("h", "/api/v1/users", [("Cookie", "beta=0")])) == 4)
    }

    @Test func wildcardHostsAreStrict() throws {
        let specs = [
            RouteMatchSpec(hosts: [.wildcard(suffix: ".example.com")], path: .prefix("/")),
            RouteMatchSpec(hosts: [.exact("example.com")]),
        ]
        #expect(try route(specs, head("a.example.com", "/x")) == 0)
        #expect(try route(specs, head("a.b.example.com", "/x")) == 0)
        #expect(try route(specs, head("A.Example.COM:8443", "/x")) == 0)
        #expect(try route(specs, head("example.com", "/x")) == 1)
        #expect(try route(specs, head("xexample.com", "/x")) == nil)
        #expect(try route(specs, head(".example.com", "/x")) == nil)
        #expect(try route(specs, head("a.example.com.", "/x")) == 0)
    }

    @Test func wildcardWithoutLeadingDot() throws {
        let specs = [
            RouteMatchSpec(hosts: [.wildcard(suffix: "ample.com")]),
            RouteMatchSpec(hosts: [.wildcard(suffix: "")]),
            RouteMatchSpec(),
        ]
        #expect(try route(specs, head("example.com", "/")) == 0)
        #expect(try route(specs, head("ample.com", "/")) == 1)
        #expect(try route(specs, head("", "/")) == 2)
    }

    @Test func hostKindsCompeteInConfigOrder() throws {
        let specs = [
            RouteMatchSpec(path: .exact("/only-any")),
            RouteMatchSpec(hosts: [.regex(re("^(?:[a-z]+)\\.a\\.com\\z"))], path: .prefix("/r")),
            RouteMatchSpec(hosts: [.wildcard(suffix: ".a.com")], path: .prefix("/w")),
            RouteMatchSpec(hosts: [.exact("x.a.com")], path: .prefix("/")),
            RouteMatchSpec(hosts: [.wildcard(suffix: ".x.a.com"), .exact("b.com")]),
            RouteMatchSpec(),
        ]
        #expect(try route(specs, head("x.a.com", "/only-any")) == 0)
        #expect(try route(specs, head("x.a.com", "/rw")) == 1)
        #expect(try route(specs, head("y.x.a.com", "/rw")) == 4)
        #expect(try route(specs, head("y.x.a.com", "/w")) == 2)
        #expect(try route(specs, head("x.a.com", "/w")) == 2)
        #expect(try route(specs, head("x.a.com", "/z")) == 3)
        #expect(try route(specs, head("y.x.a.com", "/z")) == 4)
        #expect(try route(specs, head("b.com", "/z")) == 4)
        #expect(try route(specs, head("c.com", "/z")) == 5)
    }

    @Test func manyHostRegexes() throws {
        var specs: [RouteMatchSpec] = []
        for i in 0..<40 {
            specs.append(RouteMatchSpec(hosts: [.regex(re("^(?:t\(i)-[a-z]+\\.example\\.com)\\z"))], path: .prefix("/p\(i % 3)")))
        }
        specs.append(RouteMatchSpec(hosts: [.regex(re("^(?:.*\\.example\\.com)\\z"))]))
        #expect(try route(specs, head("t7-x.example.com", "/p1")) == 7)
        #expect(try route(specs, head("t7-x.example.com", "/p0")) == 40)
        #expect(try route(specs, head("t39-x.example.com", "/p0")) == 39)
        #expect(try route(specs, head("t40-x.example.com", "/p0")) == 40)
        #expect(try route(specs, head("t4-x.example.org", "/p1")) == nil)
    }

    @Test func listenersIncludingLargeIndices() throws {
        let specs = [
            RouteMatchSpec(path: .prefix("/"), listeners: [70]),
            RouteMatchSpec(path: .prefix("/"), listeners: [1, 2]),
            RouteMatchSpec(path: .prefix("/a")),
        ]
        #expect(try route(specs, head("h", "/a"), listener: 70) == 0)
        #expect(try route(specs, head("h", "/a"), listener: 2) == 1)
        #expect(try route(specs, head("h", "/a"), listener: 0) == 2)
        #expect(try route(specs, head("h", "/b"), listener: 71) == nil)
        #expect(try route(specs, head("h", "/a"), listener: -1) == 2)
        #expect(try route(specs, head("h", "/b"), listener: 63) == nil)
    }

    @Test func methodsIncludingUnknownOnes() throws {
        let specs = [
            RouteMatchSpec(path: .prefix("/"), methods: [.other("PURGE")]),
            RouteMatchSpec(path: .prefix("/"), methods: [.get, .head]),
            RouteMatchSpec(path: .prefix("/"), methods: [.other("BREW"), .post]),
        ]
        #expect(try route(specs, head(.other("PURGE"), "h", "/")) == 0)
        #expect(try route(specs, head(.head, "h", "/")) == 1)
        #expect(try route(specs, head(.other("BREW"), "h", "/")) == 2)
        #expect(try route(specs, head(.post, "h", "/")) == 2)
        #expect(try route(specs, head(.other("LINK"), "h", "/")) == nil)
        #expect(try route(specs, head(.put, "h", "/")) == nil)
    }

    @Test func nonASCIIPathsCompareBytes() throws {
        let specs = [
            RouteMatchSpec(path: .exact("/caf\u{e9}")),
            RouteMatchSpec(path: .prefix("/cafe")),
            RouteMatchSpec(path: .regex(re("^/caf\u{e9}/[a-z]+$"))),
            RouteMatchSpec(path: .regex(re("\u{e9}"))),
        ]
        #expect(try route(specs, head("h", "/caf\u{e9}")) == 0)
        // Decomposed "é": different bytes, so not the exact path; but "/cafe" is a byte prefix.
        #expect(try route(specs, head("h", "/cafe\u{301}")) == 1)
        #expect(try route(specs, head("h", "/caf\u{e9}/x")) == 2)
        #expect(try route(specs, head("h", "/x\u{e9}")) == 3)
    }

    @Test func invalidUTF8PathIsRoutedAsItsRepairedString() throws {
        let specs = [
            RouteMatchSpec(path: .exact("/a\u{FFFD}b")),
            RouteMatchSpec(path: .regex(re("^/a.b$"))),
            RouteMatchSpec(path: .prefix("/a")),
        ]
        var h = head("h", "/aXb")
        let at = h.fields.bytes.readerIndex + Int(h.targetStart) + 2
        h.fields.bytes.setBytes([0xFF] as [UInt8], at: at)
        #expect(h.path == "/a\u{FFFD}b")
        #expect(try route(specs, h) == 0)
        #expect(try route(Array(specs.dropFirst()), h) == 0)
    }

    @Test func unsafeRegexesAreMatchedAlone() throws {
        let specs = [
            RouteMatchSpec(path: .regex(re("^/(a+)/\\1$"))),
            RouteMatchSpec(path: .regex(re("(?|(x)|(y))z"))),
            RouteMatchSpec(path: .regex(re("^/k\\Kq"))),
            RouteMatchSpec(path: .regex(re("(?<n>[0-9])(?P=n)"))),
            RouteMatchSpec(path: .regex(re("^/"))),
        ]
        #expect(try route(specs, head("h", "/aa/aa")) == 0)
        #expect(try route(specs, head("h", "/aa/a")) == 4)
        #expect(try route(specs, head("h", "/yz")) == 1)
        #expect(try route(specs, head("h", "/kq")) == 2)
        #expect(try route(specs, head("h", "/77")) == 3)
    }

    @Test func literalPrefixFilingDoesNotHideMatches() throws {
        // Anchored regexes are filed under their literal prefix; a quantified last character is
        // not part of it.
        let specs = [
            RouteMatchSpec(path: .regex(re("^/ab?c"))),
            RouteMatchSpec(path: .regex(re("^/ab*"))),
            RouteMatchSpec(path: .regex(re("^/x\\.y+z"))),
            RouteMatchSpec(path: .regex(re("^/API", caseless: true))),
        ]
        #expect(try route(specs, head("h", "/ac")) == 0)
        #expect(try route(specs, head("h", "/a")) == 1)
        #expect(try route(specs, head("h", "/x.yyz")) == 2)
        #expect(try route(specs, head("h", "/api")) == 1) // "^/ab*" takes "/a"
        #expect(try route(specs, head("h", "/API")) == 3)
        #expect(try route(specs, head("h", "/x.z")) == nil)
    }

    @Test func lastOfTenThousandRoutes() throws {
        var specs: [RouteMatchSpec] = []
        for i in 0..<10_000 {
            switch i % 10 {
            case 0: specs.append(RouteMatchSpec(hosts: [.exact("h\(i % 7).com")], path: .regex(re("^/r\(i)/[0-9]+$"))))
            case 1: specs.append(RouteMatchSpec(hosts: [.wildcard(suffix: ".w\(i % 5).com")], path: .prefix("/p\(i)/")))
            default: specs.append(RouteMatchSpec(hosts: [.exact("h\(i % 7).com")], path: .exact("/e\(i)")))
            }
        }
        let router = try Router(specs)
        #expect(router.match(head("h\(9999 % 7).com", "/e9999"), listener: 0)?.routeIndex == 9999)
        #expect(router.match(head("h\(9990 % 7).com", "/r9990/12"), listener: 0)?.routeIndex == 9990)
        #expect(router.match(head("a.w\(9991 % 5).com", "/p9991/x"), listener: 0)?.routeIndex == 9991)
        #expect(router.match(head("h0.com", "/nothing"), listener: 0) == nil)
    }
}

@Suite struct RouterConcurrencyTests {
    @Test func oneRouterManyThreads() async throws {
        var fuzz = RouterFuzz(rng: RouterRNG(seed: 99))
        fuzz.anyHostPercent = 2
        fuzz.anyPathPercent = 2
        fuzz.wide = true
        let specs = (0..<400).map { _ in fuzz.spec(routeCount: 400) }
        let router = try Router(specs)
        let reference = ReferenceRouter(specs)
        let requests = (0..<300).map { _ in fuzz.request(aimingAt: specs[fuzz.rng.int(specs.count)]) }
        let expected = requests.map { reference.match($0.0, listener: $0.1) }
        await withTaskGroup(of: Int.self) { group in
            for t in 0..<8 {
                group.addTask {
                    var mismatches = 0
                    for round in 0..<10 {
                        for (k, r) in requests.enumerated() where (k + t + round) % 2 == 0 {
                            if router.match(r.0, listener: r.1) != expected[k] { mismatches += 1 }
                        }
                    }
                    return mismatches
                }
            }
            for await m in group { #expect(m == 0) }
        }
    }
}
