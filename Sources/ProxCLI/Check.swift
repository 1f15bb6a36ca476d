import ArgumentParser
import Foundation
import ProxConfig
import ProxCore
import ProxEngine

/// A `prox check` file: requests with what must happen to them. Loaded with the config loader
/// and decoded with the config DSL, so a mistake is a diagnostic with file:line:col, its path,
/// and a did-you-mean for an unknown key (an expectation misspelt is an error, never skipped).
public struct CheckFile: ConfigObject {
    public var tests: [CheckCase] = []

    public init() {}
    public static let schemaName = "CheckFile"
    public static let doc = "A file of requests, each with what must happen to it."
    public static var fields: [ConfigField<Self>] {[
        .field("tests", \.tests, ConfigType.object(CheckCase.self).list(minItems: 1), required: true, doc: "The requests, in order."),
    ]}

    /// Loads `text` (YAML or JSON, as a config is) named `fileName` in diagnostics.
    public static func load(text: String, fileName: String) -> (CheckFile?, [Diagnostic]) {
        let (root, loadDiagnostics) = ConfigLoader.load(text: text, fileName: fileName)
        guard let root else { return (nil, loadDiagnostics.sortedByPosition()) }
        var decoder = ConfigDecoder()
        let file = decoder.decode(CheckFile.self, from: root)
        let all = (loadDiagnostics + decoder.diagnostics).sortedByPosition()
        return (all.hasErrors ? nil : file, all)
    }
}

/// Any scalar but null, as written (`random: 0.5`, `Content-Length: 10`).
var scalarText: ConfigType<String> { ConfigType<String>(
    docName: "string",
    schema: { _ in .object([("type", .array([.string("string"), .string("number"), .string("boolean")]))]) },
    decode: { node, d in
        guard let s = node.scalar, !node.isNull else {
            d.error(node, "expected a value, found \(node.kindDescription)")
            return nil
        }
        return s
    })
}

public struct CheckCase: ConfigObject {
    public var name: String?
    /// 'METHOD URL', as for dry-run.
    public var request = ""
    public var headers: [ConfigMapEntry<String>] = []
    public var cookies: [ConfigMapEntry<String>] = []
    public var client_ip: String?
    public var listener: String?
    /// A fixed draw for the traffic split and the endpoint pick, as `prox dry-run --random`.
    public var random: String?
    public var expect = Expectation()

    public init() {}
    public static let schemaName = "CheckCase"
    public static let doc = "One request and what must happen to it."
    public static var fields: [ConfigField<Self>] {[
        .field("name", \.name, .string, doc: "Shown in failures."),
        .field("request", \.request, .string(minLength: 1), required: true, doc: "'METHOD URL', as for `prox dry-run`."),
        .field("headers", \.headers, scalarText.map(), doc: "Request headers."),
        .field("cookies", \.cookies, scalarText.map(), doc: "Request cookies."),
        .field("client_ip", \.client_ip, .string, doc: "The client's address."),
        .field("listener", \.listener, .string, doc: "The listener id the request arrives on."),
        .field("random", \.random, scalarText, doc: "Fixes the random draw, as `dry-run --random`."),
        .field("expect", \.expect, .object(Expectation.self), required: true, doc: "What must happen."),
    ]}

    public struct Expectation: ConfigObject {
        /// The route that must be chosen: `.some(nil)` (written `route: ~`) means no route may match.
        public var route: RouteExpectation?
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
        /// their value.
        public var headers: [ConfigMapEntry<String>] = []
        public var headers_present: [String] = []
        public var headers_absent: [String] = []
        /// Headers the response must carry (local answers, or what the chain adds on the way
        /// back), with their value; `response_headers_present` when any value will do.
        public var response_headers: [ConfigMapEntry<String>] = []
        public var response_headers_present: [String] = []
        public var response_headers_absent: [String] = []

        public init() {}
        public static let schemaName = "CheckExpectation"
        public static let doc = "What must happen to the request; every key written is checked."
        public static var fields: [ConfigField<Self>] {[
            .field("route", \.route, RouteExpectation.type, doc: "The route id chosen; `~` (null): no route matches."),
            .field("status", \.status, .int(min: 100, max: 999), doc: "Status of a local answer."),
            .field("pool", \.pool, .string, doc: "The pool the request goes to."),
            .field("path", \.path, .string, doc: "The path sent upstream, after rewrites."),
            .field("target", \.target, .string, doc: "Path and query sent upstream."),
            .field("upstream_host", \.upstream_host, .string, doc: "The Host sent upstream."),
            .field("headers", \.headers, scalarText.map(), doc: "Headers, with their value, on the upstream request (or the local response)."),
            .field("headers_present", \.headers_present, ConfigType<String>.string.list(), doc: "Headers present there, any value."),
            .field("headers_absent", \.headers_absent, ConfigType<String>.string.list(), doc: "Headers absent there."),
            .field("response_headers", \.response_headers, scalarText.map(), doc: "Headers, with their value, on the response."),
            .field("response_headers_present", \.response_headers_present, ConfigType<String>.string.list(), doc: "Headers on the response, any value."),
            .field("response_headers_absent", \.response_headers_absent, ConfigType<String>.string.list(), doc: "Headers not on the response."),
        ]}

