import NIOCore
import ProxCore

/// Where an incremental head scan stands. Offsets are relative to the buffer's readerIndex,
/// which does not move until the whole head is there (it is then sliced out in one piece), so
/// a caller may `discardReadBytes()` between calls.
@usableFromInline
struct H1HeadProgress {
    /// Start of the first line not parsed yet.
    var lineStart = 0
    /// Where the search for the next LF resumes: bytes before it were already searched, so a head
    /// trickled in byte by byte costs linear time.
    var searchFrom = 0
    /// Offset just after the start line; -1 until the start line is parsed.
    var sectionStart = -1
    var slots: [HeaderSlot] = []
    var leadingEmptyLines = 0
    /// Field lines dropped for a `_` in the name (see `HTTP1Limits.allowUnderscoresInHeaders`).
    var droppedLines = 0

    /// True when part of a message was seen (beyond tolerated empty lines).
    var started: Bool { sectionStart >= 0 || searchFrom > lineStart }

    @inline(__always)
    mutating func append(_ slot: HeaderSlot) {
        if slots.capacity == 0 { slots.reserveCapacity(16) }
        slots.append(slot)
    }
}

/// Array memory handed back by a finished head, for a later head: a request or response then
/// parses without allocating its slot and added-line arrays. Request heads get theirs from a
/// per-loop pool (`HeaderSparePool`); a pooled upstream connection keeps its own.
@usableFromInline
struct H1Spares {
    var slots: [HeaderSlot] = []
    var added: [UInt8] = []

    /// Keeps `fields`' arrays (emptied, capacity kept) when there is no spare yet and they are
    /// of ordinary size. An array someone else still holds is simply reallocated on next use.
    mutating func keep(_ fields: inout HeaderFields) {
        var (s, a) = fields.takeStorage()
        if slots.capacity == 0 && s.capacity > 0 && s.capacity <= 256 {
            s.removeAllKeepingStorage()
            slots = s
        }
        // Its bytes stay: the next head's lines overwrite them (`HeaderFields` counts its own).
        if added.capacity == 0 && a.capacity > 0 && a.capacity <= 4096 { added = a }
    }

    var isEmpty: Bool { slots.capacity == 0 && added.capacity == 0 }

    mutating func takeSlots() -> [HeaderSlot] {
        var s: [HeaderSlot] = []
        swap(&s, &slots)
        return s
    }

    mutating func takeAdded() -> [UInt8] {
        var a: [UInt8] = []
        swap(&a, &added)
        return a
    }
}

/// One field line, `p[s..<e]` (CRLF excluded), checked per RFC 9110/9112:
/// name is a non-empty token immediately followed by `:`; no obs-fold; the value (OWS trimmed)
/// holds no CTL except HTAB.
@usableFromInline
enum H1FieldLine {
    case ok(HeaderSlot)
    case bad(String)
}

@inline(__always) @usableFromInline
func h1ParseFieldLine(_ p: UnsafeRawBufferPointer, _ s: Int, _ e: Int) -> H1FieldLine {
    var underscore = false
    return h1ParseFieldLine(p, s, e, underscore: &underscore)
}

/// Also sets `underscore` when the name contains `_`, found by the same loop that checks the
/// name's bytes (one OR per byte, no second pass).
@inline(__always) @usableFromInline
func h1ParseFieldLine(_ p: UnsafeRawBufferPointer, _ s: Int, _ e: Int, underscore: inout Bool) -> H1FieldLine {
    if h1IsOWS(p[s]) { return .bad("obs-fold or whitespace before a field name") }
    let table = h1ByteClasses
    var c = s
    var seen: UInt8 = 0
    while c < e {
        let k = table[Int(p[c])]
        if k & H1ByteClass.token == 0 { break }
        seen |= k
        c += 1
    }
    underscore = seen & H1ByteClass.underscore != 0
    if c == e { return .bad("field line without colon") }
    if p[c] != h1Colon {
        return .bad(h1IsOWS(p[c]) ? "whitespace between field name and colon" : "invalid byte in field name")
    }
    if c == s { return .bad("empty field name") }
    var vs = c + 1
    while vs < e && h1IsOWS(p[vs]) { vs += 1 }
    var ve = e
    while ve > vs && h1IsOWS(p[ve - 1]) { ve -= 1 }
    if !h1IsFieldValue(p, from: vs, to: ve) { return .bad("invalid byte in field value") }
    return .ok(HeaderSlot(nameStart: s, nameLength: c - s, valueStart: vs, valueLength: ve - vs))
}

