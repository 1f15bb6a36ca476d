import ArgumentParser
import Dispatch
import Foundation
import ProxConfig
import ProxCore
import ProxEngine

/// `prox diff OLD NEW`: what changed between two configs, in structure and in behaviour.
public struct ConfigDiffReport: Sendable, Codable {
    public var old: String
    public var new: String
    public var structure: [StructuralDiff.Change]
    public var behaviour: BehaviourDiff.Report
    /// Where the corpus came from: derived requests per side, and given ones.
    public var corpus: [String: Int]

    public var hasBehaviouralChanges: Bool { behaviour.changed > 0 }
}

public enum ConfigDiff {
    public enum Failure: Error {
        /// Diagnostics to print; `unreadable` when a file could not be read at all.
        case invalid(String, unreadable: Bool)
    }

    public struct Input: Sendable {
        public var name: String
        public var text: String
        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    /// Compares two configs held in memory. `extra` are requests the user gave (check files,
    /// access logs), already parsed.
    /// `holdUntilExit`: the CLI, which exits next, keeps both configs and the corpus instead of
    /// freeing them piece by piece (`keepUntilExit`).
    public static func run(old: Input, new: Input, extra: [BehaviourDiff.Probe] = [], derive: Bool = true,
                           filters: FilterRegistry, workingDirectory: String? = nil, holdUntilExit: Bool = false) throws(Failure) -> ConfigDiffReport {
        var failures: [String] = []
        // The two configs compile at once, on two cores (each compile is independent).
        let compiled = Pair<CompileResult>()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let input = i == 0 ? old : new
            let r = ConfigCompiler.compile(text: input.text, fileName: input.name, version: 1, filters: filters,
                                           workingDirectory: workingDirectory, jitRegexes: false)
            compiled.set(i, r)
        }
        func result(_ r: CompileResult) -> (ConfigNode, Snapshot)? {
            guard let snapshot = r.snapshot, let node = r.root else {
                failures.append(DiagnosticFormatter.text(r.diagnostics))
                return nil
            }
            return (node, snapshot)
        }
        let a = result(compiled.results[0]!), b = result(compiled.results[1]!)
        guard let (oldNode, oldSnap) = a, let (newNode, newSnap) = b else {
            throw .invalid(failures.joined(separator: "\n"), unreadable: false)
        }
        let structure = StructuralDiff.compare(old: oldNode, new: newNode)
        var probes: [BehaviourDiff.Probe] = []
        var corpus: [String: Int] = [:]
        if derive {
            let derived = Pair<[BehaviourDiff.Probe]>()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                derived.set(i, i == 0 ? RequestCorpus.derive(oldSnap, side: "old") : RequestCorpus.derive(newSnap, side: "new"))
            }
            let fromOld = derived.results[0]!, fromNew = derived.results[1]!
            corpus["derived from old"] = fromOld.count
            corpus["derived from new"] = fromNew.count
            probes = fromOld + fromNew
        }
        if !extra.isEmpty { corpus["given"] = extra.count }
        probes += extra
        probes = dedupe(probes)
        let behaviour = BehaviourDiff.compare(probes, old: oldSnap, new: newSnap,
                                              unchanged: unchangedRoutes(structure, oldNode, newNode),
                                              sameServerAndListeners: !structure.contains { $0.kind == "server" || $0.kind == "listener" })
        if holdUntilExit { keepUntilExit([oldNode, newNode, oldSnap, newSnap, probes] as [Any]) }
        return ConfigDiffReport(old: old.name, new: new.name, structure: structure, behaviour: behaviour, corpus: corpus)
    }

    /// Two results computed at once (old and new side), each set once by its own worker.
    final class Pair<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [T?] = [nil, nil]

        func set(_ i: Int, _ r: T) { lock.withLock { slots[i] = r } }
        var results: [T?] { lock.withLock { slots } }
    }

    /// Routes whose outcome cannot differ: written identically on both sides, and referring to no
    /// pool or chain that changed. None when the server or a listener changed (Via, trusted
    /// proxies and limits reach every route).
    static func unchangedRoutes(_ structure: [StructuralDiff.Change], _ old: ConfigNode, _ new: ConfigNode) -> Set<String> {
        if structure.contains(where: { $0.kind == "server" || $0.kind == "listener" }) { return [] }
        let touched = Set(structure.filter { $0.kind == "pool" || $0.kind == "chain" }.map(\.id))
        let changedRoutes = Set(structure.filter { $0.kind == "route" && $0.change != "moved" }.map(\.id))
        let oldIDs = Set((old["routes"]?.items ?? []).compactMap { $0["id"]?.scalar })
        var out = Set<String>()
        func mentions(_ n: ConfigNode) -> Bool {
            switch n.kind {
            case .scalar(let s, _): return touched.contains(s)
            case .sequence(let items): return items.contains(where: mentions)
            case .mapping(let entries): return entries.contains { mentions($0.value) }
            }
        }
        for r in new["routes"]?.items ?? [] {
            guard let id = r["id"]?.scalar, oldIDs.contains(id), !changedRoutes.contains(id) else { continue }
            if touched.isEmpty || !mentions(r) { out.insert(id) }
        }
        return out
    }

    /// The same request derived from both configs (most of them) runs once.
    static func dedupe(_ probes: [BehaviourDiff.Probe]) -> [BehaviourDiff.Probe] {
        var seen = Set<RequestKey>(minimumCapacity: probes.count)
        var out: [BehaviourDiff.Probe] = []
        out.reserveCapacity(probes.count)
        for p in probes {
            let r = p.request
            let key = RequestKey(listener: r.listener ?? "", method: r.method, url: r.url, clientIP: r.clientIP, random: r.random,
                                 headers: r.headers.map { [$0.0, $0.1] }, cookies: r.cookies.map { [$0.0, $0.1] })
            if seen.insert(key).inserted { out.append(p) }
        }
        return out
    }

    /// What makes two requests the same request (no key string built per request).
    struct RequestKey: Hashable {
        var listener: String
        var method: String
        var url: String
        var clientIP: String
        var random: UInt64?
        var headers: [[String]]
        var cookies: [[String]]
    }

    // MARK: given requests

    /// Requests from a `prox check` file: each test's request, headers, cookies, client and listener.
    public static func probes(checkFile text: String, name: String) throws -> [BehaviourDiff.Probe] {
        let (loaded, diagnostics) = CheckFile.load(text: text, fileName: name)
        guard let file = loaded, !diagnostics.hasErrors else { throw Failure.invalid(DiagnosticFormatter.text(diagnostics), unreadable: false) }
        return file.tests.enumerated().map { i, t in
            let (method, url) = DryRunRequest.parse(t.request)
            let req = DryRunRequest(method: method, url: url,
                                    headers: t.headers.map { ($0.key, $0.value) },
                                    cookies: t.cookies.map { ($0.key, $0.value) },
                                    clientIP: t.client_ip ?? "127.0.0.1", listener: t.listener,
                                    random: t.random.flatMap(DryRun.parseRandom))
            return BehaviourDiff.Probe(request: req, label: t.request, source: "\(name) test \(i + 1)" + (t.name.map { " (\($0))" } ?? ""))
        }
    }

    /// Requests from Prox access-log lines (JSON, one per line): method, host and path. Lines
    /// that are not such objects are skipped and counted.
    public static func probes(accessLog text: String, name: String) -> (probes: [BehaviourDiff.Probe], skipped: Int) {
        var out: [BehaviourDiff.Probe] = []
        var skipped = 0
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any],
                  let method = obj["method"] as? String, let path = obj["path"] as? String, path.hasPrefix("/") else {
                skipped += 1
                continue
            }
            let host = (obj["host"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            let url = host.map { "http://\($0)\(path)" } ?? path
            var req = DryRunRequest(method: method, url: url)
            if host == nil { req.headers = [("Host", "any-host.test")] }
            if let c = obj["client"] as? String, IPAddress(c) != nil { req.clientIP = c }
            out.append(BehaviourDiff.Probe(request: req, label: "\(method) \(host ?? "")\(path)", source: "\(name):\(i + 1)"))
        }
        return (out, skipped)
    }

    // MARK: output

    public static func text(_ r: ConfigDiffReport) -> String {
        var o = "prox diff \(r.old) \(r.new)\n\n"
        if r.structure.isEmpty {
            o += "Structure: no change\n"
        } else {
            o += "Structure: \(r.structure.count) change(s)\n"
            for c in r.structure {
                var line = "  \(c.change.padding(toLength: 8, withPad: " ", startingAt: 0)) \(c.kind) \(c.id)"
                if !c.keys.isEmpty { line += ": " + c.keys.joined(separator: ", ") }
                o += line + "\n"
                switch (c.old, c.new) {
                case (let a?, let b?): o += "           \(a) -> \(b)\n"
                case (let a?, nil): o += "           \(a)\n"
                case (nil, let b?): o += "           \(b)\n"
                default: break
                }
                if let d = c.detail { o += "           \(d)\n" }
            }
        }
        o += "\n"
        let b = r.behaviour
        let sources = r.corpus.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            + "; each distinct request runs once, or once per band of split draws"
        if b.changed == 0 {
            o += "Behaviour: no change in \(b.requests) requests (\(sources))\n"
            return o
        }
        o += "Behaviour: \(b.changed) of \(b.requests) requests change outcome (\(sources))\n"
        for g in b.groups {
            o += "  \(g.count) request\(g.count == 1 ? "" : "s") \(g.what)\n"
            for e in g.examples {
                o += "    for example \(e.request)" + (e.draws.map { " (split draws \($0))" } ?? "") + "  [\(e.source)]\n"
                if !g.fields.contains("route") {
                    if g.fields.contains("upstream") {
                        o += "      upstream: \(e.old.upstream ?? "none") -> \(e.new.upstream ?? "none")\n"
                    }
                    if g.fields.contains("headers") {
                        let removed = e.old.headers.filter { !e.new.headers.contains($0) }
                        let added = e.new.headers.filter { !e.old.headers.contains($0) }
                        for h in removed { o += "      - \(h)\n" }
                        for h in added { o += "      + \(h)\n" }
                    }
                } else if e.old.answer != e.new.answer || e.old.pool != e.new.pool {
                    o += "      was \(summary(e.old)), now \(summary(e.new))\n"
                }
            }
        }
        return o
    }

    static func summary(_ o: BehaviourDiff.Outcome) -> String {
        if o.answer == "proxy" { return "proxied to \(o.pool ?? "?")" }
        return "answered \(o.answer)"
    }

    public static func json(_ r: ConfigDiffReport) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(r), as: UTF8.self)
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two configs: what changed in structure, and which requests change outcome.",
        discussion: """
        Requests are derived from both configs' match specs (on and beside every host, path, method, header, query and cookie condition) and run through both compiled configs with the real router and chain, as dry-run does; nothing is sent. Add your own with --requests (a prox check file) and --access-log (Prox access-log lines). Exit 0 when no request changes outcome, 1 when some do, 2 when an input is invalid or unreadable. See docs/CLI.md.
        """
    )

    @Argument(help: "The config in force (YAML or JSON).")
    var old: String

    @Argument(help: "The config proposed.")
    var new: String

    @Option(help: "A prox check file whose requests are added to the corpus (repeatable).")
    var requests: [String] = []

    @Option(help: "A file of Prox access-log lines (JSON) whose requests are added to the corpus (repeatable).")
    var accessLog: [String] = []

    @Flag(help: "Run only the requests given with --requests and --access-log, none derived from the configs.")
    var givenOnly = false

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() throws {
        func read(_ path: String) throws -> String {
            switch ConfigLoader.read(file: path) {
            case .success(let t): return t
            case .failure(let d):
                FileHandle.standardError.write(Data("prox diff: \(d.file): \(d.message)\n".utf8))
                throw ExitCode(2)
            }
        }
        var extra: [BehaviourDiff.Probe] = []
        for f in requests {
            do { extra += try ConfigDiff.probes(checkFile: try read(f), name: f) } catch let e as ExitCode { throw e } catch {
                if case ConfigDiff.Failure.invalid(let text, _) = error {
                    FileHandle.standardError.write(Data("prox diff: invalid requests file\n\(text)\n".utf8))
                }
                throw ExitCode(2)
            }
        }
        for f in accessLog {
            let (p, skipped) = ConfigDiff.probes(accessLog: try read(f), name: f)
            if skipped > 0 { FileHandle.standardError.write(Data("prox diff: \(f): skipped \(skipped) line(s) that are not access-log requests\n".utf8)) }
            extra += p
        }
        let oldText = try read(old), newText = try read(new)
        let report: ConfigDiffReport
        do {
            report = try ConfigDiff.run(old: .init(name: old, text: oldText), new: .init(name: new, text: newText),
                                        extra: extra, derive: !givenOnly, filters: ProxCommand.filters, holdUntilExit: true)
        } catch {
            if case .invalid(let text, unreadable: _) = error {
                FileHandle.standardError.write(Data(("prox diff: invalid input\n" + text + "\n").utf8))
            }
            throw ExitCode(2)
        }
        switch format {
        case .text: print(ConfigDiff.text(report), terminator: "")
        case .json: print(try ConfigDiff.json(report))
        }
        if report.hasBehaviouralChanges { throw ExitCode(1) }
    }
}
