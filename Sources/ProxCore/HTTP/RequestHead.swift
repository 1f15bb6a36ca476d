import NIOCore

/// How a message body is framed (RFC 9112 section 6).
public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int64)
    case chunked
    /// Response only: the body runs until the connection closes.
    case untilClose
}

/// A request head as a view over the bytes received.
///
/// The HTTP/1 framer records where the target and each header lie in `fields.bytes`; stages read
/// through `path`, `header(_:)`, `queryParameter(_:)`, `cookie(_:)` and edit through `fields` and
/// `setTarget(_:)`. The engine writes the head upstream once, applying the edits.
public struct RequestHead: Sendable {
    public var method: HTTPMethod
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and for a higher 1.x, which is handled as 1.1).
    public var versionMinor: UInt8
    /// Field lines the framer dropped before anyone saw them: names with `_` on a listener
    /// without `allow_underscores_in_headers`. Reported in the access log.
    public var droppedHeaders: UInt16 = 0
    public var fields: HeaderFields
    /// Where the request target lies in `fields.bytes`.
    public var targetStart: UInt32
    public var targetLength: UInt32
    /// Length of the path part of the target (up to `?` or the end).
    public var pathLength: UInt32
    /// Set by a rewrite: the target to send upstream instead of the received one.
    public var rewrittenTarget: String?
    /// Set by a host rewrite: the Host to send upstream.
    public var rewrittenHost: String?
    /// The Host header value (or the authority of an absolute-form target), lowercased, without
    /// a port. Empty when absent. Set by the framer, once.
    public var host: String
    public var framing: BodyFraming
    /// False when the client asked to close after this request (or HTTP/1.0 without keep-alive).
    public var keepAlive: Bool
    public var expectContinue: Bool
    /// The client asks for a WebSocket upgrade (RFC 6455 4.1: GET, HTTP/1.1, `Upgrade:
    /// websocket`, `Connection: upgrade`, no body). Set by the framer. The `Upgrade` and
    /// `Connection` lines themselves are hop-by-hop and marked removed; whether the upgrade is
    /// forwarded is the route's (`websocket`).
    public var upgradeWebSocket = false

    public init(method: HTTPMethod, versionMinor: UInt8, fields: HeaderFields, targetStart: Int, targetLength: Int,
                pathLength: Int, host: String, framing: BodyFraming, keepAlive: Bool, expectContinue: Bool) {
        self.method = method
        self.versionMinor = versionMinor
        self.fields = fields
        self.targetStart = UInt32(targetStart)
        self.targetLength = UInt32(targetLength)
        self.pathLength = UInt32(pathLength)
        self.host = host
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectContinue = expectContinue
    }

    /// Builds a head from parts, for dry-run, `prox check` and tests. The bytes are laid out the
    /// way the framer would record them.
    public static func make(method: HTTPMethod, target: String, headers: [(String, String)], versionMinor: UInt8 = 1) -> RequestHead {
        var buf = ByteBuffer()
        buf.writeString(method.description)
        buf.writeStaticString(" ")
        let tStart = buf.writerIndex
        buf.writeString(target)
        let tLen = buf.writerIndex - tStart
        buf.writeStaticString(" HTTP/1.1\r\n")
        var slots: [HeaderSlot] = []
        var host = ""
        for (n, v) in headers {
            let ns = buf.writerIndex
            buf.writeString(n)
            buf.writeStaticString(": ")
            let vs = buf.writerIndex
            buf.writeString(v)
            slots.append(HeaderSlot(nameStart: ns, nameLength: vs - 2 - ns, valueStart: vs, valueLength: buf.writerIndex - vs))
            buf.writeStaticString("\r\n")
            if n.lowercased() == "host" { host = normalizeHost(v) }
        }
        buf.writeStaticString("\r\n")
        let pathLen = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target.utf8.distance(from: target.utf8.startIndex, to: $0) } ?? target.utf8.count
        var framing = BodyFraming.none
        for (n, v) in headers where n.lowercased() == "content-length" { framing = .contentLength(Int64(v) ?? 0) }
        for (n, v) in headers where n.lowercased() == "transfer-encoding" && v.lowercased().hasSuffix("chunked") { framing = .chunked }
        return RequestHead(method: method, versionMinor: versionMinor, fields: HeaderFields(bytes: buf, slots: slots),
                           targetStart: tStart, targetLength: tLen, pathLength: pathLen, host: host,
                           framing: framing, keepAlive: true, expectContinue: false)
    }

    /// Lets go of the bytes received, keeping `emptyBytes` (an empty buffer) in their place,
    /// with the target and the received lines that pointed into them: a finished request's
    /// head, in a context the engine keeps for the connection's next request (a slice of the
    /// bytes would keep SwiftNIO from reusing the connection's receive buffer).
    package mutating func dropReceivedBytes(keeping emptyBytes: ByteBuffer) {
        fields.bytes = emptyBytes
        if !fields.slots.isEmpty { fields.slots = [] }
        targetStart = 0
        targetLength = 0
        pathLength = 0
    }

    // MARK: target

    /// Calls `body` with the bytes of the path (the target up to `?`), as received.
    @inlinable
    public func withPathBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        fields.bytes.withUnsafeReadableBytes { all in
            body(UnsafeRawBufferPointer(rebasing: all[Int(targetStart)..<Int(targetStart + pathLength)]))
        }
    }

    /// The path as received (not rewritten).
    public var path: String {
        fields.bytes.getString(at: fields.bytes.readerIndex + Int(targetStart), length: Int(pathLength)) ?? ""
    }

    /// The query string without `?`, or nil when the target has none.
    public var query: String? {
        guard pathLength < targetLength else { return nil }
        return fields.bytes.getString(at: fields.bytes.readerIndex + Int(targetStart + pathLength + 1),
                                      length: Int(targetLength - pathLength - 1))
    }

    /// The target as received.
    public var target: String {
        fields.bytes.getString(at: fields.bytes.readerIndex + Int(targetStart), length: Int(targetLength)) ?? ""
    }

    /// The target that will be sent upstream.
    public var effectiveTarget: String { rewrittenTarget ?? target }

    /// The path that will be sent upstream (after rewrites).
    public var effectivePath: String {
        guard let t = rewrittenTarget else { return path }
        if let q = t.firstIndex(of: "?") { return String(t[..<q]) }
        return t
    }

    /// Replaces the target sent upstream.
    public mutating func setTarget(_ target: String) { rewrittenTarget = target }

    // MARK: lookups

    /// The first value of a header, seeing stage edits.
    public func header(_ name: HeaderName) -> String? { fields.first(name) }

    /// The value of query parameter `name` (first occurrence, percent-decoding `+` and `%XX`),
    /// `""` when present without a value, nil when absent.
    public func queryParameter(_ name: String) -> String? {
        guard let q = query else { return nil }
        for pair in q.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if percentDecode(kv[0]) == name { return kv.count > 1 ? percentDecode(kv[1]) : "" }
        }
        return nil
    }

    /// The value of cookie `name` from the Cookie header(s), nil when absent.
    public func cookie(_ name: String) -> String? {
        for line in fields.all(.cookie) {
            for part in line.split(separator: ";") {
                let p = part.trimmingCharacters(in: " \t")
                guard let eq = p.firstIndex(of: "=") else { continue }
                if p[..<eq] == name { return String(p[p.index(after: eq)...]) }
            }
        }
        return nil
    }
}

/// Lowercases a Host value and drops its port (keeping IPv6 brackets).
public func normalizeHost<S: StringProtocol>(_ raw: S) -> String {
    var h = raw.lowercased()
    if h.hasPrefix("[") {
        if let end = h.firstIndex(of: "]") { h = String(h[...end]) }
    } else if let colon = h.lastIndex(of: ":") {
        h = String(h[..<colon])
    }
    if h.hasSuffix(".") { h.removeLast() }
    return h
}

/// Decodes `%XX` escapes and `+` (as space) in a query component. Invalid escapes stay as they are.
public func percentDecode<S: StringProtocol>(_ s: S) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(s.utf8.count)
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "+") { bytes.append(0x20); continue }
        if b == UInt8(ascii: "%"), it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1]) {
            bytes.append(hi << 4 | lo)
            it = it.dropFirst(2)
            continue
        }
        bytes.append(b)
    }
    return String(decoding: bytes, as: UTF8.self)
}

@inlinable
public func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
    default: return nil
    }
}
