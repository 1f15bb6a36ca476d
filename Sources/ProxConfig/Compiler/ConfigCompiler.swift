import Foundation
import ProxCore
import ProxFilters
import ProxRegex
import ProxTLS

/// The outcome of compiling one config file.
public struct CompileResult: Sendable {
    /// Set when the config is valid (no error diagnostics; warnings may remain).
    public var snapshot: Snapshot?
    /// Every problem found, in file order.
    public var diagnostics: [Diagnostic]
    /// True when the file could not be read at all (`prox validate` exits 2).
    public var unreadable: Bool
    /// The document as loaded (nil when it could not be read or parsed): policies and
    /// `prox diff` read it for positions.
    public var root: ConfigNode?

    public init(snapshot: Snapshot?, diagnostics: [Diagnostic], unreadable: Bool = false, root: ConfigNode? = nil) {
        self.root = root
        self.snapshot = snapshot
        self.diagnostics = diagnostics
        self.unreadable = unreadable
    }

    public var isValid: Bool { snapshot != nil }
    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
}

/// Config document -> `Snapshot`: loads with positions, decodes against the declarations,
/// resolves references, compiles regexes, templates and filters, checks for shadowed routes,
/// and reports every problem found.
public enum ConfigCompiler {
    /// Reads and compiles a file (YAML, or JSON when it ends in `.json` or starts with `{`).
    /// `jitRegexes: false` when the snapshot will not route requests (`prox validate`): see
    /// `ConfigDecoder.jitRegexes`.
    public static func compile(file path: String, version: Int, filters: FilterRegistry = BuiltinFilters.registry,
                               jitRegexes: Bool = true) -> CompileResult {
        switch ConfigLoader.read(file: path) {
        case .failure(let d): return CompileResult(snapshot: nil, diagnostics: [d], unreadable: true)
        case .success(let text): return compile(text: text, fileName: path, version: version, filters: filters, jitRegexes: jitRegexes)
        }
    }

    /// Compiles a document held in memory; `fileName` names it in diagnostics and picks the
    /// format by extension.
    /// Files the config names (certificates) are read relative to `fileName`'s directory, itself
    /// relative to `workingDirectory` when given (else to the current directory).
    public static func compile(text: String, fileName: String, version: Int, filters: FilterRegistry = BuiltinFilters.registry,
                               workingDirectory: String? = nil, jitRegexes: Bool = true) -> CompileResult {
        let (root, loadDiagnostics) = ConfigLoader.load(text: text, fileName: fileName)
        guard let root else { return CompileResult(snapshot: nil, diagnostics: loadDiagnostics.sortedByPosition()) }
        var decoder = ConfigDecoder(filters: filters.descriptors)
        decoder.jitRegexes = jitRegexes
        let doc = decoder.decode(ProxDocument.self, from: root)
        var diagnostics = loadDiagnostics + decoder.diagnostics
        var snapshot: Snapshot? = nil
        if let doc {
            var c = Compilation(doc: doc, file: fileName, version: version, decodeDiagnostics: decoder.diagnostics)
            c.workingDirectory = workingDirectory
            snapshot = c.run()
            diagnostics += c.diagnostics
        }
        diagnostics = diagnostics.sortedByPosition()
        if diagnostics.hasErrors { snapshot = nil }
        return CompileResult(snapshot: snapshot, diagnostics: diagnostics, root: root)
    }
}

/// One compilation: the decoded document in, a snapshot (or diagnostics) out.
struct Compilation {
    let doc: ProxDocument
    let file: String
    let version: Int
    /// What decoding reported, to keep routes with decode errors out of the shadowing check.
    let decodeDiagnostics: [Diagnostic]
    let decodeHasErrors: Bool
    var diagnostics: [Diagnostic] = []
    /// Stands in for the current directory when reading files the config names.
    var workingDirectory: String?

    init(doc: ProxDocument, file: String, version: Int, decodeDiagnostics: [Diagnostic]) {
        self.doc = doc
        self.file = file
        self.version = version
        self.decodeDiagnostics = decodeDiagnostics
        self.decodeHasErrors = decodeDiagnostics.hasErrors
    }

