import NIOCore
import ProxCore

/// Writes HTTP/1.1 heads and chunk framing. Heads are written once, applying the stages' edits:
/// runs of untouched received lines are copied as they are (one copy per run), removed lines
/// are skipped, added lines follow.
///
/// Body bytes are never copied by the chunk helpers meant for the hot path: write the small
/// framing buffer, then the data buffer, then the next framing buffer (`afterChunk: true` puts
/// the previous chunk's CRLF in front of the next size line, so one chunk costs one extra
/// buffer, not two).
public enum HTTP1Writer {
    // MARK: heads

    /// `METHOD target HTTP/1.1`, `Host`, the effective fields, the framing line, CRLF.
    ///
    /// - target: `head.rewrittenTarget`, else the received target (for an absolute-form request
    ///   the parser already recorded the origin-form part).
    /// - Host: `head.rewrittenHost`, else the first effective Host (received or set by a stage),
    ///   else empty (RFC 9112 3.2). Every other Host line is dropped, so exactly one is sent.
    /// - framing: `.contentLength(n)` writes `Content-Length: n`, `.chunked` writes
    ///   `Transfer-Encoding: chunked`, `.none`/`.untilClose` write nothing. Content-Length,
    ///   Transfer-Encoding and Connection lines added by stages are ignored: framing is the
    ///   writer's.
    public static func writeRequestHead(_ head: RequestHead, framing: BodyFraming, into out: inout ByteBuffer) {
        writeMethod(head.method, into: &out)
        out.writeInteger(h1SP)
        let fields = head.fields
        if let t = head.rewrittenTarget {
            writeTarget(t, into: &out)
        } else {
            fields.bytes.withUnsafeReadableBytes { all in
                _ = out.writeBytes(UnsafeRawBufferPointer(rebasing: all[Int(head.targetStart)..<Int(head.targetStart + head.targetLength)]))
            }
        }
        out.writeStaticString(" HTTP/1.1\r\nHost: ")
        if let h = head.rewrittenHost {
            writeFieldValue(h, into: &out)
        } else if let i = fields.firstSlot(.host) {
            fields.withValueBytes(ofSlot: i) { _ = out.writeBytes($0) }
        } else if let a = fields.added.first(where: { $0.name == .host }) {
            writeFieldValue(a.value, into: &out)
        }
        out.writeStaticString("\r\n")
        writeFields(fields, skipHost: true, into: &out)
        writeFraming(framing, into: &out)
        out.writeStaticString("\r\n")
    }

    /// `HTTP/1.1 status reason`, the effective fields, the framing line, the Connection line,
    /// CRLF. The reason is `head.reason` (the upstream's) or the standard phrase.
    ///
    /// - framing: as for requests. Pass `.none` for responses without a body (HEAD, 204, 304:
    ///   the parser keeps a received Content-Length line on HEAD and 304 responses). An
    ///   HTTP/1.0 client cannot read `.chunked`: use `.untilClose` and close.
    /// - keepAlive: false writes `Connection: close` (also written for `.untilClose`).
    /// - clientVersionMinor: the client's request version. For an HTTP/1.0 client (0) whose
    ///   connection is kept (it asked for keep-alive), `Connection: keep-alive` is written.
    /// - 1xx heads get neither framing nor Connection lines.
    public static func writeResponseHead(_ head: ResponseHead, framing: BodyFraming, keepAlive: Bool,
                                         clientVersionMinor: UInt8 = 1, into out: inout ByteBuffer) {
        out.writeStaticString("HTTP/1.1 ")
        let status = head.status
        if status >= 100 && status <= 999 {
            out.writeInteger(UInt8(ascii: "0") + UInt8(status / 100))
            out.writeInteger(UInt8(ascii: "0") + UInt8(status / 10 % 10))
            out.writeInteger(UInt8(ascii: "0") + UInt8(status % 10))
        } else {
            out.writeString(String(status))
        }
        out.writeInteger(h1SP)
        if head.reason.isEmpty { out.writeString(reasonPhrase(status)) } else { writeFieldValue(head.reason, into: &out) }
        out.writeStaticString("\r\n")
        writeFields(head.fields, skipHost: false, into: &out)
        if status >= 200 {
            writeFraming(framing, into: &out)
            if !keepAlive || framing == .untilClose {
                out.writeStaticString("Connection: close\r\n")
            } else if clientVersionMinor == 0 {
                out.writeStaticString("Connection: keep-alive\r\n")
            }
        }
        out.writeStaticString("\r\n")
    }

