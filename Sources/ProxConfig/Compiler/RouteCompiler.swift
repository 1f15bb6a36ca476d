import ProxCore
import ProxFilters
import ProxRegex

/// Compiles one route: match spec, capture scope, chain stages (built for this route),
/// rewrite stage, action.
struct RouteCompiler {
    let route: RouteConfig
    let index: Int
    let file: String
    let listenerIndex: [String: Int]
    let poolIndex: [String: Int]
    let chains: [String: ConfigMapEntry<[DecodedFilter]>]
    let pools: [PoolSpec]
    /// The chains and pools the route names, repeats included (a set per route cost more than
    /// the caller's union of them).
    var usedChains: [String] = []
    var usedPools: [String] = []
    /// The match spec, when the route's `listeners` and `match` compiled without error (for the
    /// shadowing check, which must only judge what is certain).
    var spec: RouteMatchSpec?

    init(route: RouteConfig, index: Int, file: String, listenerIndex: [String: Int], poolIndex: [String: Int],
         chains: [String: ConfigMapEntry<[DecodedFilter]>], pools: [PoolSpec]) {
        self.route = route
        self.index = index
        self.file = file
        self.listenerIndex = listenerIndex
        self.poolIndex = poolIndex
        self.chains = chains
        self.pools = pools
    }

    mutating func compile(_ c: inout Compilation) -> Route? {
        guard let id = route.id, let node = route.node else { return nil }
        let errorsBefore = c.diagnostics.errorCount
        var ok = true
        var matchOK = !c.hasDecodeErrors(under: node.path + ".match") && !c.hasDecodeErrors(under: node.path + ".listeners")

        // listeners
        var listeners: Set<Int>? = nil
        if let ls = route.listeners {
            var set = Set<Int>()
            for l in ls {
                if let i = listenerIndex[l.value] { set.insert(i) } else {
                    c.unknown(l, "listener", known: listenerIndex.keys)
                    ok = false
                    matchOK = false
                }
            }
            listeners = set
        }

        // match
        var spec = RouteMatchSpec(listeners: listeners)
        var scope = Template.CaptureScope()
        if let m = route.match {
            for h in m.host ?? [] {
                if let name = h.name {
                    let lower = name.lowercased()
                    spec.hosts.append(lower.hasPrefix("*.") ? .wildcard(suffix: String(lower.dropFirst())) : .exact(lower))
                } else if let r = h.regex {
                    spec.hosts.append(.regex(r.value))
                } else { ok = false; matchOK = false }
            }
            if let p = m.path {
                if let e = p.exact { spec.path = .exact(e) }
                else if let pre = p.prefix { spec.path = .prefix(pre) }
                else if let r = p.regex {
                    spec.path = .regex(r.value)
                    scope.pathGroups = (r.value.captureCount, r.value.captureNames)
                } else { ok = false; matchOK = false }
            }
            if let ms = m.methods { spec.methods = Set(ms) }
            for (list, source) in [(m.headers, 0), (m.query, 1), (m.cookies, 2)] {
                for e in list {
                    guard let test = e.value.test else { ok = false; matchOK = false; continue }
                    let src: ValuePredicate.Source = source == 0 ? .header(HeaderName(e.key)) : source == 1 ? .query(e.key) : .cookie(e.key)
                    spec.predicates.append(ValuePredicate(src, test))
                }
            }
            let hostRegexes = spec.hosts.compactMap { h -> Regex? in if case .regex(let r) = h { return r }; return nil }
            if let first = hostRegexes.first {
                let count = hostRegexes.map(\.captureCount).min() ?? 0
                let names = first.captureNames.filter { k, v in hostRegexes.allSatisfy { $0.captureNames[k] == v } }
                scope.hostGroups = (count, names)
            }
        }

        // chain, built for this route
        var stages: [any Stage] = []
        var usesPath = false, usesHost = false
        var entries: [DecodedFilter] = []
        var note: String? = nil
        switch route.chain {
        case .named(let ref)?:
            if let chain = chains[ref.value] {
                usedChains.append(ref.value)
                entries = chain.value
                note = "chain '\(ref.value)' as used by route '\(id.value)'"
            } else {
                c.unknown(ref, "chain", known: chains.keys)
                ok = false
            }
        case .inline(let list)?:
            entries = list
        case nil:
            break
        }
        for f in entries {
            var fc = FilterBuildContext(routeID: id.value, scope: scope, note: note)
            let stage = f.makeStage(&fc)
            c.diagnostics += fc.diagnostics
            usesPath = usesPath || fc.usesPathCaptures
            usesHost = usesHost || fc.usesHostCaptures
            if let stage { stages.append(stage) } else {
                ok = false
                if !fc.diagnostics.hasErrors { c.error(f.node, "filter '\(f.name)' could not be built") }
            }
        }

        // route-level templates
        var tc = FilterBuildContext(routeID: id.value, scope: scope)

        // rewrite, after the chain
        if let rw = route.rewrite {
            var prefix: (matched: String, replacement: String)? = nil
            if let rp = rw.replacePrefix {
                if case .prefix(let p)? = spec.path {
                    prefix = (p, rp.value)
                } else {
                    c.error(rp.node, "replace_prefix needs the route to match a path prefix",
                            hint: "add `match: {path: {prefix: /...}}`, or use path_regex with path_replacement")
                    ok = false
                }
            }
            var regex: (regex: Regex, replacement: String)? = nil
            if let r = rw.pathRegex, let rep = rw.pathReplacement { regex = (r.value, rep.value) }
            var host: Template? = nil
            if let h = rw.host {
                host = tc.template(h)
                if host == nil { ok = false }
            }
            stages.append(RewriteStage(prefix: prefix, pathRegex: regex, host: host))
        }

        // action
        var action: RouteAction? = nil
        var split: SplitTable? = nil
        if let p = route.proxy {
            if let ref = p.pool {
                if let pi = poolIndex[ref.value] {
                    action = .proxy(pool: pi)
                    usedPools.append(ref.value)
                } else {
                    c.unknown(ref, "pool", known: poolIndex.keys)
                }
            } else if let entries = p.split {
                // The cumulative-weight table, built once; unknown pools are all reported.
                var indices: [Int] = [], names: [String] = [], weights: [UInt64] = []
                var known = true
                for e in entries {
                    guard let ref = e.pool else { known = false; continue }
                    if let pi = poolIndex[ref.value] {
                        indices.append(pi)
                        names.append(ref.value)
                        weights.append(UInt64(max(0, e.weight)))
                        usedPools.append(ref.value)
                    } else {
                        c.unknown(ref, "pool", known: poolIndex.keys)
                        known = false
                    }
                }
                if known, let table = SplitTable(pools: indices, names: names, weights: weights) {
                    split = table
                    action = .proxy(pool: indices[0])
                }
            }
        } else if let r = route.respond {
            var headers: [(name: HeaderName, value: Template)] = []
            for h in r.headers {
                if let t = tc.template(h.value) { headers.append((HeaderName(h.key), t)) }
            }
            let body = r.body.flatMap { tc.template($0) } ?? (r.body == nil ? try? Template("") : nil)
            if let body {
                if !(body.constant?.isEmpty ?? false) && !headers.contains(where: { $0.name == .contentType }) {
                    if let t = try? Template("text/plain; charset=utf-8") { headers.append((.contentType, t)) }
                }
                action = .respond(status: r.status, headers: headers, body: body)
            }
        } else if let r = route.redirect, let loc = r.location {
            if let t = tc.template(loc) { action = .redirect(status: r.status, location: t) }
        }
        c.diagnostics += tc.diagnostics
        usesPath = usesPath || tc.usesPathCaptures
        usesHost = usesHost || tc.usesHostCaptures

        let transport = compileTransport(&c, listeners: listeners)

        if matchOK { self.spec = spec }
        guard ok, let action, c.diagnostics.errorCount == errorsBefore, !c.hasDecodeErrors(under: node.path) else { return nil }
        let ws = route.websocket.map { WebSocketPolicy(enabled: $0.enabled, idleTimeout: $0.idleTimeout) } ?? .default
        return Route(id: id.value, index: index, match: spec, chain: RouteChain(stages), cache: nil, split: split, action: action,
                     needsPathCaptures: usesPath, needsHostCaptures: usesHost, origin: node.mark.description, webSocket: ws,
                     transport: transport)
    }

