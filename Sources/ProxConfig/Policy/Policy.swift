import ProxCore
import ProxFilters

/// A loaded policy file, ready to check configs against.
public struct Policy: Sendable {
    let rules: [Rule]
    public let file: String

    struct Rule: @unchecked Sendable {
        let rule: PolicyRule
        var id: String { rule.id?.value ?? "?" }
    }

    /// Reads and decodes a policy file. Problems in it are positioned diagnostics in that file.
    public static func load(file path: String, filters: FilterRegistry = BuiltinFilters.registry) -> (policy: Policy?, diagnostics: [Diagnostic], unreadable: Bool) {
        switch ConfigLoader.read(file: path) {
        case .failure(let d): return (nil, [d], true)
        case .success(let text):
            let (p, d) = load(text: text, fileName: path, filters: filters)
            return (p, d, false)
        }
    }

    public static func load(text: String, fileName: String, filters: FilterRegistry = BuiltinFilters.registry) -> (policy: Policy?, diagnostics: [Diagnostic]) {
        let (root, loadDiagnostics) = ConfigLoader.load(text: text, fileName: fileName)
        guard let root else { return (nil, loadDiagnostics) }
        var decoder = ConfigDecoder(filters: filters.descriptors)
        let doc = decoder.decode(PolicyDocument.self, from: root)
        var diagnostics = loadDiagnostics + decoder.diagnostics
        // Filter names must be filters this binary has.
        let names = filters.names
        for r in doc?.rules ?? [] {
            for f in [r.require.filter, r.require.before, r.require.filterSetting?.filter].compactMap({ $0 }) where !names.contains(f.value) {
                let hint = suggestion(for: f.value, in: names).map { "did you mean '\($0)'?" } ?? "filters: \(names.joined(separator: ", "))"
                diagnostics.append(Diagnostic(at: f.node.mark, path: f.node.path, "unknown filter '\(f.value)'", hint: hint))
            }
        }
        diagnostics = diagnostics.sortedByPosition()
        guard let doc, !diagnostics.hasErrors else { return (nil, diagnostics) }
        return (Policy(rules: doc.rules.map(Rule.init), file: fileName), diagnostics)
    }

    /// Every rule the config breaks, as diagnostics at the place in the config that breaks it:
    /// errors for `enforce` rules, warnings for `warn` rules. `root` is the config as loaded,
    /// `snapshot` the same config compiled.
    public func check(root: ConfigNode, snapshot: Snapshot) -> [Diagnostic] {
        var out: [Diagnostic] = []
        let routeNodes = root["routes"]?.items ?? []
        let allListeners = snapshot.listeners.map(\.id)
        let poolsByID = Dictionary(snapshot.pools.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for (i, route) in snapshot.routes.enumerated() where i < routeNodes.count {
            let facts = RouteFacts(node: routeNodes[i], route: route, root: root, allListeners: allListeners, snapshot: snapshot)
            for r in rules where r.rule.select.selects(facts) {
                for (node, problem) in r.rule.require.problems(facts, poolsByID) {
                    let severity: Diagnostic.Severity = r.rule.severity == .enforce ? .error : .warning
                    var hint = "rule '\(r.id)'"
                    if let m = r.rule.node?.mark { hint += " at \(m)" }
                    if let d = r.rule.description { hint += ": " + d }
                    out.append(Diagnostic(at: node.mark, path: node.path, severity: severity,
                                          "policy '\(r.id)': route '\(route.id)' \(problem)", hint: hint))
                }
            }
        }
        return out
    }
}

/// What a rule looks at in one route, read once.
struct RouteFacts {
    let node: ConfigNode
    let route: Route
    let tags: [String]
    /// The listeners the route is reachable on.
    let listeners: [String]
    let hosts: [String]
    let path: String?
    let action: String
    /// The chain's entries: filter type and its config node (nil when written without config).
    let chain: [(name: String, config: ConfigNode?, node: ConfigNode)]
    let chainNode: ConfigNode?
    let pools: [String]

