import Foundation
import ProxConfig
import ProxCore
import ProxMain
import Testing
@testable import ProxEngine

/// Golden tests: for each config in configs/, the `prox dry-run` report of every request listed in
/// Tests/Golden/<name>.requests must equal Tests/Golden/<name>.dryrun. Regenerate after an
/// intended change with `PROX_UPDATE_GOLDEN=1 swift test --filter GoldenDryRun` and review the diff.
///
/// A request line: `METHOD URL`, then ` | `-separated extras: `Name: value` (a header),
/// `cookie k=v`, `client IP`, `listener ID`, `sni NAME`, `body N`, `random R`, `http1.0`, `absolute-form`. Lines starting with `#` are comments.
@Suite struct GoldenDryRunTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func parse(_ line: String) -> DryRunRequest {
        let parts = line.components(separatedBy: " | ")
        let (method, url) = DryRunRequest.parse(parts[0])
        var r = DryRunRequest(method: method, url: url)
        for p in parts.dropFirst() {
            if p.hasPrefix("cookie ") {
                let kv = p.dropFirst(7).split(separator: "=", maxSplits: 1)
                r.cookies.append((String(kv[0]), kv.count > 1 ? String(kv[1]) : ""))
            } else if p.hasPrefix("client ") {
                r.clientIP = String(p.dropFirst(7))
            } else if p.hasPrefix("listener ") {
                r.listener = String(p.dropFirst(9))
            } else if p.hasPrefix("sni ") {
                r.sni = String(p.dropFirst(4))
            } else if p.hasPrefix("random ") {
                r.random = DryRun.parseRandom(String(p.dropFirst(7)))
            } else if p == "http1.0" {
                r.versionMinor = 0
            } else if p == "absolute-form" {
                r.absoluteForm = true
            } else if p.hasPrefix("body ") {
                r.bodyBytes = Int64(p.dropFirst(5))
            } else if let c = p.firstIndex(of: ":") {
                r.headers.append((String(p[..<c]), String(p[p.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
            }
        }
        return r
    }

    /// Generated request ids differ per run: the golden files show a placeholder.
    static func normalize(_ s: String) -> String {
        s.replacingOccurrences(of: "[0-9a-f]{32}", with: "<request-id>", options: .regularExpression)
    }

    static func report(config: String) throws -> String {
        // Compiled under its repository-relative name, so the report is the same in any checkout.
        let text = try String(contentsOf: root.appendingPathComponent("configs/\(config).yaml"), encoding: .utf8)
        // Files it names (configs/tls/) are read relative to the checkout, whatever the current directory.
        let r = ConfigCompiler.compile(text: text, fileName: "configs/\(config).yaml", version: 1,
                                       filters: try ProxMain.shippedFilters(), workingDirectory: root.path)
        let snapshot = try #require(r.snapshot, "\(config).yaml does not compile: \(r.diagnostics)")
        let requests = try String(contentsOf: root.appendingPathComponent("Tests/Golden/\(config).requests"), encoding: .utf8)
        var out = ""
        for line in requests.split(separator: "\n") where !line.hasPrefix("#") && !line.trimmingCharacters(in: .whitespaces).isEmpty {
            out += "=== \(line)\n"
            do {
                out += DryRun.text(try DryRun.run(parse(String(line)), snapshot: snapshot))
            } catch {
                out += "error: \(error)\n"
            }
            out += "\n"
        }
        return normalize(out)
    }

    @Test(arguments: ["basic", "canary", "multi-host", "rewrite", "maintenance", "tenant", "ext-filter", "tls", "admin-split", "l4-sni", "upstream-tls"])
    func dryRunMatchesGolden(config: String) throws {
        let actual = try Self.report(config: config)
        let goldenURL = Self.root.appendingPathComponent("Tests/Golden/\(config).dryrun")
        if ProcessInfo.processInfo.environment["PROX_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: goldenURL, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: goldenURL, encoding: .utf8)
        if actual != golden {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let g = golden.split(separator: "\n", omittingEmptySubsequences: false)
            let i = (0..<min(a.count, g.count)).first { a[$0] != g[$0] } ?? min(a.count, g.count)
            Issue.record("configs/\(config).yaml: dry-run output differs from Tests/Golden/\(config).dryrun at line \(i + 1):\n  golden: \(i < g.count ? String(g[i]) : "<end>")\n  actual: \(i < a.count ? String(a[i]) : "<end>")\n(PROX_UPDATE_GOLDEN=1 swift test --filter GoldenDryRun regenerates)")
        }
    }
}
