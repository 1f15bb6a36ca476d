#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import ProxCore

/// Size limits the HTTP/1 framers enforce. Exceeding one is an error with the status noted on
/// each field (for responses from an upstream every error maps to 502).
public struct HTTP1Limits: Sendable, Equatable {
    /// Bytes of the field section (after the start line, including the final empty line). 431.
    /// Also the cap for a trailer section.
    public var maxHeaderBytes: Int
    /// Number of field lines. 431. Also the cap for trailer lines.
    public var maxHeaders: Int
    /// Bytes of the request target. 414. The request line as a whole may be `maxURIBytes + 64`.
    public var maxURIBytes: Int
    /// Bytes of a chunk-size line, extensions included (400 beyond).
    public var maxChunkLineBytes: Int
    /// Empty lines (CRLF) tolerated before a request line (RFC 9112 section 2.2). 400 beyond.
    public var maxLeadingEmptyLines: Int
    /// Request only. When false, a field line whose name contains `_` is dropped (counted in
    /// `RequestHead.droppedHeaders`, and still against `maxHeaders`): a backend that maps `_` to
    /// `-` (CGI) would otherwise read framing headers such as `Transfer_Encoding` that Prox did
    /// not act on. nginx's `underscores_in_headers off`.
    public var allowUnderscoresInHeaders: Bool

    public init(maxHeaderBytes: Int = 32 * 1024, maxHeaders: Int = 100, maxURIBytes: Int = 8 * 1024,
                maxChunkLineBytes: Int = 4096, maxLeadingEmptyLines: Int = 4, allowUnderscoresInHeaders: Bool = false) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.maxURIBytes = maxURIBytes
        self.maxChunkLineBytes = maxChunkLineBytes
        self.maxLeadingEmptyLines = maxLeadingEmptyLines
        self.allowUnderscoresInHeaders = allowUnderscoresInHeaders
    }

    public static let `default` = HTTP1Limits()
}

/// Why a message was rejected. `status` is what to answer a client with (request parser) or
/// 502 (response parser); after an error the connection must be closed.
public struct HTTP1ParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    /// Short, stable, metric-friendly: `malformed_request`, `header_too_large`, ...
    public var category: String
    /// Human-readable detail for logs (never sent to the client by the framer).
    public var detail: String

    public init(status: Int, category: String, detail: String) {
        self.status = status
        self.category = category
        self.detail = detail
    }

    public var description: String { "\(status) \(category): \(detail)" }

    // Categories.
    public static let malformedRequest = "malformed_request"
    public static let malformedResponse = "malformed_response"
    public static let malformedChunk = "malformed_chunk"
    public static let invalidFraming = "invalid_framing"
    public static let headerTooLarge = "header_too_large"
    public static let uriTooLong = "uri_too_long"
    public static let unsupportedTransferCoding = "unsupported_transfer_coding"
    public static let unsupportedVersion = "unsupported_version"
    public static let unsupportedMethod = "unsupported_method"
    public static let unsupportedTarget = "unsupported_target_form"
    public static let expectationFailed = "expectation_failed"
    public static let missingHost = "missing_host"
    public static let invalidHost = "invalid_host"
    public static let incompleteMessage = "incomplete_message"
    public static let unexpectedSwitchingProtocols = "unexpected_switching_protocols"

    @usableFromInline
    static func bad(_ detail: String) -> HTTP1ParseError {
        HTTP1ParseError(status: 400, category: malformedRequest, detail: detail)
    }
}

// MARK: byte classes

@usableFromInline let h1LF: UInt8 = 0x0A
@usableFromInline let h1CR: UInt8 = 0x0D
@usableFromInline let h1SP: UInt8 = 0x20
@usableFromInline let h1HTAB: UInt8 = 0x09
@usableFromInline let h1Colon: UInt8 = 0x3A