    /// Whether decoding reported an error at or under `path` (spelled only when it did report one).
    func hasDecodeErrors(under path: @autoclosure () -> String) -> Bool {
        guard decodeHasErrors else { return false }
        let path = path()
        return decodeDiagnostics.contains { d in
            d.severity == .error && (d.path == path || d.path.hasPrefix(path + ".") || d.path.hasPrefix(path + "["))
        }
    }

    mutating func error(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, message, hint: hint))
    }

    mutating func warning(_ node: ConfigNode, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(at: node.mark, path: node.path, severity: .warning, message, hint: hint))
    }

    func position(_ n: ConfigNode) -> String { "line \(n.mark.line)" }

    /// Indices by id; reports duplicates at the later one.
    mutating func index(_ ids: [Positioned<String>?], what: String) -> [String: Int] {
        var out: [String: Int] = [:]
        out.reserveCapacity(ids.count)
        for (i, id) in ids.enumerated() {
            guard let id else { continue }
            if let first = out[id.value] {
                error(id.node, "duplicate \(what) id '\(id.value)'", hint: "first defined at \(position(ids[first]!.node)); ids must be unique")
            } else {
                out[id.value] = i
            }
        }
        return out
    }

    /// Reports an unknown reference with a did-you-mean.
    mutating func unknown(_ ref: Positioned<String>, _ what: String, known: some Collection<String>) {
        var hint: String
        if let c = suggestion(for: ref.value, in: known) {
            hint = "did you mean '\(c)'?"
        } else if known.isEmpty {
            hint = "there are no \(what)s defined"
        } else {
            hint = "known \(what)s: " + known.sorted().joined(separator: ", ")
        }
        error(ref.node, "unknown \(what) '\(ref.value)'", hint: hint)
    }

    mutating func run() -> Snapshot? {
        let poolIndex = index(doc.pools.map(\.id), what: "pool")
        var usedChains = Set<String>(), usedPools = Set<String>()
        let listeners = compileListeners(poolIndex: poolIndex, usedPools: &usedPools)
        let listenerIndex = index(doc.listeners.map(\.id), what: "listener")
        let pools = compilePools()
        let chains = Dictionary(doc.chains.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })

        var routes: [Route] = []
        var specs: [(Int, RouteMatchSpec)] = []
        _ = index(doc.routes.map(\.id), what: "route")
        var allCompiled = true
        for (i, r) in doc.routes.enumerated() {
            var rc = RouteCompiler(route: r, index: i, file: file, listenerIndex: listenerIndex, poolIndex: poolIndex,
                                   chains: chains, pools: pools)
            let compiled = rc.compile(&self)
            usedChains.formUnion(rc.usedChains)
            usedPools.formUnion(rc.usedPools)
            if let spec = rc.spec { specs.append((i, spec)) }
            if let compiled { routes.append(compiled) } else { allCompiled = false }
        }
        checkShadowing(specs)

        for (name, entry) in chains.sorted(by: { $0.key < $1.key }) where !usedChains.contains(name) {
            checkUnusedChain(entry)
        }
        // Unused pools and chains are worth a warning, but not while errors (say, a misspelt
        // reference) explain them.
        if !diagnostics.hasErrors && !decodeDiagnostics.hasErrors {
            for (name, entry) in chains.sorted(by: { $0.key < $1.key }) where !usedChains.contains(name) {
                warning(entry.keyNode, "chain '\(name)' is not used by any route")
            }
            for p in doc.pools {
                if let id = p.id, !usedPools.contains(id.value) {
                    warning(id.node, "pool '\(id.value)' is not used by any route")
                }
            }
        }

        let liveTrace = compileLiveTrace()
        guard !diagnostics.hasErrors, allCompiled, routes.count == doc.routes.count, listeners.count == doc.listeners.count,
              pools.count == doc.pools.count else { return nil }
        let router: Router
        do {
            router = try Router(routes.map(\.match))
        } catch {
            diagnostics.append(Diagnostic(at: doc.node?.mark ?? SourceMark(file: file, line: 1, column: 1), path: "routes",
                                          "the router cannot be built: \(error)"))
            return nil
        }
        let settings = ServerSettings(accessLog: doc.server.accessLog, serverName: doc.server.name,
                                      drainTimeout: doc.server.drainTimeout, responseVia: doc.server.responseVia,
                                      liveTrace: liveTrace, engine: doc.server.engine)
        return Snapshot(version: version, source: file, listeners: listeners, routes: routes, pools: pools,
                        router: router, settings: settings)
    }

    /// Reads the live-trace token (`server.trace.token_file`), relative to the config's folder.
    mutating func compileLiveTrace() -> LiveTraceSettings? {
        guard let t = doc.server.trace, let file = t.tokenFile else { return nil }
        let (shown, path) = configRelative(file.value)
        guard let data = FileManager.default.contents(atPath: path) else {
            diagnostics.append(Diagnostic(at: file.node.mark, path: file.node.path, "cannot read the trace token file '\(shown)'",
                                          hint: "put a secret of at least 16 bytes in it, e.g. `openssl rand -hex 24 > \(file.value)`"))
            return nil
        }
        let token = Array(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard token.count >= 16 else {
            diagnostics.append(Diagnostic(at: file.node.mark, path: file.node.path,
                                          "the trace token in '\(file.value)' is \(token.count) bytes; it must be at least 16",
                                          hint: "a short token can be guessed: `openssl rand -hex 24 > \(file.value)`"))
            return nil
        }
        guard token.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            diagnostics.append(Diagnostic(at: file.node.mark, path: file.node.path,
                                          "the trace token in '\(file.value)' holds bytes a header value cannot carry",
                                          hint: "use printable ASCII without spaces, e.g. `openssl rand -hex 24`"))
            return nil
        }
        return LiveTraceSettings(header: t.header, token: token)
    }

    /// Builds the filters of a chain no route uses, so their templates are still checked.
    /// Capture groups depend on the route, so references to them are not judged here.
    mutating func checkUnusedChain(_ entry: ConfigMapEntry<[DecodedFilter]>) {
        let any = (count: 99, names: [String: Int]())
        for f in entry.value {
            var fc = FilterBuildContext(routeID: "", scope: Template.CaptureScope(pathGroups: any, hostGroups: any))
            _ = f.makeStage(&fc)
            diagnostics += fc.diagnostics.filter { !$0.message.contains("has no group named") }
        }
    }

    // MARK: listeners and pools

    mutating func compileListeners(poolIndex: [String: Int], usedPools: inout Set<String>) -> [ListenerSpec] {
        var out: [ListenerSpec] = []
        var bound: [(HostPort, String, ConfigNode)] = []
        for (i, l) in doc.listeners.enumerated() {
            guard let id = l.id, let address = l.address else { continue }
            let host = address.host.isEmpty ? "0.0.0.0" : address.host
            let hp = HostPort(host: host, port: address.port)
            if let node = l.node?["address"], hp.port != 0 {
                if let other = bound.first(where: { overlaps($0.0, hp) }) {
                    error(node, "listener '\(id.value)' uses \(hp), which overlaps listener '\(other.1)' (\(other.0))",
                          hint: "two listeners cannot bind the same port on the same address")
                }
                bound.append((hp, id.value, node))
            }
            var tls: (any ListenerTLS)? = nil
            if let t = l.tls {
                guard let compiled = compileTLS(t, listenerID: id.value) else { continue }
                tls = compiled
            }
            var l4: L4Table? = nil
            if let routes = l.l4Routes, !routes.isEmpty, l.tls != nil {
                guard let table = compileL4(routes, l, poolIndex: poolIndex, usedPools: &usedPools) else { continue }
                l4 = table
            }
            out.append(ListenerSpec(
                id: id.value, index: i, host: host, port: address.port,
                maxHeaderBytes: l.limits.maxHeaderBytes, maxHeaders: l.limits.maxHeaders,
                maxConnections: l.limits.maxConnections, maxURIBytes: l.limits.maxURIBytes,
                clientHeaderTimeout: l.timeouts.clientHeader, clientBodyIdleTimeout: l.timeouts.clientBodyIdle,
                keepAliveIdleTimeout: l.timeouts.keepAliveIdle,
                trustedProxies: l.trustedProxies ?? doc.server.trustedProxies,
                allowUnderscoresInHeaders: l.allowUnderscoresInHeaders, tls: tls, l4: l4))
        }
        return out
    }

    /// A TLS listener's `l4_routes`: pools resolved, ids and names unique on the listener.
    mutating func compileL4(_ configs: [L4RouteConfig], _ l: ListenerConfig, poolIndex: [String: Int],
                            usedPools: inout Set<String>) -> L4Table? {
        var routes: [L4Route] = []
        var ok = true
        var ids: [String: ConfigNode] = [:]
        var names: [String: String] = [:]
        var noSNIRoute: String? = nil
        for r in configs {
            guard let id = r.id, let node = r.node else { ok = false; continue }
            if let first = ids[id.value] {
                error(id.node, "duplicate l4 route id '\(id.value)'", hint: "first defined at \(position(first)); ids must be unique on the listener")
                ok = false
            } else {
                ids[id.value] = id.node
            }
            for n in r.sni ?? [] {
                if let first = names[n.value] {
                    error(n.node, "SNI name '\(n.value)' is already taken by l4 route '\(first)'", hint: "the first route in order takes it: this one never would")
                    ok = false
                } else {
                    names[n.value] = id.value
                }
            }
            if r.noSNI {
                if let first = noSNIRoute, let n = node["no_sni"] {
                    warning(n, "l4 route '\(first)' already takes ClientHellos without SNI: this one never does")
                } else {
                    noSNIRoute = id.value
                }
            }
            let action: L4Route.Action
            if let p = r.pass {
                guard let pi = poolIndex[p.value] else {
                    unknown(p, "pool", known: poolIndex.keys)
                    ok = false
                    continue
                }
                usedPools.insert(p.value)
                action = .pass(pool: pi)
            } else if r.drop {
                action = .drop
            } else {
                ok = false
                continue
            }
            routes.append(L4Route(id: id.value, names: (r.sni ?? []).map(\.value), matchesNoSNI: r.noSNI, action: action,
                                  idleTimeout: r.idleTimeout, origin: node.mark.description))
        }
        guard ok, routes.count == configs.count else { return nil }
        return L4Table(routes: routes, clientHelloTimeout: l.timeouts.clientHello, clientHelloMaxBytes: l.limits.clientHelloMaxBytes)
    }

    mutating func compilePools() -> [PoolSpec] {
        var out: [PoolSpec] = []
        for (i, p) in doc.pools.enumerated() {
            guard let id = p.id else { continue }
            var tls: (any UpstreamTLS)? = nil
            if let t = p.tls {
                let compiled = compileUpstreamTLS(t, poolID: id.value)
                guard compiled.ok else { continue }
                tls = compiled.tls
            }
            let endpoints = p.endpoints.compactMap { e in
                e.address.map { a in
                    EndpointSpec(host: a.host, port: a.port, weight: e.weight,
                                 tls: tls.map { ($0.key, Self.upstreamServerName(host: a.host, sni: p.tls?.sni?.value)) })
                }
            }
            guard !endpoints.isEmpty, endpoints.count == p.endpoints.count else { continue }
            out.append(PoolSpec(
                id: id.value, index: i, endpoints: endpoints, balancer: p.balancer,
                connectTimeout: p.timeouts.connect, responseHeaderTimeout: p.timeouts.responseHeader,
                bodyIdleTimeout: p.timeouts.bodyIdle, maxConnectionsPerEndpoint: p.limits.maxConnectionsPerEndpoint,
                idleTimeout: p.timeouts.idle, maxIdlePerEndpoint: p.limits.maxIdlePerEndpoint, tls: tls))
        }
        return out
    }
}

/// Whether two listen addresses would collide (same port; same host, or a wildcard of the same family).
func overlaps(_ a: HostPort, _ b: HostPort) -> Bool {
    guard a.port == b.port else { return false }
    if a.host == b.host { return true }
    func family(_ h: String) -> Int { h == "localhost" ? 4 : IPAddress(h).map { if case .v4 = $0 { return 4 } else { return 6 } } ?? 0 }
    if a.host == "0.0.0.0" || b.host == "0.0.0.0" { return family(a.host) == 4 && family(b.host) == 4 }
    if a.host == "::" || b.host == "::" { return family(a.host) == 6 && family(b.host) == 6 }
    return false
}
