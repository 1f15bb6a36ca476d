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
        The request is turned into the bytes a client would send and parsed by serve's own parser. \
        Nothing is invented: the method is sent as written (methods are case-sensitive), and Host \
        comes from the URL's authority or from -H; a bare path without -H Host gets serve's 400.

        Examples:
          prox dry-run --config configs/basic.yaml 'GET http://api.example.com/v1/users?id=7' -H 'X-Api-Version: v2' --cookie session=abc --client-ip 203.0.113.9
          prox dry-run --config configs/canary.yaml 'GET http://shop.example/' --random 0.95
          prox dry-run --config configs/tls.yaml 'GET https://api.example.net/v1/' --listener https --sni api.example.net
          printf 'GET / HTTP/1.0\\n\\n' | prox dry-run --raw -
        """
    )

    @Option(name: .shortAndLong, help: "Config file. Default: the embedded config.")
    var config: String?

    @Argument(help: "The request: 'METHOD URL', the URL absolute (http://host/path?query) or a path. Not with --raw.")
    var request: String?

    @Option(name: .customShort("H"), help: "A request header, 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(help: "A cookie, name=value (repeatable).")
    var cookie: [String] = []

    @Option(help: "The client's IP address.")
    var clientIP: String = "127.0.0.1"

    @Option(help: "The listener id the request arrives on (default: the first).")
    var listener: String?

    @Option(help: ArgumentHelp("On a TLS listener, the server name the ClientHello carries: shows which certificate the handshake would present (default: no SNI, the default certificate).", valueName: "NAME"))
    var sni: String?

    @Option(help: "Declare a request body of this many bytes (sets Content-Length). For a chunked body, give -H 'Transfer-Encoding: chunked'.")
    var bodyBytes: Int64?

    @Flag(name: .customLong("http1.0"), help: "Send the request as HTTP/1.0 (default HTTP/1.1).")
    var http10 = false

    @Flag(help: "Send an absolute URL as the request target (GET http://host/path HTTP/1.1), as a client talking to a proxy does, instead of origin-form (GET /path with Host: host). Host is still sent from the URL unless -H Host is given.")
    var absoluteForm = false

    @Option(help: ArgumentHelp("Read the whole request (head, and the body it declares) from FILE ('-': stdin) as raw HTTP/1.x bytes, instead of 'METHOD URL' and -H; the body goes through the route's request-body phase. CRLF line endings; a file with no CR at all is taken as LF-ended and each LF is sent as CRLF.", valueName: "FILE"))
    var raw: String?

    @Option(help: ArgumentHelp("Fix the random draw behind the traffic split and the endpoint pick: a decimal in [0, 1) (0.42) or an integer taken as the 64-bit draw. Without it those choices are illustrative.", valueName: "VALUE"))
    var random: String?

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
        var draw: UInt64? = nil
        if let r = random {
            guard let d = DryRun.parseRandom(r) else { throw ValidationError("--random '\(r)': expected a decimal in [0, 1) or an integer") }
            draw = d
        }
        var req: DryRunRequest
        if let path = raw {
            if request != nil { throw ValidationError("give the request either as 'METHOD URL' or with --raw, not both") }
            let data: Data
            if path == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: path) else {
                    FileHandle.standardError.write(Data("prox dry-run: cannot read \(path)\n".utf8))
                    throw ExitCode(2)
                }
                data = d
            }
            let converted = DryRunRequest.rawRequest([UInt8](data))
            if let note = converted.note { FileHandle.standardError.write(Data("prox dry-run: note: \(note)\n".utf8)) }
            req = DryRunRequest(method: "", url: "", clientIP: clientIP, listener: listener, raw: converted.bytes)
        } else {
            guard let request else { throw ValidationError("give the request: 'METHOD URL', or --raw FILE") }
            let (method, url) = DryRunRequest.parse(request)
            req = DryRunRequest(method: method, url: url, headers: headers, cookies: cookies, clientIP: clientIP,
                                listener: listener, bodyBytes: bodyBytes, versionMinor: http10 ? 0 : 1, absoluteForm: absoluteForm)
        }
        req.random = draw
        req.sni = sni
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
        var tls: DryRunResult.TLS?
        var considered: [DryRunResult.Considered]
        var route: String?
        var stages: [TraceEntry]
        var upstream: DryRunResult.Upstream?
        var local: DryRunResult.Local?
        var response_headers: [[String]]
        var notes: [String]
    }

    static func encode(_ r: DryRunResult) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let d = Doc(request: r.request, client: r.client, listener: r.listener, tls: r.tls, considered: r.considered, route: r.route,
                    stages: r.trace, upstream: r.upstream, local: r.local, response_headers: r.responseHeaders, notes: r.notes)
        return String(decoding: try e.encode(d), as: UTF8.self)
    }
}