/// Per-byte class flags, one table lookup per byte in the hot loops.
@usableFromInline enum H1ByteClass {
    /// RFC 9110 tchar.
    @usableFromInline static let token: UInt8 = 1
    /// RFC 3986 pchar and "/" plus `%` (a path byte; not `?`).
    @usableFromInline static let path: UInt8 = 2
    /// Path bytes and `?` (a query byte).
    @usableFromInline static let query: UInt8 = 4
    /// RFC 3986 host [":" port]: unreserved, sub-delims, `:`, `[`, `]`, `%`.
    @usableFromInline static let host: UInt8 = 8
    /// `_` alone: lets the field-name scan notice an underscore at no extra cost per byte.
    @usableFromInline static let underscore: UInt8 = 16
}

/// The class of every byte value, as a literal: a constant in read-only data (no lazy global
/// initialization on the hot path). Generated from the RFC sets; `HTTP1ByteClassTests` checks it.
@usableFromInline
var h1ByteClasses: UnsafePointer<UInt8> {
    @inline(__always) get {
        let table: StaticString = "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{F}\u{0}\u{1}\u{F}\u{F}\u{F}\u{F}\u{E}\u{E}\u{F}\u{F}\u{E}\u{F}\u{F}\u{6}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{E}\u{E}\u{0}\u{E}\u{0}\u{4}\u{6}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{8}\u{0}\u{8}\u{1}\u{1F}\u{1}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{F}\u{0}\u{1}\u{0}\u{F}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}"
        return table.utf8Start
    }
}

@inline(__always) @usableFromInline
func h1IsToken(_ b: UInt8) -> Bool { h1ByteClasses[Int(b)] & H1ByteClass.token != 0 }

/// RFC 3986 pchar / query characters plus `%` (the escape introducer itself).
@inline(__always) @usableFromInline
func h1IsTarget(_ b: UInt8) -> Bool { h1ByteClasses[Int(b)] & H1ByteClass.query != 0 }

@inline(__always) @usableFromInline
func h1IsHost(_ b: UInt8) -> Bool { h1ByteClasses[Int(b)] & H1ByteClass.host != 0 }

@inline(__always) @usableFromInline
func h1IsOWS(_ b: UInt8) -> Bool { b == h1SP || b == h1HTAB }

/// Index of the first `byte` in `p[from..<to]`, or nil (memchr).
@inline(__always) @usableFromInline
func h1Find(_ byte: UInt8, _ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
    guard from < to, let base = p.baseAddress else { return nil }
    guard let hit = memchr(base + from, Int32(byte), to - from) else { return nil }
    return base.distance(to: UnsafeRawPointer(hit))
}

