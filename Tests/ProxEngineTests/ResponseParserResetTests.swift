import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// `HTTP1ResponseParser.reset` clears the parser field by field: after any response, or part of
/// one, it must equal a new parser in everything but the memory it keeps (spare arrays, the
/// slot array's capacity). Compared through `Mirror`, so a field added to the parser (or to the
/// structs it holds) that `reset` does not clear makes this fail.
struct ResponseParserResetTests {
    /// Every stored field, recursively, as text; the spares and arrays' capacity left out.
    static func fields(_ value: Any, path: String = "") -> [String] {
        let m = Mirror(reflecting: value)
        if m.children.isEmpty || m.displayStyle == .enum || m.displayStyle == .optional {
            return ["\(path) = \(value)"]
        }
        if m.displayStyle == .collection { return ["\(path) = \(m.children.count) elements"] }
        return m.children.flatMap { c -> [String] in
            let name = path + "." + (c.label ?? "?")
            return name == ".spares" ? [] : fields(c.value, path: name)
        }
    }

    static let responses: [(String, HTTPMethod)] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello", .get),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n3;e=1\r\nabc\r\n0\r\nX: 1\r\n\r\n", .get),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", .get),  // cut mid-chunk
        ("HTTP/1.0 200 OK\r\nDate: x\r\nX-A: 1\r\n\r\nuntil close", .post),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", .get),
        ("HTTP/1.1 200 OK\r\nContent-Len", .head),  // cut mid-head
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nframes", .get),
        ("HTTP/1.1 999 Bad\r\n\r\n", .get),  // an error
    ]

    @Test(arguments: 0..<responses.count)
    func resetIsANewParser(case i: Int) {
        let (text, method) = Self.responses[i]
        var p = HTTP1ResponseParser()
        p.reset(requestMethod: method, upgrade: true)
        var buf = ByteBuffer(string: text)
        while let ev = p.next(&buf) {
            if case .head(var h) = ev { p.recycle(&h.fields) }
            if case .error = ev { break }
        }
        for (m, up) in [(HTTPMethod.get, false), (.head, true)] {
            var q = p
            q.reset(requestMethod: m, upgrade: up)
            var fresh = HTTP1ResponseParser(limits: p.limits, requestMethod: m)
            fresh.upgradeRequested = up
            #expect(Self.fields(q) == Self.fields(fresh), "after response \(i)")
        }
    }
}
