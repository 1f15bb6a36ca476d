import ProxRegex

/// How a route matches the Host.
public enum HostPattern: Sendable, CustomStringConvertible {
    /// Lowercased, no port.
    case exact(String)
    /// `*.example.com`, stored as the suffix `.example.com`: matches `a.example.com` and
    /// `a.b.example.com`, not `example.com`.
    case wildcard(suffix: String)
    /// PCRE2, matched against the whole lowercased host (the compiler anchors it).
    case regex(Regex)

    public var description: String {
        switch self {
        case .exact(let h): return h
        case .wildcard(let s): return "*" + s
        case .regex(let r): return "~" + r.pattern
        }
    }

    /// Exact and wildcard compare UTF-8 bytes (not Unicode-equivalent characters), as the
    /// compiled router does.
    public func matches(_ host: String) -> Bool {
        switch self {
        case .exact(let h): return host.utf8.elementsEqual(h.utf8)
        case .wildcard(let s):
            return host.utf8.count > s.utf8.count && host.utf8.reversed().starts(with: s.utf8.reversed())
        case .regex(let r): return r.matches(host)
        }
    }
}

/// How a route matches the path (the target up to `?`, as received).
public enum PathPattern: Sendable, CustomStringConvertible {
    case exact(String)
    case prefix(String)
    /// PCRE2 search semantics on the path as received: unanchored unless the pattern says `^`.
    case regex(Regex)

    public var description: String {
        switch self {
        case .exact(let p): return "= " + p
        case .prefix(let p): return p + "*"
        case .regex(let r): return "~ " + r.pattern
        }
    }

    /// Exact and prefix compare UTF-8 bytes (not Unicode-equivalent characters), as the
    /// compiled router does.
    public func matches(_ path: String) -> Bool {
        switch self {
        case .exact(let p): return path.utf8.elementsEqual(p.utf8)
        case .prefix(let p): return path.utf8.starts(with: p.utf8)
        case .regex(let r): return r.matches(path)
        }
    }
}

/// A test on one header, query parameter or cookie.
public enum ValueTest: Sendable, CustomStringConvertible {
    case present
    case absent
    case exact(String)
    case regex(Regex)

    public func holds(_ value: String?) -> Bool {
        switch self {
        case .present: return value != nil
        case .absent: return value == nil
        case .exact(let s): return value == s
        case .regex(let r): return value.map { r.matches($0) } ?? false
        }
    }

    public var description: String {
        switch self {
        case .present: return "present"
        case .absent: return "absent"
        case .exact(let s): return "= \"\(s)\""
        case .regex(let r): return "~ \(r.pattern)"
        }
    }
}

public struct ValuePredicate: Sendable {
    public enum Source: Sendable { case header(HeaderName), query(String), cookie(String) }
    public var source: Source
    public var test: ValueTest

    public init(_ source: Source, _ test: ValueTest) {
        self.source = source
        self.test = test
    }

    public func value(in head: RequestHead) -> String? {
        switch source {
        case .header(let n): return head.header(n)
        case .query(let n): return head.queryParameter(n)
        case .cookie(let n): return head.cookie(n)
        }
    }

    public func holds(_ head: RequestHead) -> Bool { test.holds(value(in: head)) }

    public var description: String {
        switch source {
        case .header(let n): return "header \(n.name) \(test)"
        case .query(let n): return "query \(n) \(test)"
        case .cookie(let n): return "cookie \(n) \(test)"
        }
    }
}

/// Everything a route's `match` says, compiled (regexes built, names canonicalised).
/// Within a field, alternatives are ORed (any host, any method); across fields, ANDed.
public struct RouteMatchSpec: Sendable {
    /// Empty: any host.
    public var hosts: [HostPattern]
    /// nil: any path.
    public var path: PathPattern?
    /// nil: any method.
    public var methods: Set<HTTPMethod>?
    /// Every predicate must hold.
    public var predicates: [ValuePredicate]
    /// Listener indices this route applies to; nil: all.
    public var listeners: Set<Int>?

    public init(hosts: [HostPattern] = [], path: PathPattern? = nil, methods: Set<HTTPMethod>? = nil,
                predicates: [ValuePredicate] = [], listeners: Set<Int>? = nil) {
        self.hosts = hosts
        self.path = path
        self.methods = methods
        self.predicates = predicates
        self.listeners = listeners
    }

    /// Why this spec does not match the request, or nil when it does. The single definition of
    /// "matches" that the compiled router, the reference matcher and dry-run's explanations share.
    public func mismatch(_ head: RequestHead, listener: Int) -> String? {
        if let l = listeners, !l.contains(listener) { return "listener not in this route's listeners" }
        if !hosts.isEmpty && !hosts.contains(where: { $0.matches(head.host) }) {
            return "host '\(head.host)' is not \(hosts.map(\.description).joined(separator: " | "))"
        }
        if let p = path, !p.matches(head.path) { return "path '\(head.path)' does not match \(p)" }
        if let m = methods, !m.contains(head.method) {
            return "method \(head.method) is not \(m.map(\.description).sorted().joined(separator: "|"))"
        }
        for p in predicates where !p.holds(head) { return "\(p.description) does not hold" }
        return nil
    }
}
