import Foundation
import ProxConfig
import ProxCore
import Testing

/// `proxy: {split: ...}`: compiled into a cumulative-weight table; bad splits are positioned errors.
@Suite struct SplitConfigTests {
    static let pools = """
    version: 1
    listeners: [{id: m, address: ":80"}]
    pools:
      - {id: stable, endpoints: [10.0.0.1:80]}
      - {id: canary, endpoints: [10.0.0.2:80]}

    """

    @Test func compilesToACumulativeTable() throws {
        let s = try #require(valid(Self.pools + """
        routes:
          - id: r
            proxy:
              split:
                - {pool: stable, weight: 90}
                - {pool: canary, weight: 10}
        """))
        let t = try #require(s.routes[0].split)
        #expect(t.pools == [0, 1])
        #expect(t.names == ["stable", "canary"])
        #expect(t.upper == [90, 100])
        #expect(t.total == 100)
        #expect(s.routes[0].cache == nil)
    }

    @Test func plainProxyHasNoSplit() throws {
        let s = try #require(valid(Self.pools + "routes: [{id: r, match: {path: {prefix: /a/}}, proxy: stable}, {id: q, proxy: {pool: canary}}]\n"))
        #expect(s.routes[0].split == nil && s.routes[1].split == nil)
    }

    @Test func zeroWeightEntryIsKept() throws {
        let s = try #require(valid(Self.pools + """
        routes:
          - id: r
            proxy: {split: [{pool: stable, weight: 1}, {pool: canary, weight: 0}]}
        """))
        #expect(s.routes[0].split?.upper == [1, 1])
    }

    @Test func unknownPoolSuggests() {
        expectOne(Self.pools + """
        routes:
          - id: r
            proxy: {split: [{pool: stable, weight: 1}, {pool: canry, weight: 1}]}
        """, "8:55", "routes[0].proxy.split[1].pool", "canry", hint: "did you mean 'canary'?")
    }

    @Test func duplicatePool() {
        expectOne(Self.pools + """
        routes:
          - id: r
            proxy: {split: [{pool: stable, weight: 1}, {pool: stable, weight: 1}]}
        """, "8:55", "routes[0].proxy.split[1].pool", "already in the split")
    }

    @Test func weightsMustSumAboveZero() {
        expectOne(Self.pools + """
        routes:
          - id: r
            proxy: {split: [{pool: stable, weight: 0}, {pool: canary, weight: 0}]}
        """, "8:20", "routes[0].proxy.split", "sum to 0")
    }

    @Test func negativeWeight() {
        let r = compile(Self.pools + """
        routes:
          - id: r
            proxy: {split: [{pool: stable, weight: -1}, {pool: canary, weight: 1}]}
        """)
        #expect(r.snapshot == nil)
        #expect(r.diagnostics.contains { $0.path == "routes[0].proxy.split[0].weight" })
    }

    @Test func poolAndSplitAreExclusive() {
        let r = compile(Self.pools + """
        routes:
          - id: r
            proxy: {pool: stable, split: [{pool: canary, weight: 1}]}
        """)
        #expect(r.snapshot == nil)
        #expect(!r.diagnostics.isEmpty)
    }

    @Test func splitBesideProxyGetsAHint() {
        let r = compile(Self.pools + """
        routes:
          - id: r
            split: [{pool: canary, weight: 1}]
            proxy: stable
        """)
        #expect(r.diagnostics.contains { $0.hint?.contains("goes under `proxy:`") == true })
    }
}
