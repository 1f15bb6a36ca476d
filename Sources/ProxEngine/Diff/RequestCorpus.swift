import ProxCore

/// Requests derived from a config's match specs, for `prox diff`: for every route, one request
/// that meets all its conditions, and requests that sit beside each boundary (one condition
/// changed at a time: the bare domain of a wildcard, a path one byte past an exact path, a method
/// the route does not take, a header missing). Running them through two configs finds the
/// requests whose outcome changes, including the ones a newly inserted route shadows.
public enum RequestCorpus {
    /// Host used when a route takes any host.
    static let anyHost = "any-host.test"

    /// The probes for every route of `snapshot`, labelled with `side` (`old`, `new`).
    public static func derive(_ snapshot: Snapshot, side: String) -> [BehaviourDiff.Probe] {
        var out: [BehaviourDiff.Probe] = []
        // Conditions other routes name: a route that takes any method is also tried with the
        // methods other routes select on, and one that takes any host with their hosts, so that
        // a route inserted before another with a narrower method or host shows what it takes.
        var methods = Set<String>()
        var hosts = Set<String>()
        for r in snapshot.routes {
            for m in r.match.methods ?? [] { methods.insert(m.description) }
            for case .exact(let h) in r.match.hosts { hosts.insert(h) }
        }
        let context = Context(methods: methods.sorted(), hosts: Array(hosts.sorted().prefix(8)))
        for route in snapshot.routes { derive(route, snapshot, side: side, context: context, into: &out) }
        return out
    }

    struct Context {
        var methods: [String]
        var hosts: [String]
    }

    /// One request as the corpus builds it, before it becomes a `DryRunRequest`.
    struct Draft {
        var listener: String?
        var method = "GET"
        var host = RequestCorpus.anyHost
        var path = "/"
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var cookies: [(String, String)] = []
        /// What sets this request apart from the route's base request.
        var variant: String?

        func probe(_ source: String) -> BehaviourDiff.Probe {
            // Each string is allocated once (tens of thousands of probes are built).
            var url = concat("http://", host, path)
            if !query.isEmpty { url += "?" + query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&") }
            let request = DryRunRequest(method: method, url: url, headers: headers, cookies: cookies, listener: listener)
            var label: String
            if query.isEmpty && host.utf8.allSatisfy({ $0 < 0x80 }) && path.utf8.first == UInt8(ascii: "/") {
                // The URL after its host is the path: with an ASCII host and a path starting with
                // "/", characters and bytes count the same up to there.
                label = concat(method, " ", host, path)
            } else {
                label = "\(method) \(host)\(url.dropFirst(7 + host.utf8.count))"
            }
            for (n, v) in headers { label += " [\(n): \(v)]" }
            for (n, v) in cookies { label += " [cookie \(n)=\(v)]" }
            if let l = listener { label += " [listener \(l)]" }
            return BehaviourDiff.Probe(request: request, label: label, source: variant.map { concat(source, ", ", $0) } ?? source)
        }
    }

    static func derive(_ route: Route, _ snapshot: Snapshot, side: String, context: Context, into out: inout [BehaviourDiff.Probe]) {
        let m = route.match
        let source = "route \(route.id) (\(side))"
        // Where the route listens: each of its listeners, or (all listeners) the first one.
        let listeners: [String?] = m.listeners.map { set in
            set.sorted().compactMap { $0 < snapshot.listeners.count ? snapshot.listeners[$0].id : nil }
        } ?? [nil]

        var hosts: [(String, String?)] = []   // (host, variant)
        for h in m.hosts {
            switch h {
            case .exact(let name):
                hosts.append((name, nil))
            case .wildcard(let suffix):
                hosts.append(("www" + suffix, nil))
                hosts.append((String(suffix.dropFirst()), "the bare domain of *\(suffix)"))
            case .regex(let r):
                for s in RegexSample.samples(r.pattern) where h.matches(s) { hosts.append((s, nil)) }
            }
        }
        if hosts.isEmpty {
            hosts.append((anyHost, nil))
            for h in context.hosts { hosts.append((h, "a host other routes select")) }
        }

        var paths: [(String, String?)] = []
        switch m.path {
        case .none:
            paths.append(("/", nil))
        case .exact(let p)?:
            paths.append((p, nil))
            paths.append((p + "x", "one byte past the exact path"))
            if p.hasSuffix("/") && p.count > 1 {
                paths.append((String(p.dropLast()), "without the trailing slash"))
            } else {
                paths.append((p + "/", "with a trailing slash"))
            }
        case .prefix(let p)?:
            paths.append((p, nil))
            paths.append((p + (p.hasSuffix("/") ? "x" : "/x"), "under the prefix"))
            if p.count > 1 {
                paths.append((String(p.dropLast()), "one byte short of the prefix"))
                if !p.hasSuffix("/") { paths.append((p + "x", "the prefix and one byte more")) }
            }
        case .regex(let r)?:
            let pattern = PathPattern.regex(r)
            for s in RegexSample.samples(r.pattern) where pattern.matches(s) && s.hasPrefix("/") {
                paths.append((s, nil))
                paths.append((s + "x", "one byte past a regex sample"))
            }
        }

        var methods: [(String, String?)] = []
        if let set = m.methods {
            for method in set.map(\.description).sorted() { methods.append((method, nil)) }
            if let other = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"].first(where: { !set.contains(HTTPMethod($0)) }) {
                methods.append((other, "a method the route does not take"))
            }
        } else {
            methods.append(("GET", nil))
            for m in context.methods where m != "GET" { methods.append((m, "a method other routes select")) }
        }

