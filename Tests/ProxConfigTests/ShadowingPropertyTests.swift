import ProxCore
import ProxRegex
import Testing
@testable import ProxConfig

/// The indexed shadowed-route check finds, for every route, the same earlier covering route as
/// comparing every pair does, on random configs built to overlap (few hosts and path pieces).
@Suite struct ShadowingPropertyTests {
    struct RNG {
        var g: SplitMix64
        mutating func int(_ n: Int) -> Int { Int(g.next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { int(100) < percent }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
    }

    static let hosts = ["a.com", "b.com", "x.a.com", "c.org"]
    static let suffixes = [".a.com", ".com", ".org"]
    static let hostRegexes = ["^(?:[a-z]+\\.)?a\\.com\\z", "^(?:.*\\.org)\\z"]
    static let paths = ["/", "/a", "/a/", "/a/b", "/a/bc", "/b", "/b/c", "/ab", ""]
    static let pathRegexes = ["^/a/[a-z]+$", "^/a", "^/b/(?<x>[a-z])", "/b", "a|b", "^/(?i)a", "^/a/bc$", "^/ab?"]

    static func spec(_ r: inout RNG) throws -> RouteMatchSpec {
        var s = RouteMatchSpec()
        if r.chance(70) {
            for _ in 0..<(1 + r.int(2)) {
                switch r.int(6) {
                case 0: s.hosts.append(.wildcard(suffix: r.pick(suffixes)))
                case 1: s.hosts.append(.regex(try Regex(r.pick(hostRegexes))))
                default: s.hosts.append(.exact(r.pick(hosts)))
                }
            }
        }
        switch r.int(8) {
        case 0: s.path = nil
        case 1, 2, 3: s.path = .exact(r.pick(paths))
        case 4, 5: s.path = .prefix(r.pick(paths))
        default: s.path = .regex(try Regex(r.pick(pathRegexes)))
        }
        if r.chance(25) { s.methods = r.chance(50) ? [.get] : [.get, .head] }
        if r.chance(20) {
            let tests: [ValueTest] = [.present, .absent, .exact("1"), .regex(try Regex("^1"))]
            s.predicates.append(ValuePredicate(.header(HeaderName("X-A")), r.pick(tests)))
        }
        if r.chance(15) { s.listeners = r.chance(50) ? [0] : [0, 1] }
        return s
    }

    @Test func indexedCheckAgreesWithComparingEveryPair() throws {
        var shadowedTotal = 0
        for seed in UInt64(1)...300 {
            var r = RNG(g: SplitMix64(seed: seed))
            let specs = try (0..<(5 + r.int(60))).map { _ in try Self.spec(&r) }
            let fast = Shadowing.coveringRoutes(specs)
            let naive = Shadowing.coveringRoutesNaive(specs)
            #expect(fast == naive, "seed \(seed)")
            shadowedTotal += naive.compactMap { $0 }.count
        }
        #expect(shadowedTotal > 500, "the configs overlap enough to test something: \(shadowedTotal)")
    }
}