    /// `require_tls` and `require_client_cert`, with warnings where the config makes them moot
    /// (every listener of the route already TLS) or impossible (no listener asks for certificates).
    func compileTransport(_ c: inout Compilation, listeners: Set<Int>?) -> RouteTransport? {
        guard route.requireTLS != nil || route.requireClientCert, let node = route.node else { return nil }
        let served = c.doc.listeners.indices.filter { listeners?.contains($0) ?? true }.map { c.doc.listeners[$0] }
        var tls: RouteTransport.TLSRequirement? = nil
        if let r = route.requireTLS {
            tls = r.action == .redirect ? .redirect(port: r.httpsPort) : .reject
            if !served.isEmpty, served.allSatisfy({ $0.tls != nil }), let n = node["require_tls"] {
                c.warning(n, "every listener of route '\(route.id?.value ?? "")' serves TLS: require_tls never acts")
            }
        }
        if route.requireClientCert, let n = node["require_client_cert"], !served.contains(where: { $0.tls?.clientAuth != nil }) {
            c.warning(n, "no listener of route '\(route.id?.value ?? "")' asks for client certificates: every request gets 403 client_certificate_required",
                      hint: "give the listener `tls: {client_auth: {ca: FILE}}`")
        }
        return RouteTransport(tls: tls, clientCertificate: route.requireClientCert)
    }
}