/// Parses `HTTP/x.y` in `p[s..<e]`: 0 for HTTP/1.0, 1 for HTTP/1.1 and any higher 1.x; nil with
/// `unsupported` true for another major version; nil with `unsupported` false when malformed.
@inline(__always) @usableFromInline
func h1ParseVersion(_ p: UnsafeRawBufferPointer, _ s: Int, _ e: Int, unsupported: inout Bool) -> UInt8? {
    unsupported = false
    guard e - s == 8, p[s] == UInt8(ascii: "H"), p[s + 1] == UInt8(ascii: "T"), p[s + 2] == UInt8(ascii: "T"),
          p[s + 3] == UInt8(ascii: "P"), p[s + 4] == UInt8(ascii: "/"), p[s + 6] == UInt8(ascii: ".") else { return nil }
    let major = p[s + 5] &- UInt8(ascii: "0")
    let minor = p[s + 7] &- UInt8(ascii: "0")
    guard major <= 9, minor <= 9 else { return nil }
    // A higher 1.x minor is processed as 1.1 and answered as 1.1 (RFC 9110 6.2, RFC 9112 2.3).
    if major == 1 { return minor == 0 ? 0 : 1 }
    unsupported = true
    return nil
}

/// Removes, in `slots`, every line whose name is listed in a Connection line (RFC 9110 7.6.1).
/// Connection lines themselves were already removed; Host is never removed this way.
@usableFromInline
func h1RemoveConnectionListed(_ p: UnsafeRawBufferPointer, _ slots: inout [HeaderSlot]) {
    for ci in slots.indices {
        let c = slots[ci]
        guard c.nameLength == 10, h1EqualsLower(p, Int(c.nameStart), 10, "connection") else { continue }
        h1ForEachListElement(p, from: Int(c.valueStart), to: Int(c.valueStart + c.valueLength)) { s, e in
            let n = e - s
            if h1EqualsLower(p, s, n, "close") || h1EqualsLower(p, s, n, "keep-alive") || h1EqualsLower(p, s, n, "host") {
                return true
            }
            for j in slots.indices where !slots[j].removed && Int(slots[j].nameLength) == n {
                if h1EqualsIgnoringCase(p, Int(slots[j].nameStart), s, n) { slots[j].removed = true }
            }
            return true
        }
    }
}

/// Whether a Connection line among `slots` lists `upgrade`. Asked only of a head with an
/// `Upgrade: websocket` line (rare): looking for the token while every Connection line is read
/// kept `H1ConnectionTokens.add` from being inlined (measured: +30 instructions a request).
@usableFromInline
func h1ConnectionListsUpgrade(_ p: UnsafeRawBufferPointer, _ slots: [HeaderSlot]) -> Bool {
    var found = false
    for c in slots where c.nameLength == 10 && h1EqualsLower(p, Int(c.nameStart), 10, "connection") {
        h1ForEachListElement(p, from: Int(c.valueStart), to: Int(c.valueStart + c.valueLength)) { s, e in
            if h1EqualsLower(p, s, e - s, "upgrade") { found = true }
            return !found
        }
    }
    return found
}

/// Connection tokens of interest.
@usableFromInline
struct H1ConnectionTokens {
    var close = false
    var keepAlive = false
    /// Some other token: the headers it names are removed after the head.
    var other = false

