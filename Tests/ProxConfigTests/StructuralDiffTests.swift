import ProxCore
import Testing
@testable import ProxConfig

@Suite struct StructuralDiffTests {
    static func node(_ yaml: String, _ name: String) throws -> ConfigNode {
        try #require(ConfigLoader.load(text: yaml, fileName: name).node)
    }

    static func routes(_ ids: [String]) -> String {
        "routes:\n" + ids.map { "  - {id: \($0), respond: {status: 200}}\n" }.joined()
    }

    /// Moves are the routes outside a longest common subsequence of the two orders: moving one
    /// route far reports that one route, not every route it jumped over.
    @Test(arguments: [
        (["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"], [String]()),
        (["a", "b", "c", "d", "e"], ["e", "a", "b", "c", "d"], ["e"]),
        (["a", "b", "c", "d", "e"], ["a", "c", "b", "d", "e"], ["c"]),
        (["a", "b", "c"], ["c", "b", "a"], ["c", "b"]),
        (["a", "b", "c"], ["a", "x", "c"], [String]()),
    ])
    func moves(_ old: [String], _ new: [String], _ moved: [String]) throws {
        let changes = StructuralDiff.compare(old: try Self.node(Self.routes(old), "old.yaml"), new: try Self.node(Self.routes(new), "new.yaml"))
        #expect(changes.filter { $0.change == "moved" }.map(\.id) == moved)
    }

    @Test func addedRemovedChangedWithPositions() throws {
        let old = try Self.node("""
        pools:
          - {id: app, endpoints: [127.0.0.1:9001]}
          - {id: old, endpoints: [127.0.0.1:9002]}
        routes:
          - id: a
            match: {path: {prefix: /a/}}
            proxy: app
        """, "old.yaml")
        let new = try Self.node("""
        pools:
          - {id: app, endpoints: [127.0.0.1:9001, 127.0.0.1:9003]}
        routes:
          - id: a
            match: {path: {prefix: /b/}, methods: [GET]}
            proxy: app
        """, "new.yaml")
        let c = StructuralDiff.compare(old: old, new: new)
        #expect(c.map { "\($0.change) \($0.kind) \($0.id)" }.sorted() == ["changed pool app", "changed route a", "removed pool old"])
        let route = try #require(c.first { $0.kind == "route" })
        #expect(route.keys == ["match.path.prefix (/a/ -> /b/)", "match.methods (added)"])
        #expect(route.old == "old.yaml:5:5" && route.new == "new.yaml:4:5")
        #expect(c.first { $0.kind == "pool" && $0.id == "app" }?.keys == ["endpoints (1 -> 2 items)"])
    }
}