    // MARK: chunks

    /// `<hex size>\r\n`, preceded by the CRLF that ends the previous chunk's data when
    /// `afterChunk`. `size` must be > 0 (a zero size line is the last chunk).
    public static func writeChunkHeader(size: Int, afterChunk: Bool = false, into out: inout ByteBuffer) {
        precondition(size > 0, "a chunk of size 0 is the last chunk")
        if afterChunk { out.writeStaticString("\r\n") }
        writeHex(size, into: &out)
        out.writeStaticString("\r\n")
    }

    /// The CRLF that ends a chunk's data.
    public static func writeChunkEnd(into out: inout ByteBuffer) {
        out.writeStaticString("\r\n")
    }

    /// A whole chunk: size line, data (copied), CRLF. Nothing for empty data. Convenient for
    /// small bodies; the hot path writes `writeChunkHeader` then the data buffer itself.
    public static func writeChunk(_ data: ByteBuffer, into out: inout ByteBuffer) {
        guard data.readableBytes > 0 else { return }
        writeChunkHeader(size: data.readableBytes, into: &out)
        out.writeImmutableBuffer(data)
        out.writeStaticString("\r\n")
    }

    /// `0\r\n\r\n` (no trailers), preceded by the previous chunk's CRLF when `afterChunk`.
    public static func writeLastChunk(afterChunk: Bool = false, into out: inout ByteBuffer) {
        if afterChunk {
            out.writeStaticString("\r\n0\r\n\r\n")
        } else {
            out.writeStaticString("0\r\n\r\n")
        }
    }

    // MARK: parts

    @inline(__always)
    static func writeFraming(_ framing: BodyFraming, into out: inout ByteBuffer) {
        switch framing {
        case .contentLength(let n):
            out.writeStaticString("Content-Length: ")
            writeDecimal(n, into: &out)
            out.writeStaticString("\r\n")
        case .chunked:
            out.writeStaticString("Transfer-Encoding: chunked\r\n")
        case .none, .untilClose:
            break
        }
    }

