#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import ProxCore

/// What the response framer yields: any number of `.informational` (1xx other than 101), then
/// `.head`, zero or more `.body`, `.end`. `.error` is final.
public enum HTTP1ResponseEvent: Sendable {
    /// A 1xx interim response (100 Continue, 103 Early Hints...); the final head follows.
    case informational(ResponseHead)
    case head(ResponseHead)
    /// De-chunked payload, a slice of the input buffer (zero copy).
    case body(ByteBuffer)
    case end
    case error(HTTP1ParseError)
}

/// HTTP/1.0 and HTTP/1.1 response framing for upstream responses (RFC 9112), strict. Every
/// error carries status 502 (a bad upstream response).
///
/// Set `requestMethod` before each response is parsed: a response to HEAD has no body.
public struct HTTP1ResponseParser {
    public let limits: HTTP1Limits
    /// The method of the request this response answers.
    public var requestMethod: HTTPMethod
    /// The request asked for a WebSocket upgrade: a `101` with `Upgrade: websocket` and
    /// `Connection: upgrade` is its answer. Otherwise a `101` is an error.
    public var upgradeRequested = false

    @usableFromInline
    enum State {
        case head
        case endPending
        case fixed(remaining: Int64)
        case chunked
        case untilClose
        /// A `101` switched the connection to another protocol: nothing more is HTTP, the bytes
        /// left in the buffer belong to the tunnel.
        case upgraded
        case failed
    }

    @usableFromInline var state = State.head
    @usableFromInline var progress = H1HeadProgress()
    @usableFromInline var info = H1ResponseInfo()
    @usableFromInline var chunked = H1ChunkedDecoder()
    @usableFromInline var spares = H1Spares()

    public init(limits: HTTP1Limits = .default, requestMethod: HTTPMethod = .get) {
        self.limits = limits
        self.requestMethod = requestMethod
    }

    /// Takes back the arrays of a head this parser produced, once nothing reads it any more.
    public mutating func recycle(_ fields: inout HeaderFields) { spares.keep(&fields) }

    /// A fresh parser for the next response on the connection, keeping the spare arrays and the
    /// slot array's memory. Field by field: rebuilding the whole value destroyed and rebuilt
    /// each part (about 320 instructions a response; callgrind). `ResponseParserResetTests`
    /// compares the result with a new parser, field by field, so a field added here and not
    /// reset fails it.
    public mutating func reset(requestMethod: HTTPMethod, upgrade: Bool = false) {
        self.requestMethod = requestMethod
        upgradeRequested = upgrade
        state = .head
        progress.lineStart = 0
        progress.searchFrom = 0
        progress.sectionStart = -1
        progress.leadingEmptyLines = 0
        progress.droppedLines = 0
        progress.slots.removeAllKeepingStorage()
        info = H1ResponseInfo()
        chunked = H1ChunkedDecoder()
    }

    /// True between messages: nothing of a response was seen since the last `.end`.
    public var isIdle: Bool {
        if case .head = state { return !progress.started }
        return false
    }

    // The body cases mirror `HTTP1RequestParser.next` on purpose: a shared body state machine (plain or
    // generic over the event type) measured 500-700 more instructions per proxied request.
    @inline(__always)
    public mutating func next(_ buffer: inout ByteBuffer) -> HTTP1ResponseEvent? {
        switch state {
        case .head:
            return nextHead(&buffer)
        case .endPending:
            state = .head
            return .end
        case .fixed(let remaining):
            let readable = buffer.readableBytes
            guard readable > 0 else { return nil }
            let n = Int(min(Int64(readable), remaining))
            let slice = buffer.readSlice(length: n)!
            let left = remaining - Int64(n)
            state = left == 0 ? .endPending : .fixed(remaining: left)
            return .body(slice)
        case .chunked:
            switch chunked.next(&buffer, limits: limits, status: 502) {
            case .body(let b): return .body(b)
            case .end:
                state = .head
                return .end
            case .needMore: return nil
            case .error(let e):
                state = .failed
                return .error(e)
            }
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .failed, .upgraded:
            return nil
        }
    }