        // The base request meets every predicate; each variant breaks one.
        var base = Draft()
        var predicateVariants: [(ValuePredicate.Source, String?, String)] = []
        for p in m.predicates {
            let (meet, breaks) = values(p.test)
            apply(p.source, meet, to: &base)
            for b in breaks { predicateVariants.append((p.source, b.0, describe(p.source) + " " + b.1)) }
        }

        for l in listeners {
            func emit(_ d: Draft) {
                var d = d
                d.listener = l
                out.append(d.probe(source))
            }
            guard let firstHost = hosts.first, let firstPath = paths.first, let firstMethod = methods.first else { continue }
            var b = base
            b.host = firstHost.0
            b.path = firstPath.0
            b.method = firstMethod.0
            emit(b)
            for h in hosts.dropFirst() { var d = b; d.host = h.0; d.variant = h.1; emit(d) }
            for p in paths.dropFirst() { var d = b; d.path = p.0; d.variant = p.1; emit(d) }
            for x in methods.dropFirst() { var d = b; d.method = x.0; d.variant = x.1; emit(d) }
            // A route's condition not met: with the other conditions of the base request kept.
            for (source, value, why) in predicateVariants {
                var d = b
                d.variant = why
                apply(source, value, to: &d)
                emit(d)
            }
        }
    }

    /// A value that meets the test (nil: leave it out), and values that break it.
    static func values(_ test: ValueTest) -> (String?, [(String?, String)]) {
        switch test {
        case .present: return ("1", [(nil, "without it")])
        case .absent: return (nil, [("1", "with it present")])
        case .exact(let v): return (v, [(v + "x", "another value"), (nil, "without it")])
        case .regex(let r):
            let sample = RegexSample.samples(r.pattern).first { r.matches($0) }
            return (sample ?? "1", [(nil, "without it")])
        }
    }

    static func apply(_ source: ValuePredicate.Source, _ value: String?, to d: inout Draft) {
        switch source {
        case .header(let n):
            d.headers.removeAll { $0.0.lowercased() == n.name.lowercased() }
            if let v = value { d.headers.append((n.name, v)) }
        case .query(let n):
            d.query.removeAll { $0.0 == n }
            if let v = value { d.query.append((n, v)) }
        case .cookie(let n):
            d.cookies.removeAll { $0.0 == n }
            if let v = value { d.cookies.append((n, v)) }
        }
    }

    static func describe(_ source: ValuePredicate.Source) -> String {
        switch source {
        case .header(let n): return "header \(n.name)"
        case .query(let n): return "query \(n)"
        case .cookie(let n): return "cookie \(n)"
        }
    }

    /// The strings joined, in one allocation (appending reallocates as the string grows).
    static func concat(_ parts: String...) -> String {
        var count = 0
        for p in parts { count += p.utf8.count }
        return String(unsafeUninitializedCapacity: count) { out in
            var i = 0
            for var p in parts {
                p.withUTF8 { src in
                    guard let from = src.baseAddress else { return }
                    (out.baseAddress! + i).update(from: from, count: src.count)
                    i += src.count
                }
            }
            return i
        }
    }

    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(b)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return out
    }
}
