import NIOCore

/// A response head: from the upstream (a view over its bytes) or made locally.
public struct ResponseHead: Sendable {
    public var status: Int
    /// The reason phrase to write; empty means the standard one for `status`.
    public var reason: String
    public var versionMinor: UInt8
    public var fields: HeaderFields
    public var framing: BodyFraming
    /// False when the upstream said `Connection: close` (or HTTP/1.0 without keep-alive).
    public var keepAlive: Bool
    /// The upstream's head had a `Date` line (set by the response parser). Without one, Prox
    /// adds the time it forwards the response (RFC 9110 §6.6.1).
    public var dated: Bool

    public init(status: Int, reason: String = "", versionMinor: UInt8 = 1, fields: HeaderFields = HeaderFields(),
                framing: BodyFraming = .none, keepAlive: Bool = true, dated: Bool = false) {
        self.status = status
        self.reason = reason
        self.versionMinor = versionMinor
        self.fields = fields
        self.framing = framing
        self.keepAlive = keepAlive
        self.dated = dated
    }

    public func header(_ name: HeaderName) -> String? { fields.first(name) }
}

/// Standard reason phrases for the status codes Prox writes itself.
public func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: return "Continue"
    case 101: return "Switching Protocols"
    case 200: return "OK"
    case 201: return "Created"
    case 204: return "No Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 303: return "See Other"
    case 304: return "Not Modified"
    case 307: return "Temporary Redirect"
    case 308: return "Permanent Redirect"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 408: return "Request Timeout"
    case 411: return "Length Required"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 417: return "Expectation Failed"
    case 421: return "Misdirected Request"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    case 505: return "HTTP Version Not Supported"
    default: return "Status \(status)"
    }
}