        public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
            if node.entries?.isEmpty == true { decoder.error(node, "expects nothing", hint: "write at least one expectation, e.g. `route: ID`") }
        }
    }

    /// `route: ID`, or `route: ~` for "no route matches".
    public enum RouteExpectation: Sendable, Equatable {
        case none
        case id(String)

        static var type: ConfigType<RouteExpectation> { ConfigType<RouteExpectation>(
            docName: "route id or null",
            schema: { _ in .object([("type", .array([.string("string"), .string("null")]))]) },
            decode: { node, d in
                if node.isNull { return RouteExpectation.none }
                return ConfigType<String>.string(minLength: 1).decode(node, &d).map { .id($0) }
            })
        }

        var text: String? { if case .id(let s) = self { return s }; return nil }
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
                                    headers: t.headers.map { ($0.key, $0.value) },
                                    cookies: t.cookies.map { ($0.key, $0.value) },
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
            if let route = e.route { expect("route", route.text, r.route) }
            if let s = e.status { expect("status", String(s), r.local.map { String($0.status) } ?? "proxied (no local status)") }
            if let p = e.pool { expect("pool", p, r.upstream?.pool) }
            if let p = e.path { expect("upstream path", p, r.upstream?.path) }
            if let p = e.target { expect("upstream target", p, r.upstream?.target) }
            let sent: [[String]] = r.upstream?.headers ?? r.local?.headers ?? []
            func value(_ hs: [[String]], _ name: String) -> String? {
                hs.first { $0[0].lowercased() == name.lowercased() }?[1]
            }
            if let h = e.upstream_host { expect("upstream Host", h, value(r.upstream?.headers ?? [], "host")) }
            for h in e.headers { expect("header \(h.key)", h.value, value(sent, h.key)) }
            for n in e.headers_present where value(sent, n) == nil { problems.append("header \(n): expected present, was absent") }
            for n in e.headers_absent {
                if let v = value(sent, n) { problems.append("header \(n): expected absent, was '\(v)'") }
            }
            for h in e.response_headers { expect("response header \(h.key)", h.value, value(r.responseHeaders, h.key)) }
            for n in e.response_headers_present where value(r.responseHeaders, n) == nil {
                problems.append("response header \(n): expected present, was absent")
            }
            for n in e.response_headers_absent {
                if let v = value(r.responseHeaders, n) { problems.append("response header \(n): expected absent, was '\(v)'") }
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
        commandName: "check",
        abstract: "Run a file of requests with expectations against a config; report route coverage.",
        discussion: "Exit 0 when every test passes, 1 when any expectation fails or coverage is below --min-coverage, 2 when the config or the tests file cannot be read or is invalid. See docs/CLI.md for the file format."
    )

    @Option(name: .shortAndLong, help: "Config file. Default: the embedded config.")
    var config: String?

    @Argument(help: "The tests file (YAML).")
    var tests: String

    @Option(help: "Fail when fewer than this percentage of routes are reached by some test.")
    var minCoverage: Double?

    func run() throws {
        // Exit 1 is kept for failing tests: input that cannot be used at all is 2.
        let snapshot: Snapshot
        do { snapshot = try loadSnapshot(config) } catch { throw ExitCode(2) }
        let text: String
        switch ConfigLoader.read(file: tests) {
        case .failure(let d):
            FileHandle.standardError.write(Data("\(d)\n".utf8))
            throw ExitCode(2)
        case .success(let t): text = t
        }
        let (loaded, diagnostics) = CheckFile.load(text: text, fileName: tests)
        if !diagnostics.isEmpty { FileHandle.standardError.write(Data((DiagnosticFormatter.text(diagnostics) + "\n").utf8)) }
        guard let file = loaded else {
            FileHandle.standardError.write(Data("\(diagnostics.errorCount) error(s) in \(tests); no test was run\n".utf8))
            throw ExitCode(2)
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
