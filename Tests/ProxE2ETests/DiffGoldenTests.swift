import Foundation
import ProxCLI
import ProxConfig
import ProxMain
import Testing

/// Golden tests for `prox diff`: each folder of Tests/Golden/diff holds `old.yaml`, `new.yaml`
/// and the expected text report `expected.txt` (and, where present, `expected.json`).
/// Regenerate after an intended change with `PROX_UPDATE_GOLDEN=1 swift test --filter DiffGolden`
/// and review the diff.
@Suite struct DiffGoldenTests {
    static let root = GoldenDryRunTests.root
    static let dir = root.appendingPathComponent("Tests/Golden/diff")
    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    static func report(_ name: String) throws -> ConfigDiffReport {
        func input(_ side: String) throws -> ConfigDiff.Input {
            let rel = "Tests/Golden/diff/\(name)/\(side).yaml"
            return .init(name: rel, text: try String(contentsOf: root.appendingPathComponent(rel), encoding: .utf8))
        }
        return try ConfigDiff.run(old: try input("old"), new: try input("new"), filters: try ProxMain.shippedFilters(),
                                  workingDirectory: root.path)
    }

    static func check(_ actual: String, against file: URL) throws {
        if ProcessInfo.processInfo.environment["PROX_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(actual == expected, "\(file.path) differs; regenerate with PROX_UPDATE_GOLDEN=1 and review")
    }

    @Test(arguments: cases)
    func golden(_ name: String) throws {
        let r = try Self.report(name)
        try Self.check(ConfigDiff.text(r), against: Self.dir.appendingPathComponent("\(name)/expected.txt"))
        let json = Self.dir.appendingPathComponent("\(name)/expected.json")
        if FileManager.default.fileExists(atPath: json.path) || name == "canary-weights" {
            try Self.check(try ConfigDiff.json(r) + "\n", against: json)
        }
    }

    @Test func casesExist() {
        #expect(Self.cases.count >= 5)
    }

    /// The case the issue names: a route inserted before another takes some of its requests.
    @Test func insertedRouteShadowsPartOfAnother() throws {
        let r = try Self.report("shadow")
        let moved = try #require(r.behaviour.groups.first { $0.what.contains("`uploads` to route `uploads-paused`") })
        #expect(moved.examples.allSatisfy { $0.request.hasPrefix("POST ") })
        #expect(r.structure.map(\.change) == ["added"])
        #expect(r.hasBehaviouralChanges)
    }

    @Test func cosmeticEditsChangeNothing() throws {
        let r = try Self.report("cosmetic")
        #expect(r.structure.isEmpty)
        #expect(!r.hasBehaviouralChanges)
    }

    @Test func splitBandsAreExact() throws {
        // 90/10 -> 75/25: exactly the draws in [0.75, 0.9) move from stable to canary.
        let r = try Self.report("canary-weights")
        #expect(r.behaviour.groups.count == 1)
        let g = try #require(r.behaviour.groups.first)
        #expect(g.what == "on route `shop`: pool stable -> canary")
        #expect(g.examples.allSatisfy { $0.draws == "0.75-0.9" })
    }

    @Test func reorderIsReportedAsAMove() throws {
        let r = try Self.report("reorder")
        #expect(r.structure.map(\.change) == ["moved"])
        #expect(r.structure.first?.id == "api-v2")
        #expect(r.behaviour.groups.first?.what == "move from route `api-v2-users` to route `api-v2`")
    }
}

extension DiffGoldenTests {
    /// docs/CLI.md shows the `shadow` case's report: it must be the real one.
    @Test func cliDocShowsTheRealReport() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/CLI.md"), encoding: .utf8)
        let expected = try String(contentsOf: Self.dir.appendingPathComponent("shadow/expected.txt"), encoding: .utf8)
        #expect(doc.contains("```\n" + expected + "```"), "docs/CLI.md's prox diff example differs from Tests/Golden/diff/shadow/expected.txt")
    }
}