    @inline(__always) @usableFromInline
    mutating func add(_ p: UnsafeRawBufferPointer, from: Int, to: Int) {
        h1ForEachListElement(p, from: from, to: to) { s, e in
            let n = e - s
            if h1EqualsLower(p, s, n, "close") { close = true }
            else if h1EqualsLower(p, s, n, "keep-alive") { keepAlive = true }
            else { other = true }
            return true
        }
    }
}

/// Outcome of scanning a head.
@usableFromInline
enum H1HeadScanResult {
    case needMore
    /// Skip this many bytes (empty lines before a request line) and scan again.
    case skip(Int)
    /// The head is the first `n` readable bytes.
    case complete(Int)
    case error(HTTP1ParseError)
}

/// Parses a trailer section incrementally, dropping it. Same field rules and limits as headers.
@usableFromInline
struct H1TrailerScan {
    var bytes = 0
    var count = 0
    var searchFrom = 0

    enum Result {
        case needMore(consumed: Int)
        case done(consumed: Int)
        case error(HTTP1ParseError)
    }

    /// Scans complete lines of `p`; `consumed` bytes can be dropped from the buffer.
    mutating func scan(_ p: UnsafeRawBufferPointer, limits: HTTP1Limits, status: Int) -> Result {
        var lineStart = 0
        var from = searchFrom
        while true {
            guard let lf = h1Find(h1LF, p, from: from, to: p.count) else {
                searchFrom = p.count - lineStart
                if bytes + (p.count - lineStart) > limits.maxHeaderBytes {
                    return .error(HTTP1ParseError(status: status == 400 ? 431 : status, category: HTTP1ParseError.headerTooLarge, detail: "trailer section too large"))
                }
                return .needMore(consumed: lineStart)
            }
            bytes += lf + 1 - lineStart
            if bytes > limits.maxHeaderBytes {
                return .error(HTTP1ParseError(status: status == 400 ? 431 : status, category: HTTP1ParseError.headerTooLarge, detail: "trailer section too large"))
            }
            if lf == lineStart || p[lf - 1] != h1CR {
                return .error(HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "trailer line not ended by CRLF"))
            }
            if lf - 1 == lineStart {
                self = H1TrailerScan()
                return .done(consumed: lf + 1)
            }
            count += 1
            if count > limits.maxHeaders {
                return .error(HTTP1ParseError(status: status == 400 ? 431 : status, category: HTTP1ParseError.headerTooLarge, detail: "too many trailer fields"))
            }
            if case .bad(let why) = h1ParseFieldLine(p, lineStart, lf - 1) {
                return .error(HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "trailer: " + why))
            }
            lineStart = lf + 1
            from = lineStart
        }
    }
}

/// De-chunks a body (RFC 9112 section 7.1), zero copy: data comes out as slices of the input.
@usableFromInline
struct H1ChunkedDecoder {
    enum State {
        case sizeLine
        case data(remaining: Int64)
        case dataCRLF
        case trailers
    }

    enum Event {
        case body(ByteBuffer)
        case end
        case needMore
        case error(HTTP1ParseError)
    }

    var state = State.sizeLine
    var searchFrom = 0
    var trailers = H1TrailerScan()

    /// True when the decoder is at the start of a body (nothing consumed).
    var atStart: Bool { if case .sizeLine = state { return searchFrom == 0 } else { return false } }

