import NIOCore
import ProxCore
@testable import ProxEngine

/// Everything a request parser produced for some input.
struct RequestRun {
    var heads: [RequestHead] = []
    /// Payload per request, in order (one entry per `.head`).
    var bodies: [[UInt8]] = []
    var bodyEvents = 0
    var ends = 0
    var error: HTTP1ParseError?
    var eventsAfterError = 0
    var leftover = 0

    var head: RequestHead { heads[0] }
    var body: String { String(decoding: bodies.first ?? [], as: UTF8.self) }
}

/// Feeds `input` to a fresh request parser `step` bytes at a time (0: all at once), draining the
/// parser after every write, the way a channel handler would.
func runRequest(_ input: [UInt8], step: Int = 0, limits: HTTP1Limits = .default, endOfInput: Bool = false) -> RequestRun {
    var parser = HTTP1RequestParser(limits: limits)
    var buf = ByteBuffer()
    var run = RequestRun()
    func drain() {
        while let ev = parser.next(&buf) {
            record(ev)
        }
    }
    func record(_ ev: HTTP1RequestEvent) {
        if run.error != nil { run.eventsAfterError += 1; return }
        switch ev {
        case .head(let h):
            run.heads.append(h)
            run.bodies.append([])
        case .body(let b):
            run.bodyEvents += 1
            run.bodies[run.bodies.count - 1] += b.readableBytesView
        case .end:
            run.ends += 1
        case .error(let e):
            run.error = e
        }
    }
    let n = step <= 0 ? max(input.count, 1) : step
    var i = 0
    while i < input.count {
        buf.writeBytes(input[i..<min(i + n, input.count)])
        i += n
        drain()
        if i % 7 == 0 { buf.discardReadBytes() } // offsets must survive compaction
    }
    drain()
    if endOfInput, let ev = parser.endOfInput() { record(ev) }
    run.leftover = buf.readableBytes
    return run
}

func runRequest(_ input: String, step: Int = 0, limits: HTTP1Limits = .default, endOfInput: Bool = false) -> RequestRun {
    runRequest(Array(input.utf8), step: step, limits: limits, endOfInput: endOfInput)
}

struct ResponseRun {
    var informational: [ResponseHead] = []
    var heads: [ResponseHead] = []
    var bodies: [[UInt8]] = []
    var ends = 0
    var error: HTTP1ParseError?
    var events: [String] = []

    var head: ResponseHead { heads[0] }
    var body: String { String(decoding: bodies.first ?? [], as: UTF8.self) }
}

func runResponse(_ input: String, method: HTTPMethod = .get, step: Int = 0, limits: HTTP1Limits = .default,
                 endOfInput: Bool = false) -> ResponseRun {
    let bytes = Array(input.utf8)
    var parser = HTTP1ResponseParser(limits: limits, requestMethod: method)
    var buf = ByteBuffer()
    var run = ResponseRun()
    func record(_ ev: HTTP1ResponseEvent) {
        switch ev {
        case .informational(let h):
            run.informational.append(h)
            run.events.append("info \(h.status)")
        case .head(let h):
            run.heads.append(h)
            run.bodies.append([])
            run.events.append("head \(h.status)")
        case .body(let b):
            run.bodies[run.bodies.count - 1] += b.readableBytesView
            if run.events.last != "body" { run.events.append("body") }
        case .end:
            run.ends += 1
            run.events.append("end")
        case .error(let e):
            run.error = e
            run.events.append("error")
        }
    }
    let n = step <= 0 ? max(bytes.count, 1) : step
    var i = 0
    while i < bytes.count {
        buf.writeBytes(bytes[i..<min(i + n, bytes.count)])
        i += n
        while let ev = parser.next(&buf) { record(ev) }
    }
    if endOfInput, let ev = parser.endOfInput() { record(ev) }
    return run
}

/// Effective header lines as "Name: value" strings.
func lines(_ f: HeaderFields) -> [String] {
    f.effective.map { "\($0.name): \($0.value)" }
}