    /// Writes the effective lines of `fields`. A received line laid out as `Name: value\r\n`
    /// (one space, no trailing whitespace) is copied with its CRLF, and consecutive such lines
    /// are copied in one piece.
    @inlinable
    public static func writeFields(_ fields: HeaderFields, skipHost: Bool, into out: inout ByteBuffer) {
        fields.bytes.withUnsafeReadableBytes { all in
            let count = all.count
            var runStart = 0
            var runEnd = 0
            @inline(__always) func flush(_ out: inout ByteBuffer) {
                if runEnd > runStart {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: all[runStart..<runEnd]))
                }
                runStart = 0
                runEnd = 0
            }
            for s in fields.slots {
                if s.removed { continue }
                let ns = Int(s.nameStart)
                let nl = Int(s.nameLength)
                if skipHost && nl == 4 && HeaderName.host.matches(UnsafeRawBufferPointer(rebasing: all[ns..<(ns + 4)])) {
                    continue
                }
                let vs = Int(s.valueStart)
                let ve = vs + Int(s.valueLength)
                if vs == ns + nl + 2 && ve + 2 <= count && all[ns + nl] == 0x3A && all[ns + nl + 1] == 0x20
                    && all[ve] == 0x0D && all[ve + 1] == 0x0A {
                    if runEnd == ns && runEnd > runStart {
                        runEnd = ve + 2
                    } else {
                        flush(&out)
                        runStart = ns
                        runEnd = ve + 2
                    }
                } else {
                    flush(&out)
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: all[ns..<(ns + nl)]))
                    out.writeStaticString(": ")
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: all[vs..<ve]))
                    out.writeStaticString("\r\n")
                }
            }
            flush(&out)
        }
        for a in fields.added {
            if isFramingName(a.name) || (skipHost && a.name == .host) || !isTokenName(a.name) { continue }
            out.writeString(a.name.name)
            out.writeStaticString(": ")
            writeFieldValue(a.value, into: &out)
            out.writeStaticString("\r\n")
        }
    }

    @inlinable
    static func isFramingName(_ n: HeaderName) -> Bool {
        switch n.lowercased.count {
        case 10: return n == .connection
        case 14: return n == .contentLength
        case 17: return n == .transferEncoding
        default: return false
        }
    }

    @inline(__always)
    static func writeMethod(_ m: HTTPMethod, into out: inout ByteBuffer) {
        switch m {
        case .get: out.writeStaticString("GET")
        case .head: out.writeStaticString("HEAD")
        case .post: out.writeStaticString("POST")
        case .put: out.writeStaticString("PUT")
        case .delete: out.writeStaticString("DELETE")
        case .connect: out.writeStaticString("CONNECT")
        case .options: out.writeStaticString("OPTIONS")
        case .trace: out.writeStaticString("TRACE")
        case .patch: out.writeStaticString("PATCH")
        case .other(let s): writeEscaped(s, safe: { h1IsToken($0) }, into: &out) // a token, unless a stage made it up
        }
    }

    /// Added names come from config or stages: a name that is not a token would corrupt the head
    /// (or inject lines), so such a line is dropped.
    @inlinable
    static func isTokenName(_ n: HeaderName) -> Bool {
        if n.lowercased.isEmpty { return false }
        for b in n.lowercased where !h1IsToken(b) { return false }
        return true
    }

    /// Writes a field value made by Prox (stage edits, a rewritten Host, a local reason phrase).
    /// CR, LF and NUL are replaced by SP (RFC 9110 5.5): a value built from request data (a
    /// percent-decoded query parameter, say) can never split the head.
    @inlinable
    public static func writeFieldValue(_ value: String, into out: inout ByteBuffer) {
        var v = value
        v.withUTF8 { u in
            var clean = true
            for b in u where b == 0x0D || b == 0x0A || b == 0 { clean = false; break }
            if clean {
                out.writeBytes(UnsafeRawBufferPointer(u))
                return
            }
            for b in u {
                out.writeInteger(b == 0x0D || b == 0x0A || b == 0 ? h1SP : b)
            }
        }
    }

    /// Writes a request target made by Prox (a rewrite). Bytes that cannot appear in a request
    /// line (controls, SP, DEL, non-ASCII, `#`) are percent-encoded, so a rewrite built from
    /// decoded request data cannot break the request line.
    @inlinable
    public static func writeTarget(_ target: String, into out: inout ByteBuffer) {
        writeEscaped(target, safe: { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }, into: &out)
    }

    /// Writes `s`, percent-encoding every byte `safe` rejects (`%` must be safe).
    @inlinable
    static func writeEscaped(_ s: String, safe: (UInt8) -> Bool, into out: inout ByteBuffer) {
        var t = s
        t.withUTF8 { u in
            var clean = true
            for b in u where !safe(b) { clean = false; break }
            if clean {
                out.writeBytes(UnsafeRawBufferPointer(u))
                return
            }
            let hex: StaticString = "0123456789ABCDEF"
            for b in u {
                if safe(b) {
                    out.writeInteger(b)
                } else {
                    out.writeInteger(UInt8(ascii: "%"))
                    out.writeInteger(hex.utf8Start[Int(b >> 4)])
                    out.writeInteger(hex.utf8Start[Int(b & 0xF)])
                }
            }
        }
    }

    static func writeDecimal(_ n: Int64, into out: inout ByteBuffer) {
        if n < 0 {
            out.writeInteger(UInt8(ascii: "-"))
            writeDecimal(n == Int64.min ? Int64.max : -n, into: &out) // unreachable for framing values
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes, enough for 19 digits
        var v = UInt64(n)
        withUnsafeMutableBytes(of: &digits) { d in
            var i = d.count
            repeat {
                i -= 1
                d[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            out.writeBytes(UnsafeRawBufferPointer(rebasing: d[i...]))
        }
    }

    static func writeHex(_ n: Int, into out: inout ByteBuffer) {
        var digits: (UInt64, UInt64) = (0, 0)
        var v = UInt(bitPattern: n)
        withUnsafeMutableBytes(of: &digits) { d in
            var i = d.count
            repeat {
                i -= 1
                let x = UInt8(v & 0xF)
                d[i] = x < 10 ? UInt8(ascii: "0") + x : UInt8(ascii: "a") + x - 10
                v >>= 4
            } while v > 0
            out.writeBytes(UnsafeRawBufferPointer(rebasing: d[i...]))
        }
    }
}