    init(node: ConfigNode, route: Route, root: ConfigNode, allListeners: [String], snapshot: Snapshot) {
        self.node = node
        self.route = route
        tags = node["tags"]?.items?.compactMap(\.scalar) ?? []
        listeners = node["listeners"]?.items?.compactMap(\.scalar) ?? allListeners
        let hostNode = node["match"]?["host"]
        hosts = (hostNode?.items ?? hostNode.map { [$0] } ?? []).compactMap { h in
            h.scalar ?? h.entries?.first?.value.scalar
        }
        path = node["match"]?["path"]?.entries?.first?.value.scalar
        action = ["proxy", "respond", "redirect"].first { node[$0] != nil } ?? "proxy"
        var chainNode = node["chain"]
        if let name = chainNode?.scalar { chainNode = root["chains"]?[name] }
        self.chainNode = chainNode
        chain = (chainNode?.items ?? []).compactMap { e in
            if let s = e.scalar { return (s, nil, e) }
            if let first = e.entries?.first { return (first.key, first.value, e) }
            return nil
        }
        var pools: [String] = []
        if case .proxy(let p) = route.action { pools.append(snapshot.pools[p].id) }
        if let split = route.split { pools = split.names }
        self.pools = pools
    }
}

extension PolicySelector {
    func selects(_ f: RouteFacts) -> Bool {
        if let r = routes, !r.contains(where: { glob($0, f.route.id) }) { return false }
        if let t = tags, !t.contains(where: f.tags.contains) { return false }
        if let l = listeners, !l.contains(where: f.listeners.contains) { return false }
        if let l = listenersOtherThan, f.listeners.allSatisfy(l.contains) { return false }
        if let h = hosts {
            let written = f.hosts.isEmpty ? ["*"] : f.hosts
            if !h.contains(where: { p in written.contains { (p == "*" || $0 != "*") && glob(p, $0) } }) { return false }
        }
        if let p = paths {
            if let path = f.path {
                if !p.contains(where: { glob($0, path) }) { return false }
            } else if !p.contains("*") { return false }
        }
        if let a = actions, !a.contains(f.action) { return false }
        return true
    }
}

extension PolicyRequirement {
    /// Each way the route breaks this requirement: the node to point at, and what is wrong.
    func problems(_ f: RouteFacts, _ pools: [String: PoolSpec]) -> [(ConfigNode, String)] {
        var out: [(ConfigNode, String)] = []
        let at = f.chainNode ?? f.node
        if let want = filter?.value {
            let names = f.chain.map(\.name)
            if let i = names.firstIndex(of: want) {
                if let b = before?.value, let j = names.firstIndex(of: b), j < i {
                    out.append((f.chain[j].node, "runs \(b) before \(want); \(want) must come first"))
                }
            } else {
                out.append((at, names.isEmpty ? "has no chain; it must run \(want)" : "does not run \(want) (its chain: \(names.joined(separator: ", ")))"))
            }
        }
        if let s = filterSetting, let name = s.filter?.value {
            if let entry = f.chain.first(where: { $0.name == name }) {
                var value = entry.config
                for k in s.key.split(separator: ".") { value = value?[String(k)] }
                if let v = value, let text = v.scalar {
                    if let problem = check(text, s.atMost, s.atLeast, s.equals) {
                        out.append((v, "has \(name).\(s.key) \(text): \(problem)"))
                    }
                } else {
                    out.append((entry.node, "does not set \(name).\(s.key)"))
                }
            } else {
                out.append((at, "does not run \(name), whose \(s.key) the policy bounds"))
            }
        }
        if let p = pool {
            for id in f.pools {
                guard let spec = pools[id], let text = Self.poolValue(spec, p.key) else { continue }
                if let problem = check(text, p.atMost, p.atLeast, p.equals) {
                    out.append((f.node["proxy"] ?? f.node, "proxies to pool \(id), whose \(p.key) is \(text): \(problem)"))
                }
            }
        }
        if let forbidden = notProxyTo {
            for id in f.pools where forbidden.contains(id) {
                out.append((f.node["proxy"] ?? f.node, "proxies to pool \(id)"))
            }
        }
        if anchoredRegex == true, case .regex(let r)? = f.route.match.path, !(r.pattern.hasPrefix("^") || r.pattern.hasPrefix("\\A")) {
            let node = f.node["match"]?["path"]?["regex"] ?? f.node
            out.append((node, "has a path regex without an anchor: '\(r.pattern)' matches anywhere in the path"))
        }
        return out
    }

    static func poolValue(_ p: PoolSpec, _ key: String) -> String? {
        switch key {
        case "timeouts.connect": return DurationText.format(p.connectTimeout)
        case "timeouts.response_header": return DurationText.format(p.responseHeaderTimeout)
        case "timeouts.body_idle": return DurationText.format(p.bodyIdleTimeout)
        case "timeouts.idle": return DurationText.format(p.idleTimeout)
        case "limits.max_connections_per_endpoint": return String(p.maxConnectionsPerEndpoint)
        case "limits.max_idle_per_endpoint": return String(p.maxIdlePerEndpoint)
        case "balancer": return p.balancer.rawValue
        case "endpoints": return String(p.endpoints.count)
        default: return nil
        }
    }

    /// Why `text` breaks the bounds, or nil when it keeps them.
    func check(_ text: String, _ atMost: PolicyBound?, _ atLeast: PolicyBound?, _ equals: String?) -> String? {
        if let e = equals, text != e { return "must be \(e)" }
        func value(_ unit: PolicyBound.Unit) -> Int64? {
            switch unit {
            case .bytes: return SizeText.parse(text) ?? Int64(text)
            case .milliseconds: return DurationText.parse(text)
            case .number: return Int64(text)
            }
        }
        if let hi = atMost {
            guard let v = value(hi.unit) else { return "not comparable with \(hi.text)" }
            if v > hi.value { return "must be at most \(hi.text)" }
        }
        if let lo = atLeast {
            guard let v = value(lo.unit) else { return "not comparable with \(lo.text)" }
            if v < lo.value { return "must be at least \(lo.text)" }
        }
        return nil
    }
}

/// `*` matches any run of characters; everything else matches itself.
func glob(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.utf8), t = Array(text.utf8)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && p[pi] == UInt8(ascii: "*") {
            star = pi; mark = ti; pi += 1
        } else if pi < p.count && p[pi] == t[ti] {
            pi += 1; ti += 1
        } else if star >= 0 {
            pi = star + 1; mark += 1; ti = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
}