    /// The upstream closed its side. `.end` for a body delimited by the close; nil when nothing
    /// of a response was pending; otherwise an error (the response was cut short).
    public mutating func endOfInput() -> HTTP1ResponseEvent? {
        switch state {
        case .untilClose, .endPending:
            state = .head
            return .end
        case .head where !progress.started, .failed, .upgraded:
            return nil
        default:
            state = .failed
            return .error(HTTP1ParseError(status: 502, category: HTTP1ParseError.incompleteMessage, detail: "upstream closed mid-response"))
        }
    }

    // MARK: head

    @inline(__always)
    mutating func nextHead(_ buffer: inout ByteBuffer) -> HTTP1ResponseEvent? {
        let r = buffer.withUnsafeReadableBytes { scanHead($0) }
        switch r {
        case .needMore:
            return nil
        case .skip:
            preconditionFailure("response heads are not preceded by empty lines")
        case .error(let e):
            state = .failed
            return .error(e)
        case .complete(let length):
            return finishHead(&buffer, length: length)
        }
    }

    @inline(__always)
    static func bad(_ detail: String) -> HTTP1ParseError {
        HTTP1ParseError(status: 502, category: HTTP1ParseError.malformedResponse, detail: detail)
    }

    @usableFromInline
    mutating func scanHead(_ p: UnsafeRawBufferPointer) -> H1HeadScanResult {
        let count = p.count
        while true {
            guard let lf = h1Find(h1LF, p, from: progress.searchFrom, to: count) else {
                progress.searchFrom = count
                // Status line: its content is at least what arrived minus a final CR.
                let limit = progress.sectionStart < 0 ? limits.maxHeaderBytes + 1 : limits.maxHeaderBytes + progress.sectionStart
                if count > limit {
                    return .error(HTTP1ParseError(status: 502, category: HTTP1ParseError.headerTooLarge, detail: "response head too large"))
                }
                return .needMore
            }
            let ls = progress.lineStart
            progress.searchFrom = lf + 1
            // Size limits first: the verdict must not depend on how the bytes were split.
            if progress.sectionStart < 0 {
                if lf - ls - 1 > limits.maxHeaderBytes {
                    return .error(HTTP1ParseError(status: 502, category: HTTP1ParseError.headerTooLarge, detail: "status line too long"))
                }
            } else if lf + 1 - progress.sectionStart > limits.maxHeaderBytes {
                return .error(HTTP1ParseError(status: 502, category: HTTP1ParseError.headerTooLarge, detail: "header section too large"))
            }
            if lf == ls || p[lf - 1] != h1CR {
                return .error(Self.bad("line not ended by CRLF"))
            }
            let le = lf - 1
            if progress.sectionStart < 0 {
                if let e = parseStatusLine(p, ls, le) { return .error(e) }
                progress.sectionStart = lf + 1
                progress.lineStart = lf + 1
                continue
            }
            if le == ls { return .complete(lf + 1) }
            if progress.slots.count >= limits.maxHeaders {
                return .error(HTTP1ParseError(status: 502, category: HTTP1ParseError.headerTooLarge, detail: "too many header fields"))
            }
            switch h1ParseFieldLine(p, ls, le) {
            case .bad(let why):
                return .error(Self.bad(why))
            case .ok(var slot):
                if let e = interpret(p, &slot) { return .error(e) }
                progress.append(slot)
            }
            progress.lineStart = lf + 1
        }
    }

    /// HTTP-version SP status-code [SP reason-phrase]. The SP before an empty reason may be
    /// missing (seen in the wild).
    @usableFromInline
    mutating func parseStatusLine(_ p: UnsafeRawBufferPointer, _ s: Int, _ e: Int) -> HTTP1ParseError? {
        guard e - s >= 12, p[s + 8] == h1SP else { return Self.bad("malformed status line") }
        var unsupported = false
        guard let minor = h1ParseVersion(p, s, s + 8, unsupported: &unsupported) else {
            return unsupported
                ? HTTP1ParseError(status: 502, category: HTTP1ParseError.unsupportedVersion, detail: "upstream HTTP version not supported")
                : Self.bad("malformed HTTP version")
        }
        var status = 0
        for i in (s + 9)..<(s + 12) {
            let d = p[i] &- UInt8(ascii: "0")
            if d > 9 { return Self.bad("malformed status code") }
            status = status * 10 + Int(d)
        }
        if status < 100 || status > 599 { return Self.bad("status code out of range") }
        var rs = s + 12
        if rs < e {
            if p[rs] != h1SP { return Self.bad("malformed status line") }
            rs += 1
            if !h1IsFieldValue(p, from: rs, to: e) { return Self.bad("invalid byte in reason phrase") }
        }
        info.versionMinor = minor
        info.status = status
        info.reasonStart = rs
        info.reasonEnd = max(rs, e)
        return nil
    }