/// True when `p[from..<to]` holds only field-value bytes: HTAB, SP, VCHAR, obs-text (no CTL, no
/// DEL). Eight bytes at a time; a word that might hold a control byte is checked byte by byte.
@inline(__always) @usableFromInline
func h1IsFieldValue(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Bool {
    guard let base = p.baseAddress else { return from >= to }
    @inline(__always) func wordMayHoldControl(_ x: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lt20 = (x &- ones &* 0x20) & ~x & highs
        let y = x ^ (ones &* 0x7F)
        let eq7F = (y &- ones) & ~y & highs
        return lt20 | eq7F != 0
    }
    @inline(__always) func bytesValid(_ s: Int, _ e: Int) -> Bool {
        for j in s..<e {
            let b = p[j]
            if (b < h1SP && b != h1HTAB) || b == 0x7F { return false }
        }
        return true
    }
    let n = to - from
    if n < 8 { return bytesValid(from, to) }
    var i = from
    while i + 8 <= to {
        if wordMayHoldControl(base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) && !bytesValid(i, i + 8) {
            return false
        }
        i += 8
    }
    // The last, partial word: check the final 8 bytes (overlapping the ones already seen).
    if i < to && wordMayHoldControl(base.loadUnaligned(fromByteOffset: to - 8, as: UInt64.self)) {
        return bytesValid(to - 8, to)
    }
    return true
}

/// ASCII case-insensitive comparison of `p[start..<start+length]` with a lowercase literal.
///
/// Eight (or four) bytes at a time: OR-ing 0x20 into each byte lowercases a letter, and the
/// literal's bytes (lowercase letters, digits, `-`, `.`) already have that bit. Another byte
/// that OR-ing makes equal to one of them is a control byte (CR for `-`, 0x10-0x19 for a digit,
/// SO for `.`), and every caller compares bytes the parsers already checked hold none (token
/// names, field values, a request target): for them the result is the byte-by-byte one. The
/// byte-wise loop took 640 of the response head's 2,400 instructions (callgrind).
@inline(__always) @usableFromInline
func h1EqualsLower(_ p: UnsafeRawBufferPointer, _ start: Int, _ length: Int, _ lit: StaticString) -> Bool {
    guard length == lit.utf8CodeUnitCount else { return false }
    let l = UnsafeRawPointer(lit.utf8Start)
    if length < 4 {
        for i in 0..<length where asciiLower(p[start + i]) != l.load(fromByteOffset: i, as: UInt8.self) { return false }
        return true
    }
    let b = p.baseAddress.unsafelyUnwrapped + start
    precondition(start >= 0 && start + length <= p.count)
    if length < 8 {
        // Two words, overlapping when `length` < 8.
        let m: UInt32 = 0x2020_2020
        return b.loadUnaligned(as: UInt32.self) | m == l.loadUnaligned(as: UInt32.self)
            && b.loadUnaligned(fromByteOffset: length - 4, as: UInt32.self) | m == l.loadUnaligned(fromByteOffset: length - 4, as: UInt32.self)
    }
    let m: UInt64 = 0x2020_2020_2020_2020
    var i = 0
    while i + 8 < length {
        if b.loadUnaligned(fromByteOffset: i, as: UInt64.self) | m != l.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    // The last word ends at the end (overlapping the one before when `length` is not a multiple of 8).
    return b.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self) | m == l.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
}

/// Case-insensitive comparison of two byte ranges of `p`.
@inline(__always) @usableFromInline
func h1EqualsIgnoringCase(_ p: UnsafeRawBufferPointer, _ a: Int, _ b: Int, _ length: Int) -> Bool {
    for i in 0..<length where asciiLower(p[a + i]) != asciiLower(p[b + i]) { return false }
    return true
}

/// Calls `body(start, end)` for every non-empty element of a comma-separated list in
/// `p[from..<to]`, elements trimmed of OWS. Stops early when `body` returns false.
@inline(__always) @usableFromInline
func h1ForEachListElement(_ p: UnsafeRawBufferPointer, from: Int, to: Int, _ body: (Int, Int) -> Bool) {
    var i = from
    while i < to {
        var s = i
        while s < to && h1IsOWS(p[s]) { s += 1 }
        var e = s
        while e < to && p[e] != UInt8(ascii: ",") { e += 1 }
        let next = e + 1
        while e > s && h1IsOWS(p[e - 1]) { e -= 1 }
        if e > s && !body(s, e) { return }
        i = next
    }
}

/// Lowercased, port-less host (the same result as ProxCore's `normalizeHost`), built from bytes
/// with one small String.
@usableFromInline
func h1NormalizedHost(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> String {
    var end = to
    if from < to && p[from] == UInt8(ascii: "[") {
        if let close = h1Find(UInt8(ascii: "]"), p, from: from, to: to) { end = close + 1 }
    } else {
        var i = to
        while i > from {
            i -= 1
            if p[i] == h1Colon { end = i; break }
        }
    }
    if end > from && p[end - 1] == UInt8(ascii: ".") { end -= 1 }
    let n = end - from
    if n <= 0 { return "" }
    if n <= 32, let base = p.baseAddress {
        // Lowercased on the stack a word at a time (a byte at a time through a closure cost
        // about 130 instructions for `127.0.0.1`, callgrind), then one String.
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &words) { buf in
            buf.baseAddress!.copyMemory(from: base + from, byteCount: n)
            var k = 0
            while k < n {
                let w = buf.loadUnaligned(fromByteOffset: k, as: UInt64.self)
                buf.storeBytes(of: h1LowercaseASCII(w), toByteOffset: k, as: UInt64.self)
                k += 8
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: buf[0..<n]), as: UTF8.self)
        }
    }
    return String(unsafeUninitializedCapacity: n) { out in
        for i in 0..<n { out[i] = asciiLower(p[from + i]) }
        return n
    }
}

