import ArgumentParser
import Foundation
import ProxConfig
import ProxCore
import ProxEngine

struct DryRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dry-run",
        abstract: "Show what serve would do with a request, stage by stage, without sending it.",
        discussion: """
        Example:
          prox dry-run --config configs/basic.yaml 'GET http://api.example.com/v1/users?id=7' \\
              -H 'X-Api-Version: v2' --cookie session=abc --client-ip 203.0.113.9
        """
    )

    @Option(name: .shortAndLong, help: "Config file. Default: the embedded config.")
    var config: String?

    @Argument(help: "The request: 'METHOD URL', the URL absolute (http://host/path?query) or a path.")
    var request: String

    @Option(name: .customShort("H"), help: "A request header, 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(help: "A cookie, name=value (repeatable).")
    var cookie: [String] = []

    @Option(help: "The client's IP address.")
    var clientIP: String = "127.0.0.1"

    @Option(help: "The listener id the request arrives on (default: the first).")
    var listener: String?

    @Option(help: "Declare a request body of this many bytes (sets Content-Length).")
    var bodyBytes: Int64?

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() throws {
        let snapshot = try loadSnapshot(config)
        var headers: [(String, String)] = []
        for h in header {
            guard let c = h.firstIndex(of: ":") else { throw ValidationError("-H '\(h)': expected 'Name: value'") }
            headers.append((String(h[..<c]).trimmingCharacters(in: .whitespaces), String(h[h.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
        }
        var cookies: [(String, String)] = []
        for c in cookie {
            guard let e = c.firstIndex(of: "=") else { throw ValidationError("--cookie '\(c)': expected name=value") }
            cookies.append((String(c[..<e]), String(c[c.index(after: e)...])))
        }
        let (method, url) = DryRunRequest.parse(request)
        let req = DryRunRequest(method: method, url: url, headers: headers, cookies: cookies, clientIP: clientIP,
                                listener: listener, bodyBytes: bodyBytes)
        let result: DryRunResult
        do {
            result = try DryRun.run(req, snapshot: snapshot)
        } catch {
            FileHandle.standardError.write(Data("prox dry-run: \(error)\n".utf8))
            throw ExitCode(1)
        }
        switch format {
        case .text: print(DryRun.text(result), terminator: "")
        case .json: print(try DryRunJSON.encode(result))
        }
    }
}

/// Loads a config for dry-run and check: diagnostics go to stderr, exit 1 (2 if unreadable).
func loadSnapshot(_ path: String?) throws -> Snapshot {
    switch SnapshotLoader(path: path).load(version: 1) {
    case .success(let s): return s
    case .failure(let f):
        FileHandle.standardError.write(Data((f.report + "\n").utf8))
        throw ExitCode(f.unreadable ? 2 : 1)
    }
}

enum DryRunJSON {
    struct Doc: Encodable {
        var request: String
        var client: String
        var listener: String
        var considered: [DryRunResult.Considered]
        var route: String?
        var stages: [TraceEntry]
        var upstream: DryRunResult.Upstream?
        var local: DryRunResult.Local?
        var response_headers: [[String]]
    }

    static func encode(_ r: DryRunResult) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let d = Doc(request: r.request, client: r.client, listener: r.listener, considered: r.considered, route: r.route,
                    stages: r.trace, upstream: r.upstream, local: r.local, response_headers: r.responseHeaders)
        return String(decoding: try e.encode(d), as: UTF8.self)
    }
}
