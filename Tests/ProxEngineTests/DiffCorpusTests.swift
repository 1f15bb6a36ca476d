import ProxCore
import ProxRegex
import ProxUpstream
import Testing
@testable import ProxEngine

/// The parts of `prox diff`'s behavioural half that need no config file: regex samples, the
/// corpus built from match specs, and the masking of generated ids.
@Suite struct DiffCorpusTests {
    /// Table: pattern -> a sample it must yield (each sample is also checked to match).
    static let samples: [(String, String)] = [
        ("^/api/v2/users/[0-9]+/", "/api/v2/users/0/"),
        ("^/r5/(?<id>[0-9]+)$", "/r5/0"),
        ("^/blog/[0-9]{4}/[0-9]{2}/(?<slug>[a-z0-9-]+)/?$", "/blog/0000/00/a/"),
        ("^/(?:img|css)/\\w+\\.png$", "/img/a.png"),
        ("^/files/[^/]+$", "/files/a"),
        ("^/q/\\Qa.b\\E$", "/q/a.b"),
        ("^/x(?=y)y$", "/xy"),
    ]

    @Test(arguments: samples)
    func regexSamples(_ pattern: String, _ expected: String) throws {
        let got = RegexSample.samples(pattern)
        #expect(got.contains(expected), "\(pattern): \(got)")
        let r = try Regex(pattern)
        #expect(r.matches(expected))
    }

    @Test func topLevelAlternativesEachGetASample() {
        #expect(RegexSample.samples("^/a$|^/b$") == ["/a", "/b"])
    }

    @Test func maskIDs() {
        #expect(BehaviourDiff.maskIDs("0123456789abcdef0123456789abcdef") == "<id>")
        #expect(BehaviourDiff.maskIDs("id=0123456789abcdef0123456789abcdef; x") == "id=<id>; x")
        #expect(BehaviourDiff.maskIDs("deadbeef") == "deadbeef")
    }

    @Test func splitBandsCoverBothTables() throws {
        let a = try #require(SplitTable(pools: [0, 1], names: ["stable", "canary"], weights: [90, 10]))
        let b = try #require(SplitTable(pools: [0, 1], names: ["stable", "canary"], weights: [75, 25]))
        let bands = BehaviourDiff.splitBands([a, b])
        #expect(bands.map(\.1) == ["0-0.75", "0.75-0.9", "0.9-1"])
        // Each band's draw lands inside it in both tables.
        #expect(bands.map { TrafficSplit.choose(a, draw: $0.0) } == [0, 0, 1])
        #expect(bands.map { TrafficSplit.choose(b, draw: $0.0) } == [0, 1, 1])
        #expect(BehaviourDiff.splitBands([nil, nil]).isEmpty)
    }
}