/// A connection's last Host, normalized. A keep-alive client sends the same Host with every
/// request, and making its String (small, but validated) cost about 300 instructions a request
/// (callgrind). A repeat is recognized by comparing the received bytes with the kept String,
/// which is all the cache holds (16 bytes a connection).
@usableFromInline
struct H1HostCache {
    /// The last host, when a received Host normalizes to it exactly when it is these bytes in
    /// any case, then nothing or `:` and a port: not empty, not ending in `.`, and either
    /// bracketed or free of `:` (`h1NormalizedHost` cuts at the last `:`, and at a final `.`).
    var host = ""

    /// `h1NormalizedHost(p, from:, to:)`, the kept String when the bytes are a repeat.
    @inline(__always) @usableFromInline
    mutating func normalized(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> String {
        if !host.isEmpty, let base = p.baseAddress, repeats(base + from, to - from) { return host }
        let h = h1NormalizedHost(p, from: from, to: to)
        host = Self.cacheable(h) ? h : ""
        return h
    }

    @inline(__always)
    private func repeats(_ raw: UnsafeRawPointer, _ n: Int) -> Bool {
        host.utf8.withContiguousStorageIfAvailable { kept in
            let k = kept.count
            guard n >= k, Self.lowercased(raw, equals: UnsafeRawBufferPointer(kept)) else { return false }
            if n == k { return true }
            guard raw.load(fromByteOffset: k, as: UInt8.self) == h1Colon else { return false }
            // One `:` only: the port's. `a:b` and `a:b:1` normalize differently.
            var i = k + 1
            while i < n {
                if raw.load(fromByteOffset: i, as: UInt8.self) == h1Colon { return false }
                i += 1
            }
            return true
        } ?? false
    }

    /// Whether the `kept.count` bytes at `raw`, `A`-`Z` lowercased, are `kept`.
    @inline(__always)
    static func lowercased(_ raw: UnsafeRawPointer, equals kept: UnsafeRawBufferPointer) -> Bool {
        let n = kept.count
        guard let k = kept.baseAddress else { return n == 0 }
        var i = 0
        while i + 8 <= n {
            if h1LowercaseASCII(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) != k.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                return false
            }
            i += 8
        }
        while i < n {
            if asciiLower(raw.load(fromByteOffset: i, as: UInt8.self)) != k.load(fromByteOffset: i, as: UInt8.self) { return false }
            i += 1
        }
        return true
    }

    static func cacheable(_ h: String) -> Bool {
        guard let first = h.utf8.first, h.utf8.last != UInt8(ascii: ".") else { return false }
        return first == UInt8(ascii: "[") || !h.utf8.contains(h1Colon)
    }
}

/// The eight bytes of `w` with `A`-`Z` lowercased; every other byte (non-ASCII included) is
/// left as it is.
@inline(__always) @usableFromInline
func h1LowercaseASCII(_ w: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let low7 = w & (ones &* 0x7F)
    let aboveZ = low7 &+ ones &* (0x7F - 0x5A)  // high bit set where the byte is above `Z`
    let atLeastA = low7 &+ ones &* (0x80 - 0x41)  // high bit set where the byte is `A` or above
    let upper = (atLeastA ^ aboveZ) & ~w & (ones &* 0x80)
    return w | (upper >> 2)
}

