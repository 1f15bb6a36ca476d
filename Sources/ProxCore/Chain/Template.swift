/// A string with `{variable}` holes, parsed once by the config compiler and rendered per request.
///
/// Variables: `{client_ip}`, `{request_id}`, `{host}`, `{path}` (as received), `{target}`,
/// `{method}`, `{scheme}`, `{route}`, `{query}`, `{header.NAME}`, `{query.NAME}`,
/// `{cookie.NAME}`, and the captures of the route's regexes: `{path.1}`, `{path.NAME}`,
/// `{host.1}`, `{host.NAME}`, and on a listener asking for client certificates, the verified
/// certificate's `{tls.client_subject}` and `{tls.client_san}` (empty without one). `{{` and `}}` are literal braces. An unknown variable is a
/// compile error with its offset; a variable with no value renders as the empty string.
public struct Template: Sendable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case clientIP, requestID, host, path, target, method, scheme, route, query
        case header(HeaderName)
        case queryParam(String)
        case cookie(String)
        case pathCapture(Int)
        case hostCapture(Int)
        case tlsClientSubject, tlsClientSAN
    }

    public let source: String
    public let parts: [Part]
    /// Set when the template has no variables: rendering returns it with no work.
    public let constant: String?
    /// Set when the template is `{request_id}` alone: `withRendered` lends the id's bytes, and
    /// a header edit can write it with `RequestContext.writeRequestID`.
    public let isRequestIDAlone: Bool

    public var description: String { source }
    public var usesPathCaptures: Bool { parts.contains { if case .pathCapture = $0 { return true }; return false } }
    public var usesHostCaptures: Bool { parts.contains { if case .hostCapture = $0 { return true }; return false } }

    /// Where a template names something it cannot resolve.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// Byte offset inside the template source.
        public let offset: Int
        public let message: String
        public var description: String { message }
    }

    /// Names of capture groups the route's regexes define, for checking `{path.NAME}` and
    /// `{host.NAME}` at compile time. nil means the route has no such regex.
    public struct CaptureScope: Sendable {
        public var pathGroups: (count: Int, names: [String: Int])?
        public var hostGroups: (count: Int, names: [String: Int])?
        public init(pathGroups: (count: Int, names: [String: Int])? = nil, hostGroups: (count: Int, names: [String: Int])? = nil) {
            self.pathGroups = pathGroups
            self.hostGroups = hostGroups
        }
        public static let none = CaptureScope()
    }

    public static let variableNames = ["client_ip", "request_id", "host", "path", "target", "method", "scheme", "route", "query",
                                       "header.NAME", "query.NAME", "cookie.NAME", "path.N", "host.N", "tls.client_subject", "tls.client_san"]

    public init(_ source: String, scope: CaptureScope = .none) throws(ParseError) {
        self.source = source
        var parts: [Part] = []
        var lit = ""
        let u = Array(source.utf8)
        var i = 0
        while i < u.count {
            let c = u[i]
            if c == UInt8(ascii: "{") {
                if i + 1 < u.count && u[i + 1] == UInt8(ascii: "{") { lit.append("{"); i += 2; continue }
                guard let close = u[(i + 1)...].firstIndex(of: UInt8(ascii: "}")) else {
                    throw ParseError(offset: i, message: "unclosed '{' (write '{{' for a literal brace)")
                }
                let name = String(decoding: u[(i + 1)..<close], as: UTF8.self)
                let part = try Template.resolve(name, offset: i, scope: scope)
                if !lit.isEmpty { parts.append(.literal(lit)); lit = "" }
                parts.append(part)
                i = close + 1
            } else if c == UInt8(ascii: "}") {
                if i + 1 < u.count && u[i + 1] == UInt8(ascii: "}") { lit.append("}"); i += 2; continue }
                throw ParseError(offset: i, message: "unmatched '}' (write '}}' for a literal brace)")
            } else {
                // Copy a run of plain bytes at once.
                var j = i
                while j < u.count && u[j] != UInt8(ascii: "{") && u[j] != UInt8(ascii: "}") { j += 1 }
                lit += String(decoding: u[i..<j], as: UTF8.self)
                i = j
            }
        }
        if !lit.isEmpty { parts.append(.literal(lit)) }
        self.parts = parts
        if parts.isEmpty { constant = "" } else if parts.count == 1, case .literal(let s) = parts[0] { constant = s } else { constant = nil }
        isRequestIDAlone = parts == [.requestID]
    }

    static func resolve(_ name: String, offset: Int, scope: CaptureScope) throws(ParseError) -> Part {
        switch name {
        case "client_ip": return .clientIP
        case "request_id": return .requestID
        case "host": return .host
        case "path": return .path
        case "target": return .target
        case "method": return .method
        case "scheme": return .scheme
        case "route": return .route
        case "query": return .query
        default: break
        }
        guard let dot = name.firstIndex(of: ".") else {
            throw ParseError(offset: offset, message: "unknown variable {\(name)}\(suggest(name)); known: \(variableNames.joined(separator: ", "))")
        }
        let ns = String(name[..<dot]), arg = String(name[name.index(after: dot)...])
        guard !arg.isEmpty else { throw ParseError(offset: offset, message: "{\(name)} needs a name after the dot") }
        switch ns {
        case "header":
            guard arg.utf8.allSatisfy(isTokenByte) else { throw ParseError(offset: offset, message: "'\(arg)' is not a valid header name") }
            return .header(HeaderName(arg))
        case "query": return .queryParam(arg)
        case "cookie": return .cookie(arg)
        case "tls":
            switch arg {
            case "client_subject": return .tlsClientSubject
            case "client_san": return .tlsClientSAN
            default: throw ParseError(offset: offset, message: "unknown variable {\(name)}; known: {tls.client_subject}, {tls.client_san}")
            }
        case "path", "host":
            let groups = ns == "path" ? scope.pathGroups : scope.hostGroups
            guard let g = groups else {
                throw ParseError(offset: offset, message: "{\(name)} needs the route to match the \(ns) with a regex (\(ns == "path" ? "match.path.regex" : "match.host regex"))")
            }
            if let n = Int(arg) {
                guard n >= 0 && n <= g.count else { throw ParseError(offset: offset, message: "{\(name)}: the \(ns) regex has \(g.count) group(s)") }
                return ns == "path" ? .pathCapture(n) : .hostCapture(n)
            }
            guard let n = g.names[arg] else {
                let known = g.names.keys.sorted()
                throw ParseError(offset: offset, message: "{\(name)}: the \(ns) regex has no group named '\(arg)'" + (known.isEmpty ? "" : "; named groups: \(known.joined(separator: ", "))"))
            }
            return ns == "path" ? .pathCapture(n) : .hostCapture(n)
        default:
            throw ParseError(offset: offset, message: "unknown variable {\(name)}\(suggest(name)); known: \(variableNames.joined(separator: ", "))")
        }
    }

    static func suggest(_ name: String) -> String {
        let plain = ["client_ip", "request_id", "host", "path", "target", "method", "scheme", "route", "query"]
        if let best = plain.min(by: { editDistance($0, name) < editDistance($1, name) }), editDistance(best, name) <= 2 {
            return " (did you mean {\(best)}?)"
        }
        return ""
    }

    /// Renders against a request and lends the value's bytes. `{request_id}` alone lends a
    /// generated id's digits without making a `String` (a heap allocation a request).
    @inlinable
    public func withRendered<R>(_ ctx: RequestContext, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if isRequestIDAlone { return ctx.withRequestIDBytes(body) }
        let v = render(ctx)
        if let r = v.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(v.utf8).withUnsafeBytes(body)
    }

    /// Renders against a request.
    @inlinable
    public func render(_ ctx: RequestContext) -> String {
        if let c = constant { return c }
        // A template that is one variable (`{request_id}`) returns the value itself: no copy.
        if parts.count == 1 {
            switch parts[0] {
            case .clientIP: return ctx.clientIPText
            case .requestID: return ctx.requestID
            case .host: return ctx.head.host
            case .route: return ctx.route?.id ?? ""
            case .tlsClientSubject: return ctx.tlsClient?.subject ?? ""
            default: break
            }
        }
        var out = ""
        for p in parts {
            switch p {
            case .literal(let s): out += s
            case .clientIP: out += ctx.clientIPText
            case .requestID: out += ctx.requestID
            case .host: out += ctx.head.host
            case .path: out += ctx.head.path
            case .target: out += ctx.head.target
            case .method: out += ctx.head.method.description
            case .scheme: out += ctx.scheme
            case .route: out += ctx.route?.id ?? ""
            case .query: out += ctx.head.query ?? ""
            case .header(let n): out += ctx.head.header(n) ?? ""
            case .queryParam(let n): out += ctx.head.queryParameter(n) ?? ""
            case .cookie(let n): out += ctx.head.cookie(n) ?? ""
            case .pathCapture(let i): if i < ctx.pathCaptures.count { out += ctx.pathCaptures[i] ?? "" }
            case .hostCapture(let i): if i < ctx.hostCaptures.count { out += ctx.hostCaptures[i] ?? "" }
            case .tlsClientSubject: out += ctx.tlsClient?.subject ?? ""
            case .tlsClientSAN: out += ctx.tlsClient?.san ?? ""
            }
        }
        return out
    }
}

/// Levenshtein distance, for did-you-mean hints.
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.utf8), y = Array(b.utf8)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var prev = Array(0...y.count), cur = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        cur[0] = i
        for j in 1...y.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[y.count]
}

/// The closest candidate within a small distance, for did-you-mean hints.
public func closest(_ name: String, in candidates: some Sequence<String>) -> String? {
    var best: (String, Int)? = nil
    for c in candidates {
        let d = editDistance(name.lowercased(), c.lowercased())
        if d <= max(2, name.count / 3), best == nil || d < best!.1 { best = (c, d) }
    }
    return best?.0
}
