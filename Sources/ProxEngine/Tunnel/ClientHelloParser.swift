import NIOCore

/// What a peek at the first bytes of a TLS connection found.
public enum ClientHelloPeek: Equatable, Sendable {
    /// The ClientHello is not complete yet.
    case needMore
    /// A whole ClientHello: its `server_name` (RFC 6066), lowercased and without a trailing dot;
    /// nil when it has none.
    case clientHello(serverName: String?)
    /// Not a ClientHello that a TLS server would accept (or larger than the bound): close.
    case invalid(String)
}

/// Finds the SNI of a TLS ClientHello without terminating TLS: TLS records (RFC 8446 5.1) ->
/// the handshake message, reassembled across records -> ClientHello (4.1.2) -> the
/// `server_name` extension. Channel-free, like the HTTP/1 framers: give it every byte received
/// so far (it reads them again from the start; a ClientHello is a few hundred bytes, at most a
/// few records) and read again on `.needMore`.
///
/// Strict where a TLS server is strict: records must be handshake records of a 3.x version and
/// of 1 to 2^14 bytes, the first message a ClientHello, every length consistent, no extension
/// twice, one host name in `server_name`. SSLv2-style hellos are refused.
public enum ClientHelloParser {
    static let recordHeader = 5
    static let maxRecord = 16_384

    /// - maxBytes: the most record bytes to look at; a ClientHello whose records need more is
    ///   `.invalid` (as soon as its announced lengths say so).
    public static func parse(_ buffer: ByteBuffer, maxBytes: Int) -> ClientHelloPeek {
        buffer.withUnsafeReadableBytes { parse($0, maxBytes: maxBytes) }
    }

    public static func parse(_ p: UnsafeRawBufferPointer, maxBytes: Int) -> ClientHelloPeek {
        // The handshake message, reassembled from the records' fragments.
        var message: [UInt8] = []
        var offset = 0
        while true {
            guard p.count - offset >= recordHeader else { return tooLarge(p.count, maxBytes) ?? .needMore }
            let type = p[offset]
            if offset == 0 && type & 0x80 != 0 { return .invalid("an SSLv2 ClientHello (not supported)") }
            guard type == 22 else { return .invalid(offset == 0 ? "not a TLS handshake record" : "a non-handshake record inside the ClientHello") }
            guard p[offset + 1] == 3 else { return .invalid("not a TLS record version") }
            let length = Int(p[offset + 3]) << 8 | Int(p[offset + 4])
            guard length > 0, length <= maxRecord else { return .invalid("record length \(length) out of range") }
            let end = offset + recordHeader + length
            if end > maxBytes { return .invalid("the ClientHello needs more than \(maxBytes) bytes") }
            guard end <= p.count else { return .needMore }
            message.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[(offset + recordHeader)..<end]))
            offset = end
            if message.count >= 4 {
                guard message[0] == 1 else { return .invalid("the first handshake message is not a ClientHello") }
                let bodyLength = Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3])
                // Each record carries at least one byte and a 5-byte header.
                if 4 + bodyLength > maxBytes { return .invalid("the ClientHello needs more than \(maxBytes) bytes") }
                if message.count >= 4 + bodyLength {
                    return message.withUnsafeBytes { m in
                        clientHello(UnsafeRawBufferPointer(rebasing: m[4..<(4 + bodyLength)]))
                    }
                }
            }
        }
    }

    private static func tooLarge(_ count: Int, _ maxBytes: Int) -> ClientHelloPeek? {
        count >= maxBytes ? .invalid("the ClientHello needs more than \(maxBytes) bytes") : nil
    }

    /// A cursor over the ClientHello body; every read checks its bounds.
    struct Reader {
        let p: UnsafeRawBufferPointer
        var i: Int
        let end: Int

        var remaining: Int { end - i }

        mutating func u8() -> Int? {
            guard i < end else { return nil }
            defer { i += 1 }
            return Int(p[i])
        }

        mutating func u16() -> Int? {
            guard end - i >= 2 else { return nil }
            defer { i += 2 }
            return Int(p[i]) << 8 | Int(p[i + 1])
        }

        /// A sub-reader over the next `n` bytes, which this one skips.
        mutating func take(_ n: Int) -> Reader? {
            guard n >= 0, end - i >= n else { return nil }
            defer { i += n }
            return Reader(p: p, i: i, end: i + n)
        }
    }

    static func clientHello(_ body: UnsafeRawBufferPointer) -> ClientHelloPeek {
        var r = Reader(p: body, i: 0, end: body.count)
        guard let major = r.u8(), r.u8() != nil, major == 3 else { return .invalid("bad ClientHello version") }
        guard r.take(32) != nil else { return .invalid("truncated ClientHello random") }
        guard let sid = r.u8(), sid <= 32, r.take(sid) != nil else { return .invalid("bad session id") }
        guard let suites = r.u16(), suites >= 2, suites % 2 == 0, r.take(suites) != nil else { return .invalid("bad cipher suites") }
        guard let comp = r.u8(), comp >= 1, r.take(comp) != nil else { return .invalid("bad compression methods") }
        if r.remaining == 0 { return .clientHello(serverName: nil) }
        guard let extLength = r.u16(), extLength == r.remaining, var exts = r.take(extLength) else {
            return .invalid("bad extensions length")
        }
        var seen: Set<Int> = []
        var serverName: String? = nil
        while exts.remaining > 0 {
            guard let type = exts.u16(), let length = exts.u16(), var data = exts.take(length) else {
                return .invalid("truncated extension")
            }
            guard seen.insert(type).inserted else { return .invalid("extension \(type) appears twice") }
            guard type == 0 else { continue }
            // server_name: ServerNameList<1..2^16-1> of (name_type, HostName<1..2^16-1>).
            guard let listLength = data.u16(), listLength > 0, listLength == data.remaining else {
                return .invalid("bad server_name list")
            }
            while data.remaining > 0 {
                guard let nameType = data.u8(), nameType == 0 else { return .invalid("unknown server_name type") }
                guard let n = data.u16(), n > 0, n <= 255, let name = data.take(n) else { return .invalid("bad host name length") }
                guard serverName == nil else { return .invalid("two host names in server_name") }
                var bytes: [UInt8] = []
                bytes.reserveCapacity(n)
                for k in name.i..<name.end {
                    var b = body[k]
                    // Printable ASCII only (RFC 6066: ASCII, no trailing dot in principle).
                    guard b > 0x20, b < 0x7F else { return .invalid("a host name byte out of range") }
                    if b >= 0x41 && b <= 0x5A { b |= 0x20 }
                    bytes.append(b)
                }
                if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
                guard !bytes.isEmpty else { return .invalid("an empty host name") }
                serverName = String(decoding: bytes, as: UTF8.self)
            }
        }
        return .clientHello(serverName: serverName)
    }
}