    /// `status` is what errors carry: 400 for requests, 502 for responses.
    mutating func next(_ buffer: inout ByteBuffer, limits: HTTP1Limits, status: Int) -> Event {
        while true {
            switch state {
            case .sizeLine:
                var size: Int64 = 0
                var consumed = 0
                var err: HTTP1ParseError? = nil
                buffer.withUnsafeReadableBytes { p in
                    guard let lf = h1Find(h1LF, p, from: searchFrom, to: p.count) else {
                        searchFrom = p.count
                        if p.count > limits.maxChunkLineBytes {
                            err = HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "chunk size line too long")
                        }
                        return
                    }
                    if lf + 1 > limits.maxChunkLineBytes {
                        err = HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "chunk size line too long")
                        return
                    }
                    if lf == 0 || p[lf - 1] != h1CR {
                        err = HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "chunk size line not ended by CRLF")
                        return
                    }
                    if let why = h1ParseChunkSizeLine(p, 0, lf - 1, &size) {
                        err = HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: why)
                        return
                    }
                    consumed = lf + 1
                }
                if let err { return .error(err) }
                if consumed == 0 { return .needMore }
                buffer.moveReaderIndex(forwardBy: consumed)
                searchFrom = 0
                state = size == 0 ? .trailers : .data(remaining: size)

            case .data(let remaining):
                let readable = buffer.readableBytes
                guard readable > 0 else { return .needMore }
                let n = Int(min(Int64(readable), remaining))
                let slice = buffer.readSlice(length: n)!
                let left = remaining - Int64(n)
                state = left == 0 ? .dataCRLF : .data(remaining: left)
                return .body(slice)

            case .dataCRLF:
                let readable = buffer.readableBytes
                if readable == 0 { return .needMore }
                let r = buffer.readerIndex
                if buffer.getInteger(at: r, as: UInt8.self) != h1CR {
                    return .error(HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "chunk data not followed by CRLF"))
                }
                if readable == 1 { return .needMore }
                if buffer.getInteger(at: r + 1, as: UInt8.self) != h1LF {
                    return .error(HTTP1ParseError(status: status, category: HTTP1ParseError.malformedChunk, detail: "chunk data not followed by CRLF"))
                }
                buffer.moveReaderIndex(forwardBy: 2)
                state = .sizeLine

            case .trailers:
                let r = buffer.withUnsafeReadableBytes { trailers.scan($0, limits: limits, status: status) }
                switch r {
                case .needMore(let consumed):
                    buffer.moveReaderIndex(forwardBy: consumed)
                    return .needMore
                case .done(let consumed):
                    buffer.moveReaderIndex(forwardBy: consumed)
                    self = H1ChunkedDecoder()
                    return .end
                case .error(let e):
                    return .error(e)
                }
            }
        }
    }
}

/// chunk-size [ chunk-ext ] in `p[s..<e]`; returns an error detail or nil.
/// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string.
@usableFromInline
func h1ParseChunkSizeLine(_ p: UnsafeRawBufferPointer, _ s: Int, _ e: Int, _ size: inout Int64) -> String? {
    var i = s
    var v: Int64 = 0
    while i < e, let h = hexValue(p[i]) {
        if v > (Int64.max >> 4) { return "chunk size overflows" }
        v = v << 4 | Int64(h)
        i += 1
    }
    if i == s { return "missing chunk size" }
    size = v
    while i < e {
        while i < e && h1IsOWS(p[i]) { i += 1 }
        guard i < e, p[i] == UInt8(ascii: ";") else { return "malformed chunk size or extension" }
        i += 1
        while i < e && h1IsOWS(p[i]) { i += 1 }
        let nameStart = i
        while i < e && h1IsToken(p[i]) { i += 1 }
        if i == nameStart { return "malformed chunk extension name" }
        var j = i
        while j < e && h1IsOWS(p[j]) { j += 1 }
        guard j < e, p[j] == UInt8(ascii: "=") else { continue }
        i = j + 1
        while i < e && h1IsOWS(p[i]) { i += 1 }
        guard i < e else { return "missing chunk extension value" }
        if p[i] == UInt8(ascii: "\"") {
            i += 1
            var closed = false
            while i < e {
                let b = p[i]
                if b == UInt8(ascii: "\"") { closed = true; i += 1; break }
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < e else { return "malformed quoted chunk extension" }
                    let q = p[i + 1]
                    if (q < h1SP && q != h1HTAB) || q == 0x7F { return "malformed quoted chunk extension" }
                    i += 2
                    continue
                }
                if (b < h1SP && b != h1HTAB) || b == 0x7F { return "malformed quoted chunk extension" }
                i += 1
            }
            if !closed { return "unterminated quoted chunk extension" }
        } else {
            let vs = i
            while i < e && h1IsToken(p[i]) { i += 1 }
            if i == vs { return "malformed chunk extension value" }
        }
    }
    return nil
}