    @inline(__always) @usableFromInline
    mutating func interpret(_ p: UnsafeRawBufferPointer, _ slot: inout HeaderSlot) -> HTTP1ParseError? {
        let ns = Int(slot.nameStart)
        let n = Int(slot.nameLength)
        let vs = Int(slot.valueStart)
        let ve = vs + Int(slot.valueLength)
        switch n {
        case 2:
            if h1EqualsLower(p, ns, n, "te") { slot.removed = true }
        case 4:
            // Prox adds a `Date` to a forwarded response only without one (RFC 9110 §6.6.1).
            // One 32-bit compare: OR-ing 0x20 lowercases a letter, and only `D`/`d` give `d` (and
            // so on for `a`, `t`, `e`), so no other name matches.
            if p.loadUnaligned(fromByteOffset: ns, as: UInt32.self) | 0x2020_2020 == h1DateNameWord { info.dated = true }
        case 7:
            if h1EqualsLower(p, ns, n, "trailer") {
                slot.removed = true
            } else if h1EqualsLower(p, ns, n, "upgrade") {
                slot.removed = true
                h1ForEachListElement(p, from: vs, to: ve) { s, e in
                    if h1EqualsLower(p, s, e - s, "websocket") { info.upgradeWebSocket = true }
                    return true
                }
            }
        case 10:
            if h1EqualsLower(p, ns, n, "connection") {
                info.connection.add(p, from: vs, to: ve)
                slot.removed = true
            } else if h1EqualsLower(p, ns, n, "keep-alive") {
                slot.removed = true
            }
        case 14:
            if h1EqualsLower(p, ns, n, "content-length") {
                // Errors are decided once the head is complete: a response without a body
                // (HEAD, 204, 304) does not depend on it.
                if let v = h1ParseContentLength(p, from: vs, to: ve) {
                    if info.contentLength >= 0 && info.contentLength != v { info.contentLengthBad = true }
                    info.contentLength = v
                } else {
                    info.contentLengthBad = true
                }
                info.contentLengthSeen = true
                info.contentLengthSlots += 1
                slot.removed = true
            }
        case 16:
            if h1EqualsLower(p, ns, n, "proxy-connection") { slot.removed = true }
        case 17:
            if h1EqualsLower(p, ns, n, "transfer-encoding") {
                info.transferCodings.add(p, from: vs, to: ve)
                slot.removed = true
            }
        default:
            break
        }
        return nil
    }