/// Parses a Content-Length value (a list of identical decimal numbers is allowed, RFC 9110 8.6).
/// Returns nil when malformed, differing or overflowing.
@usableFromInline
func h1ParseContentLength(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Int64? {
    var result: Int64? = nil
    var ok = true
    var any = false
    // An empty element ("5,,5" or ",") is malformed, unlike in other lists.
    var i = from
    while i <= to {
        var e = i
        while e < to && p[e] != UInt8(ascii: ",") { e += 1 }
        var s = i
        var t = e
        while s < t && h1IsOWS(p[s]) { s += 1 }
        while t > s && h1IsOWS(p[t - 1]) { t -= 1 }
        if s == t { ok = false; break }
        var v: Int64 = 0
        for j in s..<t {
            let d = p[j] &- UInt8(ascii: "0")
            if d > 9 { ok = false; break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            if o1 || o2 { ok = false; break }
            v = a
        }
        if !ok { break }
        if let r = result, r != v { ok = false; break }
        result = v
        any = true
        i = e + 1
    }
    return ok && any ? result : nil
}

/// How a Transfer-Encoding list ends up, accumulated over every Transfer-Encoding line.
@usableFromInline
struct H1TransferCodings {
    var present = false
    var chunkedCount = 0
    var lastIsChunked = false
    /// A coding Prox does not know (501).
    var unknown = false
    /// A known coding other than chunked (gzip, deflate, compress): Prox cannot forward a
    /// message whose framing it re-emits without them.
    var otherKnown = false
    var malformed = false

    @usableFromInline
    mutating func add(_ p: UnsafeRawBufferPointer, from: Int, to: Int) {
        present = true
        var sawElement = false
        h1ForEachListElement(p, from: from, to: to) { s, e in
            sawElement = true
            // transfer-coding = token *( OWS ";" OWS transfer-parameter )
            var nameEnd = s
            while nameEnd < e && h1IsToken(p[nameEnd]) { nameEnd += 1 }
            if nameEnd == s { malformed = true; return false }
            if nameEnd < e {
                var k = nameEnd
                while k < e && h1IsOWS(p[k]) { k += 1 }
                if k >= e || p[k] != UInt8(ascii: ";") { malformed = true; return false }
            }
            let n = nameEnd - s
            if h1EqualsLower(p, s, n, "chunked") {
                chunkedCount += 1
                lastIsChunked = nameEnd == e
                if nameEnd != e { malformed = true; return false } // chunked takes no parameters
                return true
            }
            lastIsChunked = false
            if h1EqualsLower(p, s, n, "gzip") || h1EqualsLower(p, s, n, "x-gzip") || h1EqualsLower(p, s, n, "deflate")
                || h1EqualsLower(p, s, n, "compress") || h1EqualsLower(p, s, n, "x-compress") {
                otherKnown = true
            } else {
                unknown = true
            }
            return true
        }
        if !sawElement { malformed = true }
    }

    /// nil when the codings are exactly `chunked`; otherwise the error.
    @usableFromInline
    func validate() -> HTTP1ParseError? {
        if malformed {
            return HTTP1ParseError(status: 400, category: HTTP1ParseError.invalidFraming, detail: "malformed Transfer-Encoding")
        }
        if unknown {
            return HTTP1ParseError(status: 501, category: HTTP1ParseError.unsupportedTransferCoding, detail: "unknown transfer coding")
        }
        if chunkedCount > 1 {
            return HTTP1ParseError(status: 400, category: HTTP1ParseError.invalidFraming, detail: "chunked applied more than once")
        }
        if !lastIsChunked {
            return HTTP1ParseError(status: 400, category: HTTP1ParseError.invalidFraming, detail: "final transfer coding is not chunked")
        }
        if otherKnown {
            return HTTP1ParseError(status: 501, category: HTTP1ParseError.unsupportedTransferCoding, detail: "transfer codings other than chunked are not supported")
        }
        return nil
    }
}
