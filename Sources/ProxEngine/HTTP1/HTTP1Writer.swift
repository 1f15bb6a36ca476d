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
    /// - upgrade: a WebSocket handshake the route forwards: `Connection: upgrade` and
    ///   `Upgrade: websocket` (the received ones are hop-by-hop and were not kept).
    public static func writeRequestHead(_ head: RequestHead, framing: BodyFraming, upgrade: Bool = false, into out: inout ByteBuffer) {
        let fields = head.fields
        var bound = HeadAssembler.fieldsBound(fields) + 96 + (upgrade ? 48 : 0)
        bound += 3 * (head.rewrittenTarget?.utf8.count ?? Int(head.targetLength))
        bound += head.rewrittenHost?.utf8.count ?? 0
        if case .other(let m) = head.method { bound += 3 * m.utf8.count }
        out.writeInPlace(minimumWritableBytes: bound) { buf in
            var w = HeadAssembler(buf.baseAddress!)
            switch head.method {
            case .get: w.put("GET ")
            case .head: w.put("HEAD ")
            case .post: w.put("POST ")
            case .put: w.put("PUT ")
            case .delete: w.put("DELETE ")
            case .connect: w.put("CONNECT ")
            case .options: w.put("OPTIONS ")
            case .trace: w.put("TRACE ")
            case .patch: w.put("PATCH ")
            case .other(let s):
                w.putEscaped(s, safe: { h1IsToken($0) })  // a token, unless a stage made it up
                w.put(byte: h1SP)
            }
            if let t = head.rewrittenTarget {
                w.putEscaped(t, safe: { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") })
            } else {
                fields.bytes.withUnsafeReadableBytes { all in
                    w.put(UnsafeRawBufferPointer(rebasing: all[Int(head.targetStart)..<Int(head.targetStart + head.targetLength)]))
                }
            }
            w.put(" HTTP/1.1\r\nHost: ")
            if let h = head.rewrittenHost {
                w.putValue(h)
            } else if let i = fields.firstSlot(HeaderName.Lent.host) {
                fields.withValueBytes(ofSlot: i) { w.put($0) }
            } else {
                _ = fields.withFirstAddedValue(.host) { w.put($0) }
            }
            w.put("\r\n")
            w.putFields(fields, skipHost: true)
            w.putFraming(framing)
            if upgrade { w.put("Connection: upgrade\r\nUpgrade: websocket\r\n") }
            w.put("\r\n")
            return w.i
        }
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
    /// - 1xx heads get neither framing nor Connection lines, except that `upgrade` (a `101`
    ///   switching to WebSocket) writes `Connection: upgrade` and `Upgrade: websocket`.
    /// - extraLines: whole header lines, CRLF-ended, written after the fields as they are (the
    ///   proxy's own `Via`, or `Date` and `Server` on its own answers, made once, not per head).
    public static func writeResponseHead(_ head: ResponseHead, framing: BodyFraming, keepAlive: Bool,
                                         clientVersionMinor: UInt8 = 1, upgrade: Bool = false, extraLines: [UInt8] = [],
                                         into out: inout ByteBuffer) {
        let status = head.status
        let bound = HeadAssembler.fieldsBound(head.fields) + 128 + head.reason.utf8.count + extraLines.count
        out.writeInPlace(minimumWritableBytes: bound) { buf in
            var w = HeadAssembler(buf.baseAddress!)
            w.put("HTTP/1.1 ")
            if status >= 100 && status <= 999 {
                w.put(byte: UInt8(ascii: "0") + UInt8(status / 100))
                w.put(byte: UInt8(ascii: "0") + UInt8(status / 10 % 10))
                w.put(byte: UInt8(ascii: "0") + UInt8(status % 10))
            } else {
                w.putDecimal(Int64(status))
            }
            w.put(byte: h1SP)
            if head.reason.isEmpty { w.putValue(reasonPhrase(status)) } else { w.putValue(head.reason) }
            w.put("\r\n")
            w.putFields(head.fields, skipHost: false)
            if !extraLines.isEmpty { extraLines.withUnsafeBytes { w.put($0) } }
            if status >= 200 {
                w.putFraming(framing)
                if !keepAlive || framing == .untilClose {
                    w.put("Connection: close\r\n")
                } else if clientVersionMinor == 0 {
                    w.put("Connection: keep-alive\r\n")
                }
            } else if upgrade {
                w.put("Connection: upgrade\r\nUpgrade: websocket\r\n")
            }
            w.put("\r\n")
            return w.i
        }
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

    /// Writes the effective lines of `fields`. A received line laid out as `Name: value\r\n`
    /// (one space, no trailing whitespace) is copied with its CRLF, and consecutive such lines
    /// are copied in one piece. Added lines named Content-Length, Transfer-Encoding or
    /// Connection are skipped (framing is the writer's), as are added names that are not
    /// tokens; CR, LF and NUL in added values become SP.
    public static func writeFields(_ fields: HeaderFields, skipHost: Bool, into out: inout ByteBuffer) {
        out.writeInPlace(minimumWritableBytes: HeadAssembler.fieldsBound(fields)) { buf in
            var w = HeadAssembler(buf.baseAddress!)
            w.putFields(fields, skipHost: skipHost)
            return w.i
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
