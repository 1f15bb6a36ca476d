import ProxCore
import ProxRegex

/// A route's `rewrite`, compiled: runs after the route's chain stages, so dry-run traces it.
/// Changes the target sent upstream (keeping the query string) and the Host sent upstream.
public struct RewriteStage: Stage {
    /// Replace the prefix the route matched with another.
    public let prefix: (matched: String, replacement: String)?
    /// Substitute the first match in the path (`$1`, `${name}` in the replacement).
    public let pathRegex: (regex: Regex, replacement: String)?
    public let host: Template?

    public init(prefix: (matched: String, replacement: String)?, pathRegex: (regex: Regex, replacement: String)?, host: Template?) {
        self.prefix = prefix
        self.pathRegex = pathRegex
        self.host = host
    }

    public var kind: String { "rewrite" }

    public func request(_ ctx: RequestContext) -> Verdict {
        let original = ctx.head.effectivePath
        var path = original
        var prefixApplied = false
        var regexMatched = false
        if let p = prefix, path.utf8.starts(with: p.matched.utf8) {
            path = p.replacement + String(decoding: path.utf8.dropFirst(p.matched.utf8.count), as: UTF8.self)
            prefixApplied = true
        }
        if let r = pathRegex, let s = (try? r.regex.substitute(path, r.replacement)) ?? nil {
            path = s
            regexMatched = true
        }
        if path.isEmpty { path = "/" } else if !path.hasPrefix("/") && original.hasPrefix("/") { path = "/" + path }
        if path != original {
            let q = ctx.head.query
            ctx.head.setTarget(q.map { path + "?" + $0 } ?? path)
        }
        var hostValue: String?
        if let h = host {
            let v = h.render(ctx)
            ctx.head.rewrittenHost = v
            hostValue = v
        }
        // The explanation is built only for a trace (dry-run), not per request.
        if ctx.isTracing {
            var decided = path == original ? "path kept \(path)" : "path \(original) -> \(path)"
            var why: [String] = []
            if prefixApplied, let p = prefix { why.append("prefix \(p.matched) -> \(p.replacement)") }
            if let r = pathRegex {
                why.append(regexMatched ? "regex \(r.regex.pattern) -> \(r.replacement)"
                                        : "regex \(r.regex.pattern) does not match; path kept")
            }
            if let h = host, let v = hostValue {
                decided += ", host \(v)"
                why.append("host template \(h.source)")
            }
            ctx.record(kind, looked: "path \(original)", decided: decided, why: why.joined(separator: "; "))
        }
        return .next
    }
}
