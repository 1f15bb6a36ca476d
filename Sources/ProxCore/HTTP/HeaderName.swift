/// A header name prepared once, at config compile time: its canonical spelling for output and
/// its lowercase bytes for case-insensitive comparison against the bytes received.
///
/// A class, not a struct: header lines added on the hot path carry their name, and copying a
/// reference is one retain where the struct's String and array were two (measured with
/// callgrind: ~90 bridge-object retains per proxied request came from such copies).
public final class HeaderName: Hashable, Sendable, CustomStringConvertible {
    /// The spelling used when Prox writes this header.
    public let name: String
    /// ASCII-lowercased bytes of `name`, compared against received bytes.
    public let lowercased: [UInt8]
    /// The name is an RFC 9110 token (safe to write on the wire); decided once, here.
    public let isToken: Bool
    /// A bit of its own for the few names the engine asks about on every request (see
    /// `HeaderFields.addedHas`), 0 for others.
    public let knownBit: UInt32
    /// `name`'s UTF-8 bytes, as written.
    public let nameBytes: [UInt8]

    public init(_ name: String) {
        self.name = name
        self.nameBytes = Array(name.utf8)
        let lower = Array(name.utf8).map(asciiLower)
        self.lowercased = lower
        self.isToken = !name.isEmpty && name.utf8.allSatisfy(isTokenByte)
        self.knownBit = HeaderName.known.firstIndex(of: lower).map { UInt32(1) << UInt32($0) } ?? 0
    }

    static let known: [[UInt8]] = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via",
                                   "x-request-id", "expect", "content-length", "transfer-encoding",
                                   "connection"].map { Array($0.utf8) }

    /// The known bit of the name spelled by `bytes` (any case), 0 when it has none.
    public static func knownBit(ofLowercasedOrNot bytes: UnsafeRawBufferPointer) -> UInt32 {
        let lower = bytes.map(asciiLower)
        return known.firstIndex(of: lower).map { UInt32(1) << UInt32($0) } ?? 0
    }

    /// Names the writer owns (framing): lines a stage adds with these names are not written.
    public static let framingBits: UInt32 = contentLength.knownBit | transferEncoding.knownBit | connection.knownBit

    public var description: String { name }

    public static func == (a: HeaderName, b: HeaderName) -> Bool { a === b || a.lowercased == b.lowercased }
    public func hash(into h: inout Hasher) { h.combine(lowercased) }

    /// True when `bytes` spell this name, ignoring ASCII case.
    @inlinable
    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == lowercased.count else { return false }
        return lowercased.withUnsafeBufferPointer { mine in
            for i in 0..<bytes.count where asciiLower(bytes[i]) != mine[i] { return false }
            return true
        }
    }

    // Names the engine and built-in stages use; built once.
    public static let host = HeaderName("Host")
    public static let contentLength = HeaderName("Content-Length")
    public static let transferEncoding = HeaderName("Transfer-Encoding")
    public static let connection = HeaderName("Connection")
    public static let keepAlive = HeaderName("Keep-Alive")
    public static let expect = HeaderName("Expect")
    public static let te = HeaderName("TE")
    public static let trailer = HeaderName("Trailer")
    public static let upgrade = HeaderName("Upgrade")
    public static let proxyConnection = HeaderName("Proxy-Connection")
    public static let proxyAuthenticate = HeaderName("Proxy-Authenticate")
    public static let proxyAuthorization = HeaderName("Proxy-Authorization")
    public static let cookie = HeaderName("Cookie")
    public static let xRequestID = HeaderName("X-Request-Id")
    public static let xForwardedFor = HeaderName("X-Forwarded-For")
    public static let xForwardedProto = HeaderName("X-Forwarded-Proto")
    public static let xForwardedHost = HeaderName("X-Forwarded-Host")
    public static let via = HeaderName("Via")
    public static let contentType = HeaderName("Content-Type")
    public static let location = HeaderName("Location")
    public static let date = HeaderName("Date")
    public static let server = HeaderName("Server")
}

extension HeaderName {
    /// The `knownBit`s of the well-known names, as constants: the hot path tests them without
    /// reaching a `HeaderName` (passing `HeaderName.via` to a function retains and releases it,
    /// an atomic pair each time). `HeaderNameTests` checks them against `knownBit`.
    public enum Bit {
        public static let host: UInt32 = 1 << 0
        public static let xForwardedFor: UInt32 = 1 << 1
        public static let xForwardedProto: UInt32 = 1 << 2
        public static let xForwardedHost: UInt32 = 1 << 3
        public static let via: UInt32 = 1 << 4
    }

    /// Well-known names lent without a retain, for the hot path: the `static let`s live as long
    /// as the process, and an `Unmanaged` is loaded from a global as plain bits, where loading
    /// the reference itself retains it. `HeaderFields` takes them as it takes a name.
    public enum Lent {
        public static let host = Unmanaged.passUnretained(HeaderName.host)
        public static let xForwardedFor = Unmanaged.passUnretained(HeaderName.xForwardedFor)
        public static let xForwardedProto = Unmanaged.passUnretained(HeaderName.xForwardedProto)
        public static let xForwardedHost = Unmanaged.passUnretained(HeaderName.xForwardedHost)
        public static let via = Unmanaged.passUnretained(HeaderName.via)
    }
}

@inlinable @inline(__always)
public func asciiLower(_ b: UInt8) -> UInt8 {
    (b &- 0x41) < 26 ? b | 0x20 : b
}

/// RFC 9110 token characters (header names, methods).
@inlinable
public func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
         UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
         UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}
