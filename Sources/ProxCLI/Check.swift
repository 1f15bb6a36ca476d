import ArgumentParser
import Foundation
import ProxConfig
import ProxCore
import ProxEngine
import Yams

/// A `prox check` file: requests with what must happen to them.
public struct CheckFile: Decodable {
    public var tests: [CheckCase]
}

public struct CheckCase: Decodable {
    public var name: String?
    /// 'METHOD URL', as for dry-run.
    public var request: String
    public var headers: [String: String]?
    public var cookies: [String: String]?
    public var client_ip: String?
    public var listener: String?
    /// A fixed draw for the traffic split and the endpoint pick, as `prox dry-run --random`.
    public var random: String?
    public var expect: Expectation

    public struct Expectation: Decodable {
        /// The route id that must be chosen; `null` (~) means no route must match.
        public var route: String??
        /// Status of a local answer (respond, redirect, or a stage's refusal).
        public var status: Int?
        /// The pool the request must go to.
        public var pool: String?
        /// The path sent upstream (after rewrites).
        public var path: String?
        /// The target (path and query) sent upstream.
        public var target: String?
        /// The Host sent upstream.
        public var upstream_host: String?
        /// Headers that must be present on the upstream request (or the local response), with
        /// their value when given.
        public var headers: [String: String]?
        public var headers_present: [String]?
        public var headers_absent: [String]?
        /// Headers the response must carry (local answers, or what the chain adds on the way back).
        public var response_headers: [String: String]?
    }
}

/// The outcome of running a check file.
public struct CheckReport {
    public var failures: [String] = []
    public var passed = 0
    public var reachedRoutes: Set<String> = []
    public var allRoutes: [String] = []
    public var coverage: Double {
        allRoutes.isEmpty ? 100 : Double(allRoutes.filter { reachedRoutes.contains($0) }.count) * 100 / Double(allRoutes.count)
    }

    public var text: String {
        var o = ""
        for f in failures { o += f + "\n" }
        o += "\(passed) passed, \(failures.count) failed\n"
        let missed = allRoutes.filter { !reachedRoutes.contains($0) }
        o += "route coverage: \(allRoutes.count - missed.count)/\(allRoutes.count) (\(String(format: "%.1f", coverage))%)\n"
        if !missed.isEmpty { o += "routes no test reached: \(missed.joined(separator: ", "))\n" }
        return o
    }
}

public enum CheckRunner {
    public static func run(_ file: CheckFile, snapshot: Snapshot) -> CheckReport {
        var report = CheckReport()
        report.allRoutes = snapshot.routes.map(\.id)
        for (i, t) in file.tests.enumerated() {
            let label = "test \(i + 1)" + (t.name.map { " (\($0))" } ?? "") + ": \(t.request)"
            let (method, url) = DryRunRequest.parse(t.request)
            let req = DryRunRequest(method: method, url: url,
                                    headers: (t.headers ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                    cookies: (t.cookies ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                    clientIP: t.client_ip ?? "127.0.0.1", listener: t.listener,
                                    random: t.random.flatMap(DryRun.parseRandom))
            if let v = t.random, DryRun.parseRandom(v) == nil {
                report.failures.append("FAIL \(label)\n  random '\(v)': expected a decimal in [0, 1) or an integer")
                continue
            }
            let r: DryRunResult
            do { r = try DryRun.run(req, snapshot: snapshot) } catch {
                report.failures.append("FAIL \(label)\n  the request is invalid: \(error)")
                continue
            }
            if let route = r.route { report.reachedRoutes.insert(route) }
            var problems: [String] = []
            func expect(_ what: String, _ expected: String?, _ actual: String?) {
                if expected != actual { problems.append("\(what): expected \(expected ?? "none"), got \(actual ?? "none")") }
            }
            let e = t.expect
            if let route = e.route { expect("route", route, r.route) }
            if let s = e.status { expect("status", String(s), r.local.map { String($0.status) } ?? "proxied (no local status)") }
            if let p = e.pool { expect("pool", p, r.upstream?.pool) }
            if let p = e.path { expect("upstream path", p, r.upstream?.path) }
            if let p = e.target { expect("upstream target", p, r.upstream?.target) }
            let sent: [[String]] = r.upstream?.headers ?? r.local?.headers ?? []
            func value(_ hs: [[String]], _ name: String) -> String? {
                hs.first { $0[0].lowercased() == name.lowercased() }?[1]
            }
            if let h = e.upstream_host { expect("upstream Host", h, value(r.upstream?.headers ?? [], "host")) }
            for (n, v) in (e.headers ?? [:]).sorted(by: { $0.key < $1.key }) { expect("header \(n)", v, value(sent, n)) }
            for n in e.headers_present ?? [] where value(sent, n) == nil { problems.append("header \(n): expected present, was absent") }
            for n in e.headers_absent ?? [] {
                if let v = value(sent, n) { problems.append("header \(n): expected absent, was '\(v)'") }
            }
            for (n, v) in (e.response_headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                expect("response header \(n)", v, value(r.responseHeaders, n))
            }
            if problems.isEmpty {
                report.passed += 1
            } else {
                report.failures.append("FAIL \(label)\n" + problems.map { "  " + $0 }.joined(separator: "\n"))
            }
        }
        return report
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a file of requests with expectations against a config; report route coverage.",
        discussion: "Exit 1 when any expectation fails or coverage is below --min-coverage. See docs/CLI.md for the file format."
    )

    @Option(name: .shortAndLong, help: "Config file. Default: the embedded config.")
    var config: String?

    @Argument(help: "The tests file (YAML).")
    var tests: String

    @Option(help: "Fail when fewer than this percentage of routes are reached by some test.")
    var minCoverage: Double?

    func run() throws {
        let snapshot = try loadSnapshot(config)
        guard let text = try? String(contentsOfFile: tests, encoding: .utf8) else {
            FileHandle.standardError.write(Data("prox check: cannot read \(tests)\n".utf8))
            throw ExitCode(2)
        }
        let file: CheckFile
        do {
            file = try YAMLDecoder().decode(CheckFile.self, from: text)
        } catch {
            FileHandle.standardError.write(Data("\(tests): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let report = CheckRunner.run(file, snapshot: snapshot)
        print(report.text, terminator: "")
        if !report.failures.isEmpty { throw ExitCode(1) }
        if let m = minCoverage, report.coverage < m {
            print("coverage \(String(format: "%.1f", report.coverage))% is below --min-coverage \(m)%")
            throw ExitCode(1)
        }
    }
}