    @usableFromInline
    mutating func finishHead(_ buffer: inout ByteBuffer, length: Int) -> HTTP1ResponseEvent {
        let info = self.info
        var slots = progress.slots
        progress = H1HeadProgress()
        progress.slots = spares.takeSlots()
        self.info = H1ResponseInfo()

        func fail(_ e: HTTP1ParseError) -> HTTP1ResponseEvent {
            state = .failed
            return .error(e)
        }

        let status = info.status
        if status == 101 {
            guard upgradeRequested else {
                return fail(HTTP1ParseError(status: 502, category: HTTP1ParseError.unexpectedSwitchingProtocols, detail: "101 without an upgrade request"))
            }
            let listsUpgrade = buffer.withUnsafeReadableBytes { h1ConnectionListsUpgrade(UnsafeRawBufferPointer(rebasing: $0[0..<length]), slots) }
            guard info.upgradeWebSocket, listsUpgrade else {
                return fail(HTTP1ParseError(status: 502, category: HTTP1ParseError.unexpectedSwitchingProtocols,
                                            detail: "101 without `Upgrade: websocket` and `Connection: upgrade`"))
            }
            // The head is the last HTTP on this connection; its Upgrade and Connection lines are
            // hop-by-hop (removed): the engine writes its own to the client.
            let head = buffer.readSlice(length: length)!
            state = .upgraded
            return .head(ResponseHead(status: 101, reason: "", versionMinor: info.versionMinor,
                                      fields: HeaderFields(bytes: head, slots: slots, addedStorage: spares.takeAdded()),
                                      framing: .none, keepAlive: false))
        }
        let interim = status < 200
        let noBody = interim || status == 204 || status == 304 || requestMethod == .head

        var framing = BodyFraming.none
        if !noBody {
            if info.transferCodings.present {
                if info.versionMinor == 0 {
                    return fail(HTTP1ParseError(status: 502, category: HTTP1ParseError.invalidFraming, detail: "Transfer-Encoding in an HTTP/1.0 response"))
                }
                if info.contentLengthSeen {
                    return fail(HTTP1ParseError(status: 502, category: HTTP1ParseError.invalidFraming, detail: "both Content-Length and Transfer-Encoding"))
                }
                if var e = info.transferCodings.validate() {
                    e.status = 502
                    return fail(e)
                }
                framing = .chunked
            } else if info.contentLengthSeen {
                if info.contentLengthBad {
                    return fail(HTTP1ParseError(status: 502, category: HTTP1ParseError.invalidFraming, detail: "malformed or conflicting Content-Length"))
                }
                framing = .contentLength(info.contentLength)
            } else {
                framing = .untilClose
            }
        }

        let head = buffer.readSlice(length: length)!
        var reason = ""
        head.withUnsafeReadableBytes { p in
            // HEAD and 304 keep a valid Content-Length: it describes the representation, and the
            // writer emits no framing of its own for a body-less response.
            if (status == 304 || requestMethod == .head) && info.contentLengthSeen && !info.contentLengthBad
                && !info.transferCodings.present && info.contentLengthSlots == 1 {
                for i in slots.indices where slots[i].nameLength == 14
                    && h1EqualsLower(p, Int(slots[i].nameStart), 14, "content-length") {
                    slots[i].removed = false
                }
            }
            if info.connection.other { h1RemoveConnectionListed(p, &slots) }
            if info.reasonEnd > info.reasonStart {
                let received = UnsafeRawBufferPointer(rebasing: p[info.reasonStart..<info.reasonEnd])
                // Nearly every upstream sends the standard phrase: that constant is used, no
                // String made from the bytes and validated.
                let standard = reasonPhrase(status)
                let same = standard.utf8.withContiguousStorageIfAvailable {
                    $0.count == received.count && memcmp($0.baseAddress!, received.baseAddress!, received.count) == 0
                } ?? false
                reason = same ? standard : String(decoding: received, as: UTF8.self)
            }
        }

        let keepAlive: Bool
        if framing == .untilClose {
            keepAlive = false
        } else if info.versionMinor == 1 {
            keepAlive = !info.connection.close
        } else {
            keepAlive = info.connection.keepAlive && !info.connection.close
        }
        let response = ResponseHead(status: status, reason: reason, versionMinor: info.versionMinor,
                                    fields: HeaderFields(bytes: head, slots: slots, addedStorage: spares.takeAdded()), framing: framing, keepAlive: keepAlive,
                                    dated: info.dated)
        if interim {
            state = .head
            return .informational(response)
        }
        switch framing {
        case .chunked: state = .chunked
        case .contentLength(let n) where n > 0: state = .fixed(remaining: n)
        case .untilClose: state = .untilClose
        default: state = .endPending
        }
        return .head(response)
    }
}

/// `date` as a little-endian 32-bit word.
@usableFromInline
let h1DateNameWord = UInt32(littleEndian: UInt32(0x64) | UInt32(0x61) << 8 | UInt32(0x74) << 16 | UInt32(0x65) << 24)

@usableFromInline
struct H1ResponseInfo {
    var status = 0
    var versionMinor: UInt8 = 1
    var reasonStart = 0
    var reasonEnd = 0
    var contentLength: Int64 = -1
    var contentLengthSeen = false
    var contentLengthBad = false
    var contentLengthSlots = 0
    var transferCodings = H1TransferCodings()
    var connection = H1ConnectionTokens()
    var upgradeWebSocket = false
    var dated = false
}
